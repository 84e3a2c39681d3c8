"""The teacher: the fixed torchvision pipeline the CNN learns to imitate.

It is defined here once; everything else (targets for training, fidelity in
the benchmark, evaluation of exported models) calls into this module.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from tuner.core.constants import IN_SHAPE, OUT_SHAPE

# Random flips with p=1.0 are the v2 spelling of a deterministic hflip/vflip.
PIPELINE = v2.Compose(
    [
        v2.Resize(OUT_SHAPE[1:], antialias=True),
        v2.Grayscale(num_output_channels=1),
        v2.RandomHorizontalFlip(p=1.0),
        v2.RandomVerticalFlip(p=1.0),
    ]
)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float32 in [0, 1]; float images pass through."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


def teach(images: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Apply the teacher pipeline to a stack of images (N, 3, 32, 32), in batches.

    v2 transforms treat leading dimensions as a batch, so one call handles a
    whole batch; batching bounds the memory of the float copy.
    """
    outputs = [PIPELINE(to_float(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    return torch.cat(outputs) if outputs else torch.empty(0, *OUT_SHAPE)


def teacher_matrix(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The teacher as one (3*32*32, 28*28) matrix.

    Resize, grayscale and flips are all linear in the pixels, so pushing the
    identity basis through the pipeline gives the matrix M with
    teach(x).flatten(1) == x.flatten(1) @ M. The benchmark uses it as the
    speed limit for any model of this map.
    """
    n_in = IN_SHAPE[0] * IN_SHAPE[1] * IN_SHAPE[2]
    basis = torch.eye(n_in, dtype=torch.float32).reshape(n_in, *IN_SHAPE)
    return teach(basis).reshape(n_in, -1).to(dtype)


def psnr(mse: float, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB for a mean squared error on [0, peak] data."""
    if mse <= 0:
        return float("inf")
    return float(10.0 * torch.log10(torch.tensor(peak * peak / mse)))
