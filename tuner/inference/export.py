"""Export a trained model as a self-contained artefact, and prove it on held-out images.

    tuner export demo --format onnx --out exported/          # best trial of "demo"
    tuner export demo --format state_dict --trial 3e129038 --out exported/

Every format (tuner.inference.formats.FORMATS) takes raw [0, 1] images (N, 3, 32, 32)
(normalisation is inside the model) and returns (N, 1, 28, 28). The artefact is
written beside its final name, loaded back from disk and compared with the
checkpointed model (the format's tolerance); only a file that passes takes the
final name, and an existing file is replaced only when asked (`force`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tuner.core.errors import ExportError
from tuner.core.files import made_for
from tuner.inference.formats import FORMATS, VERIFY_IMAGES, load_exported
from tuner.learn.checkpoints import load_model_file
from tuner.learn.fidelity import Fidelity, fidelity
from tuner.learn.teacher import to_float

if TYPE_CHECKING:
    from tuner.results.experiments import Experiment


@dataclass
class ExportReport:
    path: Path
    format: str
    max_abs_diff: float
    tolerance: float
    fidelity: Fidelity


def max_abs_diff(exported: torch.nn.Module, model: torch.nn.Module, images: torch.Tensor) -> float:
    """Largest |exported(x) - model(x)| over every pixel of `images` (uint8 or float)."""
    x = to_float(images)
    with torch.no_grad():
        return (exported(x) - model(x)).abs().max().item()


def export_path(out_dir: Path, fmt: str, trial_id: str | None = None) -> Path:
    """Where an export goes: model.<ext> for the best trial, model-<trial>.<ext> for a chosen one."""
    return Path(out_dir) / FORMATS[fmt].file_name(trial_id)


def verification_images(exp: Experiment, count: int | None = None) -> torch.Tensor:
    """`count` held-out images of the experiment (None: up to VERIFY_IMAGES), refusing more than it has."""
    images = exp.heldout_images(count or VERIFY_IMAGES)
    if count is not None and len(images) < count:
        raise ExportError(
            f"--images {count} asks for more held-out images than {exp.name} has ({len(images)}); "
            f"pass --images {len(images)} or fewer"
        )
    return images


def export_model(
    checkpoint: Path | bytes,
    fmt: str,
    out_dir: Path,
    images: torch.Tensor,
    trial_id: str | None = None,
    force: bool = False,
    source: Path | None = None,
) -> ExportReport:
    """Export the checkpoint's model (a file, or its bytes read from `source`) as `fmt` into out_dir and verify
    it on `images` (uint8 or float)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if len(images) < 1:
        raise ExportError("no images to verify the export on; pass --images 1 or more")
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"--out {out_dir} is a file, not a directory; choose another --out")
    path, tolerance = export_path(out_dir, fmt, trial_id), FORMATS[fmt].tolerance
    if path.is_dir():
        raise ExportError(f"{path} is a directory; move it away or choose another --out")
    if path.exists() and not force:
        raise ExportError(f"{path} already exists; pass --force to replace it, or choose another --out")
    # The temporary file keeps the final suffix: load_exported picks the runtime by name.
    staging = path.with_name(f".partial-{path.name}")
    try:
        with made_for(path.parent):  # a failed export takes away the --out directories it created
            try:
                staging.touch()
                model = load_model_file(checkpoint, source)
                FORMATS[fmt].write(model, staging)
                exported = load_exported(staging)  # verify what is on disk, not what is in memory
                diff = max_abs_diff(exported, model, images)
                if diff > tolerance:
                    raise ExportError(
                        f"{path} would differ from the checkpoint by {diff:.2e} (> {tolerance:.0e}); "
                        "the export is not faithful, nothing was written"
                    )
                staging.replace(path)
            finally:
                staging.unlink(missing_ok=True)
    except OSError as exc:  # unwritable, full, or the name taken meanwhile
        raise ExportError(f"cannot write to {path.parent} ({exc.strerror or exc}); choose another --out") from None
    return ExportReport(path, fmt, diff, tolerance, fidelity(exported, images))
