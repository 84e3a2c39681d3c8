"""What the benchmark measures, and the exported files it measures besides the model as trained.

The rows are placed on Ray workers by tuner.run.benchmark; this module holds no Ray.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from tuner.core.errors import ExportError, TunerError
from tuner.inference.formats import load_exported
from tuner.learn.checkpoints import load_model_file
from tuner.learn.teacher import to_float

BATCH_SIZES = {"cpu": (1, 32, 128, 512, 2048), "cuda": (1, 32, 128, 512, 2048, 8192)}
DEVICES = ("cpu", "gpu", "all")
SAME_MODEL_ATOL = 1e-3  # an --artifact must reproduce the checkpoint's outputs this closely


def artifacts_of(
    checkpoint: Path, images: torch.Tensor, given: list[str], echo: Callable[[str], None]
) -> dict[str, bytes]:
    """TorchScript and ONNX exports of the checkpoint, each verified as `tuner export` does, as bytes; an
    exported file the user gave (`--artifact`) replaces the one of its kind, once shown to be this model."""
    from tuner.inference.export import export_model

    found: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as out:
        for fmt in ("torchscript", "onnx"):
            try:
                found[fmt] = export_model(checkpoint, fmt, Path(out), images[:64]).path.read_bytes()
            except ExportError as exc:
                echo(f"benchmark: no {fmt} rows: {exc}")
    model = load_model_file(checkpoint)
    for path in map(Path, given):
        if not path.name.endswith((".onnx", ".torchscript.pt")):
            raise TunerError(
                f"--artifact {path} is not a .torchscript.pt or .onnx file; export one with `tuner export`"
            )
        exported = load_exported(path)  # one line for a missing or corrupt file, or a model of other shapes
        x = to_float(images[:64])
        with torch.no_grad():
            diff = (exported(x) - model(x)).abs().max().item()
        if diff > SAME_MODEL_ATOL:
            raise TunerError(
                f"{path} is not an export of this experiment's best model (outputs differ by up to {diff:.2g}); "
                "benchmark it with the experiment and trial it was exported from"
            )
        found["onnx" if path.suffix == ".onnx" else "torchscript"] = path.read_bytes()
    return found
