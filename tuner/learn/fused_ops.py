"""The operators of K fused StudentCNNs (HFTA, Wang et al., MLSys 2021): forward pass and optimizers.

All K members' parameters live in ONE flat (K, P) tensor, a member per row, each row laid out as
StudentCNN's parameters in order; `Layout.views` gives them as (K, *shape) tensors under the model's
names (`conv1.weight` (K, C1, C, 3, 3), ...). One forward pass computes every member on the same batch:

- conv1 is ONE convolution with K*C1 output channels (the members share the input);
- conv2 is ONE grouped convolution with groups=K (member k reads only its own C1 channels);
- fc1 and fc2 are batched matrix products (baddbmm) over the member dimension, computed transposed;
- LeakyReLU takes each member's own slope as a tensor, so slopes differ without separate kernels.

A training step of K trials is then the launches of one trial, each K times wider: the plain loop's step is
bound by kernel launches on a GPU, not by arithmetic. The optimizers (Adam/AdamW, SGD with momentum) work
on the flat tensor, so a step is a few element-wise kernels over (K, P) whatever the number of parameters,
with learning rate and weight decay as per-member (K,) vectors; their arithmetic is torch.optim's, so a
member learns as its plain trial does. They update in place and allocate nothing parameter-sized: on a CPU
a fresh tensor of that size per step costs page faults (tuner.learn.training says the same of the plain loop).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tuner.learn.model import StudentCNN

BETAS, EPS, MOMENTUM = (0.9, 0.999), 1e-8, 0.9  # torch.optim's Adam defaults; Trainer's SGD momentum


class Layout:
    """Where each of a StudentCNN's parameters sits in a row of the flat (K, P) tensor."""

    def __init__(self, model: StudentCNN) -> None:
        self.shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
        self.sizes = [math.prod(shape) for shape in self.shapes.values()]

    def flatten(self, models: list[StudentCNN]) -> torch.Tensor:
        """(K, P): member k's parameters, in order, in row k."""
        return torch.stack([torch.cat([p.detach().flatten() for p in m.parameters()]) for m in models])

    def views(self, flat: torch.Tensor, grad: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """(K, *shape) views of `flat`. With `grad` (K, P), leaves that require grad and whose .grad are the
        same views of `grad`: backward accumulates into `grad` in place and the optimizer updates `flat` in
        place, so a step allocates no parameter-sized tensor and a CUDA graph sees the same memory."""
        out = {}
        for (name, shape), col in zip(self.shapes.items(), torch.split(flat.detach(), self.sizes, dim=1), strict=True):
            out[name] = col.view(len(flat), *shape)
        if grad is not None:
            for p, g in zip(out.values(), self.views(grad).values(), strict=True):
                p.requires_grad_()
                p.grad = g
        return out

    def row(self, flat: torch.Tensor, pos: int) -> dict[str, torch.Tensor]:
        """Member `pos`'s tensors, copied out of `flat`, shaped as the plain model's."""
        columns = torch.split(flat[pos], self.sizes)
        return {name: col.view(shape).clone() for (name, shape), col in zip(self.shapes.items(), columns, strict=True)}


def leaky(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """LeakyReLU with a tensor slope; the same values and gradients as F.leaky_relu with that slope, and
    its dtype (under bf16 autocast a float32 slope would otherwise promote every activation to float32)."""
    return torch.where(x > 0, x, x * slope.to(x.dtype))


def channel_slopes(slopes: torch.Tensor, channels: int) -> torch.Tensor:
    """(K,) slopes -> (1, K*channels, 1, 1): each member's slope over its block of fused channels."""
    # expand + reshape: plain copies, nothing a CUDA graph capture could object to.
    return slopes.view(-1, 1).expand(-1, channels).reshape(1, -1, 1, 1)


def forward(
    params: dict[str, torch.Tensor], x: torch.Tensor, slopes: torch.Tensor, out_shape: tuple[int, ...]
) -> torch.Tensor:
    """Every member's output on the same normalised batch x (B, C, H, W) -> (K, B, *out_shape)."""
    k = len(slopes)
    w1, w2 = params["conv1.weight"], params["conv2.weight"]
    c1, c2 = w1.shape[1], w2.shape[1]
    # reshape, not view: a member's row of the flat tensor is contiguous, the K rows together are not.
    h = F.conv2d(x, w1.reshape(k * c1, *w1.shape[2:]), params["conv1.bias"].reshape(-1))
    h = leaky(h, channel_slopes(slopes, c1))
    h = F.conv2d(h, w2.reshape(k * c2, *w2.shape[2:]), params["conv2.bias"].reshape(-1), groups=k)
    h = leaky(F.max_pool2d(h, 2), channel_slopes(slopes, c2))
    # (B, K*C2, h, w) -> (K, C2*h*w, B): member k's block flattened in the plain model's (C, h, w) order, and
    # the FC layers computed transposed, W @ x^T, so that the weights' gradients come out in the weights' own
    # layout (from h @ W^T they come out transposed, and accumulating them into .grad is a strided pass).
    h = h.view(h.shape[0], k, -1).permute(1, 2, 0)
    member_slopes = slopes.view(k, 1, 1)
    h = leaky(torch.baddbmm(params["fc1.bias"].unsqueeze(2), params["fc1.weight"], h), member_slopes)
    out = torch.baddbmm(params["fc2.bias"].unsqueeze(2), params["fc2.weight"], h)  # (K, O, B)
    return out.transpose(1, 2).reshape(k, x.shape[0], *out_shape)


def member_losses(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(K, B, ...) outputs against shared (B, ...) targets -> (K,) mean squared errors, as F.mse_loss's."""
    return (outputs.float() - targets).square().flatten(1).mean(dim=1)


def _col(vector: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(K,) -> (K, 1) in `like`'s dtype, to broadcast over the flat (K, P) tensor."""
    return vector.to(like.dtype).unsqueeze(1)


@torch.no_grad()
def adam_step(
    flat: torch.Tensor,
    grad: torch.Tensor,
    state: dict[str, torch.Tensor],
    steps: torch.Tensor,
    hyper: dict[str, torch.Tensor | None],
    scratch: torch.Tensor,
) -> None:
    """One Adam/AdamW step of every member, in place, allocating nothing of size P (`scratch` is (K, P)).
    `hyper` holds (K,) float64 vectors: lr, `wd` (Adam's: added to the gradient) and `decoupled_wd`
    (AdamW's: shrinks the weights), or None where every member's is 0; a member uses one of the two.
    `steps` (K,): each member's updates so far, this one included."""
    beta1, beta2 = BETAS
    # Per-member scalars in float64, as torch.optim computes its Python-float bias corrections.
    t = steps.clamp_min(1)
    step_size = hyper["lr"] / (1 - beta1**t)
    bias2_sqrt = (1 - beta2**t).sqrt()
    if hyper["wd"] is not None:
        grad.addcmul_(flat, _col(hyper["wd"], flat))
    if hyper["decoupled_wd"] is not None:
        flat.mul_(_col(1 - hyper["lr"] * hyper["decoupled_wd"], flat))
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m.lerp_(grad, 1 - beta1)
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    # p -= step_size * m / (sqrt(v) / bias2_sqrt + eps), with the per-member step size folded into the
    # denominator (torch.optim's capturable form), so the update is one addcdiv_ with a scalar value.
    torch.sqrt(v, out=scratch)
    scratch.div_(_col(bias2_sqrt * step_size, flat)).add_(_col(EPS / step_size, flat))
    flat.addcdiv_(m, scratch, value=-1)


@torch.no_grad()
def sgd_step(
    flat: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor], hyper: dict[str, torch.Tensor | None]
) -> None:
    """One SGD step with momentum 0.9 (Trainer's), in place. The buffer starts at zero, so its first
    update is the gradient itself, as torch.optim.SGD's clone of the first gradient."""
    if hyper["wd"] is not None:
        grad.addcmul_(flat, _col(hyper["wd"], flat))
    buf = state["momentum_buffer"]
    buf.mul_(MOMENTUM).add_(grad)
    flat.addcmul_(buf, _col(-hyper["lr"], flat))


def optimizer_state(family: str, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """Zeroed optimizer state, one (K, P) tensor per kind: what a fresh torch optimizer starts from."""
    names = ("exp_avg", "exp_avg_sq") if family == "adam" else ("momentum_buffer",)
    return {key: torch.zeros_like(flat) for key in names}
