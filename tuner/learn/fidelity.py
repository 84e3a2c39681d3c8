"""How close a model is to the teacher: MSE and PSNR, on any images; and every registered metric on validation.

`mean_squared_error` scores a model against the teacher; every command that prints a PSNR uses it.
`validate` is what training runs after each epoch: one pass of the model over the validation images,
and every metric of the registry (tuner.core.metrics) that has a `compute` function, batch by batch.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

import torch
from torch import nn

from tuner.core import metrics as registry
from tuner.learn.teacher import psnr, teach, to_float


@dataclass
class Fidelity:
    images: int
    mse: float
    psnr: float


def squared_error(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each image: (N, ...) twice -> (N,). val_loss is its mean over images."""
    return ((outputs.float() - targets.float()) ** 2).flatten(1).mean(dim=1)


def _outputs(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor | None, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(model output, teacher output) per batch; the teacher's only computed when `targets` is None."""
    model.eval()
    for i in range(0, len(images), batch_size):
        batch = images[i : i + batch_size]
        out = model(to_float(batch)).float()
        expected = targets[i : i + batch_size] if targets is not None else teach(batch).to(out.device)
        yield out, expected


@torch.no_grad()
def mean_squared_error(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | None = None,
    batch_size: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> float:
    """MSE of the model against the teacher on uint8 or [0,1] images (N, 3, 32, 32).

    `targets` are the teacher's outputs when already computed (training keeps them); else made per batch.
    `progress(done, total)` is called after each batch, for commands that score many images."""
    squared, count, done = 0.0, 0, 0
    for out, expected in _outputs(model, images, targets, batch_size):
        squared += torch.sum((out - expected) ** 2).item()
        count += out.numel()
        done += len(out)
        if progress is not None:
            progress(done, len(images))
    return squared / max(1, count)


@cache
def function_of(metric: str) -> Callable:
    """The registered metric's compute function, imported from tuner.learn on first use."""
    module, name = registry.METRICS[metric].compute.split(":")
    return getattr(importlib.import_module(f"tuner.learn.{module}"), name)


@torch.no_grad()
def validate(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor | None = None, batch_size: int = 1024
) -> dict[str, float]:
    """Every computed metric of the registry on `images`: per-image ones averaged, then those derived of them."""
    per_image = [m for m in registry.computed() if m.of is None]
    sums = dict.fromkeys((m.name for m in per_image), 0.0)
    count = 0
    for out, expected in _outputs(model, images, targets, batch_size):
        for m in per_image:
            # Summed in float64: a float32 running sum over thousands of images loses the last digits.
            sums[m.name] += function_of(m.name)(out, expected).double().sum().item()
        count += len(out)
    values = {name: total / max(1, count) for name, total in sums.items()}
    for m in registry.computed():
        if m.of is not None:
            source = values[m.of]
            values[m.name] = float(function_of(m.name)(source)) if math.isfinite(source) else math.nan
    return values


def fidelity(model: nn.Module, images: torch.Tensor, progress: Callable[[int, int], None] | None = None) -> Fidelity:
    """MSE and PSNR of a model against the teacher on `images` (progress: see mean_squared_error)."""
    mse = mean_squared_error(model, images, progress=progress)
    return Fidelity(len(images), mse, psnr(mse))
