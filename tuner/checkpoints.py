"""Model files, without Ray: save and load checkpoints, rebuild a model, load any exported artefact.

A checkpoint is a plain dict: `model_config` (ModelConfig as a dict) and
`model` (state_dict), plus optimizer state and epoch in trial checkpoints.

    tuner.load_model("demo")                     # best trial of experiment "demo" (a name or a path)
    tuner.load_model("demo", trial="3e129038")   # another trial
    tuner.load_model("exported/model.pt")        # a checkpoint or exported state_dict file
    load_exported("exported/model.onnx")         # any export, as a module taking [0, 1] images
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from tuner.configs import ModelConfig
from tuner.constants import BEST_MODEL_FILE, IN_SHAPE, OUT_SHAPE, RESULTS_DIR
from tuner.errors import CheckpointError, first_line
from tuner.model import StudentCNN, build_model

CHECKPOINT_FILE = "checkpoint.pt"


def save_checkpoint(state: dict[str, Any], directory: str | Path) -> Path:
    path = Path(directory) / CHECKPOINT_FILE
    torch.save(state, path)
    return path


def refill_deleted_checkpoints(exp_dir: Path, trial_ids: list[str]) -> list[Path]:
    """Before a resume: give each unfinished trial's deleted checkpoint names its newest checkpoint.

    Ray saves its experiment state every 10 s or more; a sweep killed between two saves is restored from
    the older state, which can name a checkpoint that keeping only the newest has deleted since, and Ray
    then refuses to restore the trial ("does not exist on storage anymore"). Checkpoints are numbered
    upwards, so the names it can ask for are the missing ones below the newest; each becomes a copy made
    of hard links (no extra disk) of the newest. The trial then continues from its newest epoch, which
    the checkpoint itself records. Ray writes its next checkpoints into the names after the one it
    restored, in place, so every linked name keeps holding the newest; they are left for later resumes.
    Returns the directories made.
    """
    made = []
    for trial_id in trial_ids:
        trial_dir = Path(exp_dir) / f"trial_{trial_id}"
        present = {int(d.name.removeprefix("checkpoint_")): d for d in trial_dir.glob("checkpoint_[0-9]*")}
        complete = [d for d in present.values() if (d / CHECKPOINT_FILE).is_file()]
        if not complete:
            continue
        newest = max(complete, key=lambda d: (d / CHECKPOINT_FILE).stat().st_mtime_ns)
        for index in range(max(present)):
            if index not in present:
                target = trial_dir / f"checkpoint_{index:06d}"
                target.mkdir()
                for f in newest.iterdir():
                    if f.is_file():
                        (target / f.name).hardlink_to(f)
                made.append(target)
    return made


def resolve(path: str | Path) -> Path:
    path = Path(path)
    for candidate in (path, path / CHECKPOINT_FILE, path / BEST_MODEL_FILE):
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"no checkpoint at {path}; pass a .pt file, a checkpoint directory or an experiment directory"
    )


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load with weights_only=True, so a checkpoint can never run code when opened."""
    file = resolve(path)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise CheckpointError(
            f"checkpoint {file} is corrupt or not a tuner checkpoint ({first_line(exc, 80)}); "
            "re-export it or pick another trial"
        ) from None
    if not isinstance(state, dict) or "model_config" not in state or "model" not in state:
        raise CheckpointError(f"{file} has no model_config/model entries; it is not a tuner checkpoint")
    return state


def model_from_state(state: dict[str, Any]) -> StudentCNN:
    """Rebuild the model from a loaded checkpoint dict (config + weights), in eval mode."""
    try:
        model = build_model(ModelConfig.from_dict(state["model_config"]))
        model.load_state_dict(state["model"])
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(
            f"the checkpoint's config and weights do not make a model ({first_line(exc, 80)}); "
            "it was written by another version of tuner or damaged"
        ) from None
    return model.eval()


def load_model(source: str | Path, trial: str | None = None, storage: str | Path = RESULTS_DIR) -> StudentCNN:
    """Rebuild a model, in eval mode, from a checkpoint file or directory, or from an experiment
    (a name under `storage` or a path): its best trial, or `trial`."""
    path = Path(source)
    if trial is None and (path.is_file() or (path / CHECKPOINT_FILE).is_file()):
        return model_from_state(load_checkpoint(path))
    from tuner.experiments import load_experiment

    return model_from_state(load_checkpoint(load_experiment(source, storage).checkpoint(trial)))


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
        return load_model(path)
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
