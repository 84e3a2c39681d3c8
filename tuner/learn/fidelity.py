"""How close a model is to the teacher: MSE and PSNR, on any images.

`mean_squared_error` is the one loop that scores a model against the teacher;
training validates with it and every command that prints a PSNR uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tuner.learn.teacher import psnr, teach, to_float


@dataclass
class Fidelity:
    images: int
    mse: float
    psnr: float


@torch.no_grad()
def mean_squared_error(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor | None = None, batch_size: int = 1024
) -> float:
    """MSE of the model against the teacher on uint8 or [0,1] images (N, 3, 32, 32).

    `targets` are the teacher's outputs when already computed (training keeps them); else made per batch."""
    model.eval()
    squared, count = 0.0, 0
    for i in range(0, len(images), batch_size):
        batch = images[i : i + batch_size]
        out = model(to_float(batch)).float()
        expected = targets[i : i + batch_size] if targets is not None else teach(batch).to(out.device)
        squared += torch.sum((out - expected) ** 2).item()
        count += out.numel()
    return squared / max(1, count)


def fidelity(model: nn.Module, images: torch.Tensor) -> Fidelity:
    """MSE and PSNR of a model against the teacher on `images`."""
    mse = mean_squared_error(model, images)
    return Fidelity(len(images), mse, psnr(mse))
