"""How close a model is to the teacher on any images: MSE and PSNR.

    tuner evaluate demo --dataset folder:~/photos     # best model of experiment "demo"
    tuner evaluate model.pt --dataset cifar10          # an exported or checkpointed model

So a user sees whether a model trained on one kind of image holds on another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tuner.teacher import psnr, teach, to_float


@dataclass
class Fidelity:
    images: int
    mse: float
    psnr: float


@torch.no_grad()
def fidelity(model: nn.Module, images: torch.Tensor, batch_size: int = 1024) -> Fidelity:
    """Compare model and teacher on uint8 or [0,1] float images (N, 3, 32, 32)."""
    model.eval()
    squared, count = 0.0, 0
    for i in range(0, len(images), batch_size):
        batch = images[i : i + batch_size]
        out = model(to_float(batch)).float()
        squared += torch.sum((out - teach(batch)) ** 2).item()
        count += out.numel()
    mse = squared / max(1, count)
    return Fidelity(len(images), mse, psnr(mse))


def evaluate_on(model_path: str | Path, dataset: str, size: int = 10_000, seed: int = 0) -> tuple[str, Fidelity]:
    """Fidelity of a checkpoint or exported model (any format) on a dataset's held-out images (CIFAR-10: the test split)."""
    from tuner.data import load_images
    from tuner.export import load_exported

    model = load_exported(model_path)
    splits = load_images(dataset, train_size=1, val_size=size, seed=seed)
    return splits.source, fidelity(model, splits.benchmark_images[:size])
