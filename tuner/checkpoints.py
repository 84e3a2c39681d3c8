"""Checkpoint files, without Ray: save, load (weights_only), and rebuild a model from one file.

A checkpoint is a plain dict: `model_config` (ModelConfig as a dict) and
`model` (state_dict), plus optimizer state and epoch in trial checkpoints.
`load_model` accepts a checkpoint file, a Ray checkpoint directory, an
experiment directory (its best_model.pt) or an exported state_dict file.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from tuner.model import ModelConfig, StudentCNN, build_model

CHECKPOINT_FILE = "checkpoint.pt"
BEST_MODEL_FILE = "best_model.pt"


class CheckpointError(FileNotFoundError):
    """A checkpoint that is missing or unreadable; the message names the file and the fix."""


def save_checkpoint(state: dict[str, Any], directory: str | Path) -> Path:
    path = Path(directory) / CHECKPOINT_FILE
    torch.save(state, path)
    return path


def resolve(path: str | Path) -> Path:
    path = Path(path)
    for candidate in (path, path / CHECKPOINT_FILE, path / BEST_MODEL_FILE):
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"no checkpoint at {path}; pass a .pt file, a checkpoint directory or an experiment directory")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load with weights_only=True, so a checkpoint can never run code when opened."""
    file = resolve(path)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"checkpoint {file} is corrupt or not a tuner checkpoint ({str(exc).splitlines()[0][:80]}); re-export or pick another trial") from None
    if not isinstance(state, dict) or "model_config" not in state or "model" not in state:
        raise CheckpointError(f"{file} has no model_config/model entries; it is not a tuner checkpoint")
    return state


def model_from_state(state: dict[str, Any]) -> StudentCNN:
    """Rebuild the model from a loaded checkpoint dict (config + weights), in eval mode."""
    model = build_model(ModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    return model.eval()


def load_model(path: str | Path) -> StudentCNN:
    """Rebuild the model from a checkpoint file alone, in eval mode."""
    return model_from_state(load_checkpoint(path))
