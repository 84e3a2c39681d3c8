"""Built-in synthetic images: natural-image-like 32x32 RGB, deterministic from a seed.

Each image layers what a natural photo has at this size: a smooth colour
field, a few shapes with hard or soft edges, stripes, 1/f texture and
sensor-like noise. The teacher is linear in the pixels, so what matters for a student to
hold on real images is that these cover real images' spatial frequencies and
colour correlations; no pixel of any real data set is embedded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SIZE = 32


def _upsampled_noise(g: torch.Generator, n: int, channels: int, low: int) -> torch.Tensor:
    """Random (n, channels, low, low) field, bicubically upsampled: smooth at scale 32/low."""
    field = torch.rand(n, channels, low, low, generator=g)
    return F.interpolate(field, size=(SIZE, SIZE), mode="bicubic", align_corners=False)


def _shape_masks(g: torch.Generator, n: int) -> torch.Tensor:
    """One random rectangle or ellipse per image, edges from sharp to soft, (n, 1, 32, 32)."""
    ys, xs = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    cx, cy = torch.rand(2, n, 1, 1, generator=g) * SIZE
    rx, ry = 2 + torch.rand(2, n, 1, 1, generator=g) * 12
    softness = 0.05 + torch.rand(n, 1, 1, generator=g) * 1.5
    ellipse = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 - 1.0
    box = torch.maximum((xs - cx).abs() / rx, (ys - cy).abs() / ry) - 1.0
    is_box = torch.rand(n, 1, 1, generator=g) < 0.5
    distance = torch.where(is_box, box, ellipse) * torch.minimum(rx, ry)
    return torch.sigmoid(-distance / softness).unsqueeze(1)


def _stripes(g: torch.Generator, n: int) -> torch.Tensor:
    """Oriented sinusoidal texture at a random frequency, (n, 1, 32, 32) in [-1, 1]."""
    ys, xs = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    angle = torch.rand(n, 1, 1, generator=g) * torch.pi
    freq = 0.2 + torch.rand(n, 1, 1, generator=g) * 2.0
    phase = torch.rand(n, 1, 1, generator=g) * 2 * torch.pi
    wave = torch.sin(freq * (xs * torch.cos(angle) + ys * torch.sin(angle)) + phase)
    return wave.unsqueeze(1)


def _pink_noise(g: torch.Generator, n: int) -> torch.Tensor:
    """Noise with a 1/f amplitude spectrum, the spectrum of natural images, (n, 3, 32, 32) ~ unit std.

    Channels share most of their phase, as the colour channels of photos do.
    """
    fy = torch.fft.fftfreq(SIZE).abs().view(SIZE, 1)
    fx = torch.fft.rfftfreq(SIZE).view(1, -1)
    amplitude = 1.0 / torch.sqrt(fx**2 + fy**2).clamp_min(1.0 / SIZE)
    shared = torch.randn(n, 1, SIZE, SIZE // 2 + 1, 2, generator=g)
    own = torch.randn(n, 3, SIZE, SIZE // 2 + 1, 2, generator=g)
    coeffs = torch.view_as_complex((0.8 * shared + 0.4 * own).contiguous()) * amplitude
    noise = torch.fft.irfft2(coeffs, s=(SIZE, SIZE))
    return noise / noise.std(dim=(1, 2, 3), keepdim=True)


def synthetic_images(n: int, seed: int = 0, batch: int = 1024) -> torch.Tensor:
    """n images as uint8 (n, 3, 32, 32), identical for the same (n, seed, batch)."""
    g = torch.Generator().manual_seed(seed)
    out = [_draw(g, min(batch, n - start)) for start in range(0, n, batch)]
    return torch.cat(out) if out else torch.empty(0, 3, SIZE, SIZE, dtype=torch.uint8)


def _draw(g: torch.Generator, n: int) -> torch.Tensor:
    # Colour field: a dominant colour plus smooth variation at a random scale.
    base = torch.rand(n, 3, 1, 1, generator=g)
    low = int(torch.randint(2, 9, (1,), generator=g))
    image = 0.5 * base + 0.5 * _upsampled_noise(g, n, 3, low)
    # Real photos have strongly correlated channels: pull towards a grey version.
    grey = image.mean(dim=1, keepdim=True)
    mix = torch.rand(n, 1, 1, 1, generator=g)
    image = mix * grey + (1 - mix) * image
    # A few shapes of their own colour, hard or soft edged.
    for _ in range(3):
        colour = torch.rand(n, 3, 1, 1, generator=g)
        present = (torch.rand(n, 1, 1, 1, generator=g) < 0.7).float()
        mask = _shape_masks(g, n) * present
        image = image * (1 - mask) + colour * mask
    # Texture: stripes and fine noise at random strengths.
    image = image + 0.15 * torch.rand(n, 1, 1, 1, generator=g) * _stripes(g, n)
    image = image + 0.12 * torch.rand(n, 1, 1, 1, generator=g) * (_upsampled_noise(g, n, 3, 16) - 0.5)
    image = image + 0.15 * torch.rand(n, 1, 1, 1, generator=g) * _pink_noise(g, n)
    image = image + 0.03 * torch.rand(n, 1, 1, 1, generator=g) * torch.randn(n, 3, SIZE, SIZE, generator=g)
    # Global contrast and brightness, as exposure varies between photos.
    contrast = 0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=g)
    image = (image - 0.5) * contrast + 0.5 + 0.2 * (torch.rand(n, 1, 1, 1, generator=g) - 0.5)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)
