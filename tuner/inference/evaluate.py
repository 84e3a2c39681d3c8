"""`tuner evaluate`: how close any model file is to the teacher on a dataset's held-out images.

tuner evaluate demo --dataset folder:~/photos     # best model of experiment "demo"
tuner evaluate model.pt --dataset cifar10          # an exported or checkpointed model
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from tuner.inference.formats import load_exported
from tuner.learn.data import evaluation_images
from tuner.learn.fidelity import Fidelity, fidelity

log = logging.getLogger(__name__)
PROGRESS_SECONDS = 5.0  # how often a long evaluation says how far it got


def fidelity_on_dataset(
    model_path: str | Path, dataset: str, size: int = 10_000, seed: int = 0, data_dir: str | Path | None = None
) -> tuple[str, Fidelity]:
    """Fidelity of a checkpoint or exported model (any format) on a dataset's held-out images
    (CIFAR-10: its test split, looked for in `data_dir`)."""
    model = load_exported(model_path)
    log.info(f"evaluate: {model_path} on up to {size:,} images of {dataset}")  # making them can take a while
    started = time.monotonic()
    source, images = evaluation_images(dataset, size, seed, data_dir)
    log.info(f"evaluate: {len(images)} images of {source} ready in {time.monotonic() - started:.0f} s")
    return source, fidelity(model, images, _every(PROGRESS_SECONDS))


def _every(seconds: float) -> Callable[[int, int], None]:
    """A progress callback that logs at most once per `seconds`, so 10,000 images on a busy CPU are not silent."""
    started = last = time.monotonic()

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= seconds and done < total:
            last = now
            log.info(f"evaluate: scored {done}/{total} images ({now - started:.0f} s)")

    return report
