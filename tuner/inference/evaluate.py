"""`tuner evaluate`: how close any model file is to the teacher on a dataset's held-out images.

tuner evaluate demo --dataset folder:~/photos     # best model of experiment "demo"
tuner evaluate model.pt --dataset cifar10          # an exported or checkpointed model
"""

from __future__ import annotations

from pathlib import Path

from tuner.inference.formats import load_exported
from tuner.learn.data import evaluation_images
from tuner.learn.fidelity import Fidelity, fidelity


def fidelity_on_dataset(
    model_path: str | Path, dataset: str, size: int = 10_000, seed: int = 0, data_dir: str | Path | None = None
) -> tuple[str, Fidelity]:
    """Fidelity of a checkpoint or exported model (any format) on a dataset's held-out images
    (CIFAR-10: its test split, looked for in `data_dir`)."""
    model = load_exported(model_path)
    source, images = evaluation_images(dataset, size, seed, data_dir)
    return source, fidelity(model, images)
