"""Export a trained model as a self-contained artefact, and prove it on held-out images.

    tuner export demo --format onnx --out exported/          # best trial of "demo"
    tuner export demo --format state_dict --trial 3e129038 --out exported/

Every format takes raw [0, 1] images (N, 3, 32, 32) (normalisation is inside the
model) and returns (N, 1, 28, 28). The artefact is written beside its final
name, loaded back from disk and compared with the checkpointed model
(TOLERANCE); only a file that passes takes the final name, and an existing file
is replaced only when asked (`force`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from tuner.core.constants import EXPORT_FILES
from tuner.core.errors import CheckpointError, ExportError
from tuner.inference.formats import load_exported, onnxruntime
from tuner.learn.checkpoints import load_model_file
from tuner.learn.fidelity import Fidelity, fidelity
from tuner.learn.model import StudentCNN
from tuner.learn.teacher import to_float

# Largest allowed |exported - checkpointed| on any pixel. ONNX Runtime fuses and
# reorders float32 arithmetic, so it gets a looser bound than PyTorch formats.
TOLERANCE = {"state_dict": 0.0, "torchscript": 1e-5, "onnx": 1e-4}


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
            # torch.jit is deprecated upstream, but still the lightest C++-loadable form.
            warnings.simplefilter("ignore")
            torch.jit.save(torch.jit.trace(model, example), str(path))
    else:
        try:
            onnxruntime()  # fail before exporting when the runtime to verify with is missing
        except CheckpointError as exc:
            raise ExportError(str(exc)) from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=["images"],
                output_names=["teacher"],
                dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
                verbose=False,
                external_data=False,
            )  # one self-contained file, weights inside


def export_path(out_dir: Path, fmt: str, trial_id: str | None = None) -> Path:
    """Where an export goes: model.<ext> for the best trial, model-<trial>.<ext> for a chosen one,
    so exports of two trials never share a name."""
    name = EXPORT_FILES[fmt]
    return Path(out_dir) / (name if trial_id is None else name.replace("model", f"model-{trial_id}", 1))


def export_model(
    checkpoint: Path, fmt: str, out_dir: Path, images: torch.Tensor, trial_id: str | None = None, force: bool = False
) -> ExportReport:
    """Export the checkpoint's model as `fmt` into out_dir and verify it on `images` (uint8 or float)."""
    if fmt not in EXPORT_FILES:
        raise ExportError(f"unknown export format {fmt!r}; use one of: {', '.join(EXPORT_FILES)}")
    if len(images) < 1:
        raise ExportError("no images to verify the export on; pass --images 1 or more")
    path = export_path(out_dir, fmt, trial_id)
    if path.exists() and not force:
        raise ExportError(f"{path} already exists; pass --force to replace it, or choose another --out")
    # The temporary file keeps the final suffix: load_exported picks the runtime by name.
    staging = path.with_name(f".partial-{path.name}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging.touch()
    except OSError as exc:
        raise ExportError(f"cannot write to {path.parent} ({exc.strerror}); choose another --out") from None
    try:
        model = load_model_file(checkpoint)
        _write(model, fmt, staging)
        exported = load_exported(staging)  # verify what is on disk, not what is in memory
        x = to_float(images)
        with torch.no_grad():
            diff = (exported(x) - model(x)).abs().max().item()
        if diff > TOLERANCE[fmt]:
            raise ExportError(
                f"{path} would differ from the checkpoint by {diff:.2e} (> {TOLERANCE[fmt]:.0e}); "
                "the export is not faithful, nothing was written"
            )
        staging.replace(path)
    finally:
        staging.unlink(missing_ok=True)
    return ExportReport(path, fmt, diff, TOLERANCE[fmt], fidelity(exported, images))
