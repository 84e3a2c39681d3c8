"""Export a trained model as a self-contained artefact, and prove it on held-out images.

    tuner export demo --format onnx --out exported/          # best trial of "demo"
    tuner export demo --format state_dict --trial 3e129038 --out exported/

Every format takes raw [0, 1] images (N, 3, 32, 32) (normalisation is inside the
model) and returns (N, 1, 28, 28). After writing, the artefact is loaded back
and its output compared with the checkpointed model's (TOLERANCE); then its
PSNR against the teacher is measured on the same images.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from tuner.checkpoints import CheckpointError, load_model
from tuner.evaluate import Fidelity, fidelity
from tuner.model import StudentCNN
from tuner.teacher import to_float

FORMATS = {"state_dict": "model.pt", "torchscript": "model.torchscript.pt", "onnx": "model.onnx"}
# Largest allowed |exported - checkpointed| on any pixel. ONNX Runtime fuses and
# reorders float32 arithmetic, so it gets a looser bound than PyTorch formats.
TOLERANCE = {"state_dict": 0.0, "torchscript": 1e-5, "onnx": 1e-4}


class ExportError(RuntimeError):
    """An export that could not be written or did not verify; the message says why."""


@dataclass
class ExportReport:
    path: Path
    format: str
    max_abs_diff: float
    tolerance: float
    fidelity: Fidelity


def _write(model: StudentCNN, fmt: str, path: Path) -> None:
    example = torch.rand(2, *model.config.in_shape)
    if fmt == "state_dict":
        torch.save({"model_config": model.config.to_dict(), "model": model.state_dict()}, path)
    elif fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit is deprecated upstream, but still the lightest C++-loadable form
            torch.jit.save(torch.jit.trace(model, example), str(path))
    else:
        _onnxruntime()  # fail before exporting when the runtime to verify with is missing
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), input_names=["images"], output_names=["teacher"],
                              dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, verbose=False)


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("ONNX needs onnx, onnxscript and onnxruntime: pip install 'tuner[onnx]'") from None
    return onnxruntime


class _OnnxModel(torch.nn.Module):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.session = _onnxruntime().InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"images": x.float().numpy()})[0])


def load_exported(path: str | Path) -> torch.nn.Module:
    """Load any export (or checkpoint) as a module taking [0, 1] images: .onnx, *.torchscript.pt or a state_dict."""
    path = Path(path)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise CheckpointError(f"no ONNX model at {path}; check the path")
        return _OnnxModel(path)
    if path.name.endswith(".torchscript.pt"):
        if not path.is_file():
            raise CheckpointError(f"no TorchScript model at {path}; check the path")
        return torch.jit.load(str(path)).eval()
    return load_model(path)


def export_model(checkpoint: Path, fmt: str, out_dir: Path, images: torch.Tensor) -> ExportReport:
    """Export the checkpoint's model as `fmt` into out_dir and verify it on `images` (uint8 or float)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".tuner-write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ExportError(f"cannot write to {out_dir} ({exc.strerror}); choose another --out") from None
    model = load_model(checkpoint)
    path = out_dir / FORMATS[fmt]
    _write(model, fmt, path)
    exported = load_exported(path)  # verify what is on disk, not what is in memory
    x = to_float(images)
    with torch.no_grad():
        diff = (exported(x) - model(x)).abs().max().item()
    if diff > TOLERANCE[fmt]:
        raise ExportError(f"{path} differs from the checkpoint by {diff:.2e} (> {TOLERANCE[fmt]:.0e}); the export is not faithful")
    return ExportReport(path, fmt, diff, TOLERANCE[fmt], fidelity(exported, images))
