"""Structural similarity (SSIM, Wang et al. 2004) of the model's outputs against the teacher's, per image.

The standard form: an 11x11 Gaussian window of sigma 1.5, C1 = (0.01 L)^2 and C2 = (0.03 L)^2 with L = 1
for images in [0, 1], the SSIM map taken where the window fits inside the image (no padding; 18x18
positions on a 28x28 image) and averaged over the map. Batched, with no Python loop over images or
positions: the window is separable, so filtering is two matrix products with banded matrices (A^T S B
for every image and statistic at once). On a CPU that is several times faster than a grouped
convolution with the same taps, and this runs after every epoch.
"""

from __future__ import annotations

import torch

WINDOW, SIGMA = 11, 1.5
C1, C2 = 0.01**2, 0.03**2


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    """The 1-D Gaussian taps, summing to 1; the 2-D window is their outer product."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    taps = torch.exp(-(x**2) / (2 * sigma**2))
    return taps / taps.sum()


def _band(length: int, taps: torch.Tensor) -> torch.Tensor:
    """(length, length - window + 1): column j holds the taps at rows j .. j + window - 1, so that
    `image @ band` filters every row of an image at every position where the window fits."""
    offset = torch.arange(length, device=taps.device)[:, None] - torch.arange(
        length - len(taps) + 1, device=taps.device
    )
    inside = (offset >= 0) & (offset < len(taps))
    return torch.where(
        inside, taps[offset.clamp(0, len(taps) - 1)], torch.zeros((), dtype=taps.dtype, device=taps.device)
    )


def ssim(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each image pair: (N, C, H, W) twice -> (N,), channels averaged. Computed in float32."""
    x, y = outputs.float(), targets.float().to(outputs.device)
    height, width = x.shape[-2:]
    if min(height, width) < WINDOW:
        raise ValueError(f"SSIM needs images of at least {WINDOW}x{WINDOW} pixels, got {height}x{width}")
    taps = gaussian_window().to(device=x.device, dtype=torch.float32)
    rows, cols = _band(height, taps), _band(width, taps)
    stats = torch.stack([x, y, x * x, y * y, x * y])  # (5, N, C, H, W)
    mu_x, mu_y, xx, yy, xy = rows.T @ stats @ cols  # each (N, C, H - 10, W - 10)
    var_x, var_y, cov = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + C1) / (mu_x * mu_x + mu_y * mu_y + C1)
    structure = (2 * cov + C2) / (var_x + var_y + C2)
    return (luminance * structure).mean(dim=(-3, -2, -1))
