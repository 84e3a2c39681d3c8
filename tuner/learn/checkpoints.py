"""Model files, without Ray: save and load checkpoints, rebuild a model from its file alone.

A checkpoint is a plain dict: `model_config` (ModelConfig as a dict) and
`model` (state_dict), plus optimizer state and epoch in trial checkpoints.

    load_model_file("exported/model.pt")         # a checkpoint or exported state_dict file
    save_checkpoint(state, directory)
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import torch

from tuner.core.configs import ModelConfig
from tuner.core.constants import BEST_MODEL_FILE, CHECKPOINT_FILE
from tuner.core.errors import CheckpointError, first_line
from tuner.learn.model import StudentCNN, build_model


def save_checkpoint(state: dict[str, Any], directory: str | Path) -> Path:
    path = Path(directory) / CHECKPOINT_FILE
    torch.save(state, path)
    return path


def resolve(path: str | Path) -> Path:
    path = Path(path)
    for candidate in (path, path / CHECKPOINT_FILE, path / BEST_MODEL_FILE):
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"no checkpoint at {path}; pass a .pt file, a checkpoint directory or an experiment directory"
    )


def load_checkpoint(path: str | Path | bytes, name: str | Path | None = None) -> dict[str, Any]:
    """Load with weights_only=True, so a checkpoint can never run code when opened. `path` may also be the
    file's bytes (the benchmark ships files to its workers so), with `name` the file they were read from."""
    file = (name or "(sent as bytes)") if isinstance(path, bytes) else resolve(path)
    try:
        with warnings.catch_warnings():
            # A damaged file makes torch warn about its pickle protocol before failing; the error says it all.
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(
                io.BytesIO(path) if isinstance(path, bytes) else file, map_location="cpu", weights_only=True
            )
    except Exception as exc:  # torch's safe unpickler raises whatever its parser hits (IndexError for 2 bytes)
        head = path[:4] if isinstance(path, bytes) else _head(file)
        raise CheckpointError(
            f"checkpoint {file} is corrupt or not a tuner checkpoint ({_unreadable(head, exc)}); "
            "re-export it or pick another trial"
        ) from None
    if not isinstance(state, dict) or "model_config" not in state or "model" not in state:
        raise CheckpointError(f"{file} has no model_config/model entries; it is not a tuner checkpoint")
    return state


def _head(file: Path) -> bytes:
    try:
        with open(file, "rb") as f:
            return f.read(4)
    except OSError:
        return b""


def _unreadable(head: bytes, exc: Exception) -> str:
    """Why torch could not load a file, from its first bytes: torch's own messages run to paragraphs, and
    the safe loader's suggests turning safety off."""
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save writes a zip archive, or once a pickle
        return "not a file torch.save wrote"
    if "Unsupported global" in str(exc):  # a class outside the safe loader's allow-list
        return "it holds Python objects, which a safe load refuses"
    return f"a damaged or truncated {'PyTorch archive' if head.startswith(b'PK') else 'pickle'}"


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


def load_model_file(path: str | Path | bytes, name: str | Path | None = None) -> StudentCNN:
    """Rebuild a model, in eval mode, from a checkpoint file or directory (an exported state_dict too)."""
    return model_from_state(load_checkpoint(path, name))
