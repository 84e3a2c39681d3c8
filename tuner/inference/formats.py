"""Export formats, one registry: each format's name, file suffix, writer, loader and tolerance.

    FORMATS["onnx"].write(model, path)                # what `tuner export --format onnx` writes
    load_exported("exported/model.onnx")              # any export or checkpoint, picked by its suffix

Adding a format is one `ExportFormat` entry here (its writer and loader may live in a module of their own,
as ONNX's do in onnx_runtime.py): `tuner export --format`, `load_exported`, `tuner evaluate` and the
benchmark's rows all read this registry. Importing this module loads nothing heavy (the CLI builds its
--format choices from it); each writer and loader imports torch when called.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tuner.core.constants import IN_SHAPE, OUT_SHAPE
from tuner.core.errors import CheckpointError, first_line

if TYPE_CHECKING:
    import torch

    from tuner.learn.model import StudentCNN

# How many held-out images `tuner export` verifies an export on unless --images says otherwise.
VERIFY_IMAGES = 256


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str  # the file name's ending; load_exported picks the format by it
    title: str  # what a message calls such a file
    tolerance: float  # largest |exported - checkpointed| allowed on any pixel
    write: Callable[[StudentCNN, Path], None]
    # (a file's path, or its bytes as the benchmark ships them to a worker; device; threads or None)
    load: Callable[[Path | bytes, str, int | None], torch.nn.Module]
    variant: str | None = None  # its rows in the benchmark; None: the model as trained already times it

    def file_name(self, trial_id: str | None = None) -> str:
        """model.<suffix> for the best trial, model-<trial>.<suffix> for a chosen one: two trials never share one."""
        return f"model{'' if trial_id is None else f'-{trial_id}'}{self.suffix}"


def _write_state_dict(model: StudentCNN, path: Path) -> None:
    import torch

    torch.save({"model_config": model.config.to_dict(), "model": model.state_dict()}, path)


def _load_state_dict(source: Path | bytes, device: str = "cpu", threads: int | None = None) -> torch.nn.Module:
    from tuner.learn.checkpoints import load_model_file

    return load_model_file(source).to(device)


def _write_torchscript(model: StudentCNN, path: Path) -> None:
    import torch

    with warnings.catch_warnings():
        # torch.jit is deprecated upstream, but still the lightest C++-loadable form.
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(model, torch.rand(2, *model.config.in_shape)), str(path))


def _load_torchscript(source: Path | bytes, device: str = "cpu", threads: int | None = None) -> torch.nn.Module:
    import io

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated upstream, as above
        return torch.jit.load(io.BytesIO(source) if isinstance(source, bytes) else str(source), map_location=device)


def _write_onnx(model: StudentCNN, path: Path) -> None:
    from tuner.inference import onnx_runtime

    onnx_runtime.write(model, path)


def _load_onnx(source: Path | bytes, device: str = "cpu", threads: int | None = None) -> torch.nn.Module:
    from tuner.inference import onnx_runtime

    return onnx_runtime.OnnxModel(source, device, threads)


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("state_dict", ".pt", "checkpoint", 0.0, _write_state_dict, _load_state_dict),
        ExportFormat(
            "torchscript", ".torchscript.pt", "TorchScript", 1e-5, _write_torchscript, _load_torchscript, "torchscript"
        ),
        # ONNX Runtime fuses and reorders float32 arithmetic, so it gets a looser bound than PyTorch formats.
        ExportFormat("onnx", ".onnx", "ONNX", 1e-4, _write_onnx, _load_onnx, "onnxruntime"),
    )
}
CHECKPOINT = FORMATS["state_dict"]  # what any other file (or a directory) is read as


def format_of(path: str | Path) -> ExportFormat:
    """The format a file name says: the longest registered suffix it ends with (.torchscript.pt before .pt)."""
    name = Path(path).name
    matches = [f for f in FORMATS.values() if name.endswith(f.suffix)]
    return max(matches, key=lambda f: len(f.suffix)) if matches else CHECKPOINT


def load_exported(path: str | Path) -> torch.nn.Module:
    """Any export (or checkpoint) as a module taking [0, 1] images (N, 3, 32, 32) and returning (N, 1, 28, 28),
    on the CPU. A file that does not load, or a model of other shapes, is refused in one line."""
    path, fmt = Path(path), format_of(path)
    if fmt is CHECKPOINT:  # a checkpoint directory too; load_checkpoint says what is wrong with it
        model = fmt.load(path, "cpu", None)
    else:
        if not path.is_file():
            raise CheckpointError(f"no {fmt.title} model at {path}; check the path")
        try:
            model = fmt.load(path, "cpu", None).eval()
        except CheckpointError:
            raise
        except Exception as exc:  # each runtime raises its own types for a damaged file
            raise CheckpointError(
                f"{path} is not a loadable {fmt.title} model ({first_line(exc, 80)}); export it again"
            ) from None
    _check_shapes(model, path)
    return model


def _check_shapes(model: torch.nn.Module, path: Path) -> None:
    """A model of another input or output shape would fail deep inside the runtime, or score garbage."""
    import torch

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
