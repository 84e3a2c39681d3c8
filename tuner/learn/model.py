"""The student CNN, built from its `ModelConfig` (tuner.configs).

The config is stored inside every checkpoint, so a model is rebuilt from its
file alone: `tuner.load_model(path)` (checkpoints.model_from_state).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tuner.core.configs import ModelConfig


class StudentCNN(nn.Module):
    """conv 3->32 (3x3) -> LeakyReLU -> conv 32->64 (3x3) -> 2x2 max-pool -> LeakyReLU -> FC -> FC; the widths
    (32, 64 and the hidden FC's 512) come from the config.

    Takes raw images in [0, 1]; per-channel normalisation happens inside, with
    mean/std kept as buffers so they travel with the weights.
    """

    def __init__(self, config: ModelConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        channels, height, width = config.in_shape
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))
        self.conv1 = nn.Conv2d(channels, config.conv1_channels, kernel_size=3)
        self.conv2 = nn.Conv2d(config.conv1_channels, config.conv2_channels, kernel_size=3)
        self.pool = nn.MaxPool2d(2)
        self.act = nn.LeakyReLU(config.negative_slope)
        # Two unpadded 3x3 convs shrink each side by 4, the pool halves it.
        flat = config.conv2_channels * ((height - 4) // 2) * ((width - 4) // 2)
        self.fc1 = nn.Linear(flat, config.hidden)
        self.fc2 = nn.Linear(config.hidden, math.prod(config.out_shape))
        self._init_weights(config.init_scale, generator)

    def _init_weights(self, scale: float, generator: torch.Generator | None) -> None:
        if generator is not None:
            # PyTorch's default init of every layer, in construction order, drawn from the model's own
            # generator: the same numbers torch.manual_seed(seed) would give, without touching global state.
            for layer in (self.conv1, self.conv2, self.fc1, self.fc2):
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                bound = 1 / math.sqrt(layer.weight[0].numel())
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        # He-style normal init, multiplied by init_scale: the scale the sweep tunes.
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, std=scale * math.sqrt(2.0 / fc.in_features), generator=generator)
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


def build_model(config: ModelConfig, seed: int | None = None) -> StudentCNN:
    """The model; with a seed, every weight is drawn from a generator of its own and the global RNG is left
    as it was (the layers' constructors draw from it before the generator overwrites their weights)."""
    if seed is None:
        return StudentCNN(config)
    with torch.random.fork_rng(devices=[]):
        return StudentCNN(config, torch.Generator().manual_seed(seed))
