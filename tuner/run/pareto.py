"""What a `--pareto` sweep measures once, before its trials: the teacher's speed where the trials will run.

Each trial then reports its own model's images_per_s on the same resources (tuner.run.trainable), and
x_vs_teacher against the teacher applied image by image there. The rates are kept in sweep.json
(`teacher_speed`), so a resumed sweep compares against the same figures, and the report draws them as lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuner.inference.speed import measure_teacher
from tuner.run.cluster import run_on_node
from tuner.search.settings import SweepSettings

# A trial of a fractional GPU still times on a whole device; one worker holds one GPU while it measures.
MEASURE_GPUS = 1


def teacher_speed(settings: SweepSettings, echo: Callable[[str], None]) -> dict[str, Any]:
    """The teacher's images/s, image by image and batched, in a Ray worker shaped like one trial."""
    device = "cuda" if settings.gpus_per_trial > 0 else "cpu"
    threads = max(1, int(settings.cpus_per_trial))
    rates = run_on_node(
        measure_teacher,
        (device, threads),
        cpus=settings.cpus_per_trial,
        gpus=MEASURE_GPUS if device == "cuda" else 0,
        what="the teacher's speed for --pareto",
        fix="lower --cpus-per-trial / --gpus-per-trial",
    )
    echo(
        f"pareto: on {device} ({threads} thread{'s' * (threads != 1)}) the teacher runs "
        f"{rates['per_image']:,.0f} images/s image by image, {rates['batched']:,.0f} batched; every trial "
        "measures its model's speed there too"
    )
    return rates
