"""Sweep settings: one dataclass, two presets, and the check that keeps them sane.

`quick` is sized for a 2-core laptop on the built-in synthetic images (a few
minutes); `full` for a workstation with the real CIFAR-10. Any command-line
flag overrides the preset's value.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tuner.core.constants import RESULTS_DIR
from tuner.core.errors import SettingsError
from tuner.search.schedulers import SCHEDULERS
from tuner.search.searchers import SEARCHERS

SETTINGS_FILE = "sweep.json"

PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(
        dataset="auto",
        num_samples=3,  # a 4th trial waits for a free core and adds its start and an epoch: ~66 s, not ~48 s
        max_epochs=3,
        grace_period=1,
        reduction_factor=2,
        train_size=14_336,
        val_size=1_024,
        cpus_per_trial=1.0,
    ),
    "full": dict(
        dataset="cifar10",
        space="full",  # lower learning rates: the default start point diverges over 30 epochs
        num_samples=40,
        max_epochs=30,
        grace_period=3,
        reduction_factor=3,
        train_size=45_000,
        val_size=5_000,
        cpus_per_trial=2.0,
        patience=4,
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
    # ASHA keeps the top quarter at each rung; a trial stops after 3 epochs without a 1% gain. Chosen with
    # benchmarks/replay_stopping.py: the only ones that kept FIFO's best in every seed (README, early stopping).
    reduction_factor: int = 4
    patience: int = 3
    min_delta: float = 0.01
    train_size: int = 8_192
    val_size: int = 1_024
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    concurrency: int | None = None
    max_failures: int = 1
    storage: str = RESULTS_DIR
    seed: int = 0
    data_dir: str | None = None
    address: str | None = None
    benchmark: bool = True
    searcher: str | None = None  # None: the search space file's `searcher:`, else tpe
    scheduler: str | None = None  # None: the search space file's `scheduler:`, else asha
    plateau: bool = True

    def __post_init__(self) -> None:
        """Every flag is checked here, before a directory is created or Ray is started."""
        for key in ("num_samples", "max_epochs", "grace_period", "patience", "train_size", "val_size"):
            if getattr(self, key) < 1:
                raise SettingsError(
                    f"--{key.replace('_', '-')} must be at least 1, got {getattr(self, key)}; pass 1 or more"
                )
        checks = [
            (
                self.grace_period <= self.max_epochs,
                f"--grace-period ({self.grace_period}) exceeds --max-epochs ({self.max_epochs}); lower it",
            ),
            (
                self.reduction_factor >= 2,
                f"--reduction-factor must be at least 2, got {self.reduction_factor}; pass 2 or more",
            ),
            (
                0 <= self.min_delta < 1,
                f"--min-delta is a relative improvement in [0, 1), got {self.min_delta}; try 0.01",
            ),
            (self.cpus_per_trial > 0, f"--cpus-per-trial must be above 0, got {self.cpus_per_trial}; try 1"),
            (
                self.gpus_per_trial >= 0,
                f"--gpus-per-trial must be 0 or more, got {self.gpus_per_trial}; try 0.25 to share a GPU",
            ),
            (
                self.concurrency is None or self.concurrency >= 1,
                f"--concurrency must be at least 1, got {self.concurrency}; leave it out to use every CPU",
            ),
            (
                self.max_failures >= 0,
                f"--max-failures must be 0 or more, got {self.max_failures}; pass 0 for no retries",
            ),
            (self.seed >= 0, f"--seed must be 0 or more, got {self.seed}; pass a non-negative integer"),
            (
                self.name not in {"", ".", ".."} and "/" not in self.name and not self.name.startswith("-"),
                f"--name {self.name!r} must be a plain directory name; use letters, digits, '-' or '_'",
            ),
        ]
        checks += [
            (
                self.searcher in (None, *SEARCHERS),
                f"unknown --searcher {self.searcher!r}; use one of: {', '.join(SEARCHERS)}",
            ),
            (
                self.scheduler in (None, *SCHEDULERS),
                f"unknown --scheduler {self.scheduler!r}; use one of: {', '.join(SCHEDULERS)}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)
        if (
            not self.remote_storage
            and Path(self.storage).expanduser().exists()
            and not Path(self.storage).expanduser().is_dir()
        ):
            raise SettingsError(
                f"--storage {self.storage} is a file, not a directory; pass a directory (it is created if missing)"
            )

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> SweepSettings:
        if preset not in PRESETS:
            raise SettingsError(f"unknown preset {preset!r}; use one of: {', '.join(PRESETS)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(**{**PRESETS[preset], **given})

    @property
    def remote_storage(self) -> bool:
        """True for a URI (s3://, gs://, file://...): Ray writes there, tuner keeps a local copy."""
        return "://" in self.storage

    @property
    def experiment_dir(self) -> Path:
        """The local experiment directory: under --storage, or under results/ for a URI storage."""
        root = RESULTS_DIR if self.remote_storage else self.storage
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
    return SweepSettings(**{k: v for k, v in doc.items() if k in known}), {
        k: v for k, v in doc.items() if k not in known
    }
