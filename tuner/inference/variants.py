"""The ways of running a trained model that the benchmark times, each a callable on a batch of [0, 1] images.

    model fp32                     the PyTorch module as trained
    model bf16 autocast            the same under bf16 autocast (PSNR column shows what that costs)
    model channels_last            the same with NHWC weights and inputs
    torchscript, onnxruntime       the exported artefacts, as deployed (loaded from their bytes): every format
                                   of tuner.inference.formats that names a benchmark variant
    compiled                       torch.compile of the module (default mode), and compiled bf16 +
                                   channels_last together; on a GPU also mode="reduce-overhead" (CUDA graphs)

A variant that cannot be built here (no ONNX Runtime, no C++ compiler for torch.compile) is left out with
a reason, never guessed at. No Ray here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tuner.core.errors import first_line
from tuner.inference.formats import FORMATS

Run = Callable[[torch.Tensor], torch.Tensor]
# "eager" alone is the quick benchmark at the end of a sweep: the model as trained, at the worker's threads.
KINDS = ("eager", "layouts", "artifacts", "compiled")


@dataclass
class Variant:
    name: str
    run: Run


def build(
    model: torch.nn.Module, device: str, threads: int, kinds: tuple[str, ...], artifacts: dict[str, bytes]
) -> tuple[list[Variant], list[str]]:
    """The variants of `model` (already on `device`) to time, and a line for each one left out."""
    variants = [Variant("model fp32", model)]
    if "layouts" in kinds:
        variants += _layouts(model, device)
    skipped: list[str] = []
    if "artifacts" in kinds:
        for name, blob in artifacts.items():
            try:
                variants.append(_artifact(name, blob, device, threads))
            except Exception as exc:  # a missing runtime or provider: say so, time the rest
                skipped.append(f"{name}: {first_line(exc, 100)}")
    if "compiled" in kinds:
        variants += _compiled(model, device)
    return variants, skipped


def _layouts(model: torch.nn.Module, device: str) -> list[Variant]:
    def bf16(batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            return model(batch)

    channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    return [
        Variant("model bf16 autocast", bf16),
        Variant("model channels_last", lambda b: channels_last(b.contiguous(memory_format=torch.channels_last))),
    ]


def _artifact(name: str, blob: bytes, device: str, threads: int) -> Variant:
    """An exported file as deployed, loaded from its bytes by its format's own loader."""
    fmt = FORMATS[name]
    return Variant(fmt.variant or fmt.name, fmt.load(blob, device, threads).eval())


def _compiled(model: torch.nn.Module, device: str) -> list[Variant]:
    """Compilation happens on each new batch size's first call; the timing code reports that call apart."""
    compiled = [Variant("compiled", torch.compile(model))]
    fast = torch.compile(copy.deepcopy(model).to(memory_format=torch.channels_last))

    def bf16_channels_last(batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            return fast(batch.contiguous(memory_format=torch.channels_last))

    compiled.append(Variant("compiled bf16 channels_last", bf16_channels_last))
    if device == "cuda":
        compiled.append(Variant("compiled reduce-overhead", torch.compile(model, mode="reduce-overhead")))
    return compiled
