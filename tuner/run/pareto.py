"""What a `--pareto` sweep times besides its trials: the teacher where the trials will run, and at the end
every model again, one at a time.

Each trial reports its own model's images_per_s on its resources (tuner.run.trainable), and x_vs_teacher
against the teacher applied image by image there, measured once before the trials (kept in sweep.json as
`teacher_speed`, so a resumed sweep compares against the same figures). Those are the searcher's objective,
taken while other trials train beside them. When the sweep ends, `retime_models` times the teacher and every
model shape again in one worker with nothing else running (speed.json): the figures the front, its answer and
the report show.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from tuner.core.configs import split_config
from tuner.inference.speed import measure_teacher, retime
from tuner.results import record
from tuner.results.pareto import SPEED_FILE
from tuner.run.cluster import run_on_node
from tuner.search.settings import SweepSettings
from tuner.search.spaces import SWEEP_OWNED

log = logging.getLogger(__name__)

# A trial of a fractional GPU still times on a whole device; one worker holds one GPU while it measures.
MEASURE_GPUS = 1


def _where(settings: SweepSettings) -> tuple[str, int]:
    """The device and threads of one trial."""
    return ("cuda" if settings.gpus_per_trial > 0 else "cpu"), max(1, int(settings.cpus_per_trial))


def teacher_speed(settings: SweepSettings) -> dict[str, Any]:
    """The teacher's images/s, image by image and batched, in a Ray worker shaped like one trial."""
    device, threads = _where(settings)
    rates = run_on_node(
        measure_teacher,
        (device, threads),
        cpus=settings.cpus_per_trial,
        gpus=MEASURE_GPUS if device == "cuda" else 0,
        what="the teacher's speed for --pareto",
        fix="lower --cpus-per-trial / --gpus-per-trial",
    )
    log.info(
        f"pareto: on {device} ({threads} thread{'s' * (threads != 1)}) the teacher runs "
        f"{rates['per_image']:,.0f} images/s image by image, {rates['batched']:,.0f} batched; every trial "
        "measures its model's speed there too"
    )
    return rates


def retime_models(settings: SweepSettings, exp_dir: Path) -> None:
    """After a --pareto sweep: the teacher and every trial's model shape timed again in one worker, one after
    another, with nothing else running; written to speed.json, which the front and its answer read."""
    trials = record.read(exp_dir)
    configs = {}
    for trial in trials.values():
        if trial.epochs:
            model_cfg, _ = split_config({k: v for k, v in trial.config.items() if k not in SWEEP_OWNED})
            configs[trial.trial_id] = model_cfg.to_dict()
    device, threads = _where(settings)
    log.info(f"pareto: timing the teacher and {len(configs)} models again, one at a time, on {device}")
    found = run_on_node(
        retime,
        (configs, device, threads),
        cpus=settings.cpus_per_trial,
        gpus=MEASURE_GPUS if device == "cuda" else 0,
        what="the re-timing of --pareto's models",
        fix="lower --cpus-per-trial / --gpus-per-trial",
    )
    (Path(exp_dir) / SPEED_FILE).write_text(json.dumps(found, indent=2))
