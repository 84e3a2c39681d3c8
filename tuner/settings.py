"""Sweep settings: one dataclass, two presets, and the check that keeps them sane.

`quick` is sized for a 2-core laptop on the built-in synthetic images (a few
minutes); `full` for a workstation with the real CIFAR-10. Any command-line
flag overrides the preset's value.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

SETTINGS_FILE = "sweep.json"
LOCAL_RESULTS = "results"

PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(
        dataset="auto", num_samples=4, max_epochs=3, grace_period=1, reduction_factor=2,
        train_size=8_192, val_size=1_024, cpus_per_trial=1.0,
    ),
    "full": dict(
        dataset="cifar10", num_samples=40, max_epochs=30, grace_period=3, reduction_factor=3,
        train_size=45_000, val_size=5_000, cpus_per_trial=2.0, patience=4,
    ),
}


@dataclass(frozen=True)
class SweepSettings:
    name: str = "default"
    dataset: str = "auto"
    space: str = "default"
    num_samples: int = 4
    max_epochs: int = 3
    grace_period: int = 1
    reduction_factor: int = 2
    patience: int = 2
    min_delta: float = 0.01
    train_size: int = 8_192
    val_size: int = 1_024
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    concurrency: int | None = None
    max_failures: int = 1
    storage: str = "results"
    seed: int = 0
    data_dir: str | None = None
    address: str | None = None
    benchmark: bool = True

    def __post_init__(self) -> None:
        positive = ("num_samples", "max_epochs", "grace_period", "patience", "train_size", "val_size")
        for key in positive:
            if getattr(self, key) < 1:
                raise ValueError(f"--{key.replace('_', '-')} must be at least 1, got {getattr(self, key)}")
        if self.grace_period > self.max_epochs:
            raise ValueError(f"--grace-period ({self.grace_period}) cannot exceed --max-epochs ({self.max_epochs})")
        if self.reduction_factor < 2:
            raise ValueError(f"--reduction-factor must be at least 2, got {self.reduction_factor}")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise ValueError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
        if "/" in self.name or self.name in {"", ".", ".."}:
            raise ValueError(f"--name {self.name!r} must be a plain directory name")

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> "SweepSettings":
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; use one of: {', '.join(PRESETS)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(**{**PRESETS[preset], **given})

    @property
    def remote_storage(self) -> bool:
        """True for a URI (s3://, gs://, file://...): Ray writes there, tuner keeps a local copy."""
        return "://" in self.storage

    @property
    def experiment_dir(self) -> Path:
        """The local experiment directory: under --storage, or under results/ for a URI storage."""
        root = LOCAL_RESULTS if self.remote_storage else self.storage
        return Path(root).expanduser().resolve() / self.name

    @property
    def ray_storage_path(self) -> str:
        return self.storage.rstrip("/") if self.remote_storage else str(self.experiment_dir.parent)

    @property
    def ray_experiment_path(self) -> str:
        return f"{self.ray_storage_path}/{self.name}"

    def save(self, directory: Path, **extra: Any) -> None:
        """Record the settings (and e.g. the dataset actually used) beside the experiment."""
        (directory / SETTINGS_FILE).write_text(json.dumps({**asdict(self), **extra}, indent=2))


def load_settings(directory: Path) -> tuple[SweepSettings, dict[str, Any]]:
    """Settings saved by `save`, and the extra keys recorded with them."""
    doc = json.loads((Path(directory) / SETTINGS_FILE).read_text())
    known = {f.name for f in fields(SweepSettings)}
    return SweepSettings(**{k: v for k, v in doc.items() if k in known}), {k: v for k, v in doc.items() if k not in known}


def with_overrides(settings: SweepSettings, **overrides: Any) -> SweepSettings:
    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})
