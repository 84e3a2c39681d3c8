"""Exported model files: load any of them back as a module taking [0, 1] images."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from tuner.core.constants import IN_SHAPE, OUT_SHAPE
from tuner.core.errors import CheckpointError, first_line
from tuner.learn.checkpoints import load_model_file


class _OnnxModel(torch.nn.Module):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.session = onnxruntime().InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"images": x.float().numpy()})[0])


def onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise CheckpointError("ONNX needs onnx, onnxscript and onnxruntime; pip install 'tuner[onnx]'") from None
    return onnxruntime


def load_exported(path: str | Path) -> torch.nn.Module:
    """Any export (or checkpoint) as a module taking [0, 1] images (N, 3, 32, 32) and returning (N, 1, 28, 28):
    .onnx, *.torchscript.pt or a state_dict. A file that does not load, or a model of other shapes, is refused."""
    path = Path(path)
    kind = "ONNX" if path.suffix == ".onnx" else "TorchScript" if path.name.endswith(".torchscript.pt") else None
    if kind is None:
        return load_model_file(path)
    if not path.is_file():
        raise CheckpointError(f"no {kind} model at {path}; check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit is deprecated upstream, but TorchScript files are still loaded
            model = _OnnxModel(path) if kind == "ONNX" else torch.jit.load(str(path), map_location="cpu").eval()
    except CheckpointError:
        raise
    except Exception as exc:  # each runtime raises its own types for a damaged file
        raise CheckpointError(
            f"{path} is not a loadable {kind} model ({first_line(exc, 80)}); export it again"
        ) from None
    _check_shapes(model, path)
    return model


def _check_shapes(model: torch.nn.Module, path: Path) -> None:
    """A model of another input or output shape would fail deep inside the runtime, or score garbage."""
    probe = torch.zeros(2, *IN_SHAPE)
    try:
        with torch.no_grad():
            shape = tuple(model(probe).shape)
    except Exception as exc:
        raise CheckpointError(
            f"{path} does not take images of shape (N, {', '.join(map(str, IN_SHAPE))}) "
            f"({first_line(exc, 60)}); it is not a model of this teacher"
        ) from None
    if shape != (2, *OUT_SHAPE):
        raise CheckpointError(f"{path} returns shape {shape[1:]}, not {OUT_SHAPE}; it is not a model of this teacher")
