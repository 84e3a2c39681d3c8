"""The student CNN and the small config dataclass that rebuilds it.

The config is stored inside every checkpoint (nanoGPT style), so a model is
rebuilt from its files alone: `build_model(ModelConfig(**ckpt["model_config"]))`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from tuner.teacher import IN_SHAPE, OUT_SHAPE


@dataclass(frozen=True)
class ModelConfig:
    in_shape: tuple[int, int, int] = IN_SHAPE
    out_shape: tuple[int, int, int] = OUT_SHAPE
    hidden: int = 512
    negative_slope: float = 0.01
    init_scale: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; known: {sorted(known)}")
        kw = dict(d)
        for key in ("in_shape", "out_shape"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)


class StudentCNN(nn.Module):
    """conv 3->32 (3x3) -> LeakyReLU -> conv 32->64 (3x3) -> 2x2 max-pool -> LeakyReLU -> FC -> FC.

    Takes raw images in [0, 1]; per-channel normalisation happens inside, with
    mean/std kept as buffers so they travel with the weights.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        channels, height, width = config.in_shape
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))
        self.conv1 = nn.Conv2d(channels, 32, kernel_size=3)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.pool = nn.MaxPool2d(2)
        self.act = nn.LeakyReLU(config.negative_slope)
        # Two unpadded 3x3 convs shrink each side by 4, the pool halves it.
        flat = 64 * ((height - 4) // 2) * ((width - 4) // 2)
        self.fc1 = nn.Linear(flat, config.hidden)
        self.fc2 = nn.Linear(config.hidden, math.prod(config.out_shape))
        self._init_fc(config.init_scale)

    def _init_fc(self, scale: float) -> None:
        # He-style normal init, multiplied by init_scale: the scale the sweep tunes.
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, std=scale * math.sqrt(2.0 / fc.in_features))
            nn.init.zeros_(fc.bias)

    @torch.no_grad()
    def set_normalisation(self, images: torch.Tensor) -> None:
        """Store the per-channel mean/std of float training images (N, C, H, W)."""
        self.mean.copy_(images.mean(dim=(0, 2, 3), keepdim=True))
        self.std.copy_(images.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        x = self.act(self.conv1(x))
        x = self.act(self.pool(self.conv2(x)))
        x = self.act(self.fc1(x.flatten(1)))
        return self.fc2(x).view(-1, *self.config.out_shape)


def build_model(config: ModelConfig) -> StudentCNN:
    return StudentCNN(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
