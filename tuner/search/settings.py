"""Sweep settings: one dataclass, two presets, and the check that keeps them sane.

`quick` is sized for a 2-core laptop on the built-in synthetic images (a few
minutes); `full` for a workstation with the real CIFAR-10. Any command-line
flag overrides the preset's value.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tuner.core.configs import SEED_MAX  # Optuna's samplers take 32-bit seeds
from tuner.core.constants import RESULTS_DIR
from tuner.core.errors import ExperimentError, SettingsError, first_line
from tuner.core.memory import check_images_fit
from tuner.search.schedulers import SCHEDULERS
from tuner.search.searchers import SEARCHERS

SETTINGS_FILE = "sweep.json"

PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(
        dataset="auto",
        num_samples=3,  # a 4th trial waits for a free core, adding a start and an epoch (docs/benchmarks.md)
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

# Linux's limits on a file name and a path, in bytes; trials add /trial_<id>/checkpoint_<n>/... to the experiment's.
NAME_MAX, PATH_MAX, TRIAL_PATH_ROOM = 255, 4096, 128
SEED_FIX = f"pass a whole number from 0 to {SEED_MAX}"
# Whole-number flags: (field, smallest, largest or None, what to do).
WHOLE_FLAGS = (
    # Each trial is a folder, record lines and an Optuna trial; beyond these a typo is likelier than a plan.
    ("num_samples", 1, 100_000, "pass 1 to 100,000"),
    ("max_epochs", 1, 100_000, "pass 1 to 100,000"),
    ("grace_period", 1, None, "pass 1 or more"),
    ("patience", 1, None, "pass 1 or more"),
    ("train_size", 1, None, "pass 1 or more"),
    ("val_size", 1, None, "pass 1 or more"),
    ("reduction_factor", 2, None, "pass 2 or more"),
    ("concurrency", 1, None, "leave it out to use every CPU"),
    ("max_failures", 0, None, "pass 0 for no retries"),
    ("seed", 0, SEED_MAX, SEED_FIX),
)
# Number flags: (field, test, what it must be, what to do).
REAL_FLAGS = (
    ("min_delta", lambda v: 0 <= v < 1, "a relative improvement in [0, 1)", "try 0.01"),
    ("cpus_per_trial", lambda v: v > 0, "above 0", "try 1"),
    ("gpus_per_trial", lambda v: v >= 0, "0 or more", "try 0.25 to share a GPU"),
)
# Fields that may be None (left to a default chosen later).
OPTIONAL = {"concurrency", "data_dir", "address", "searcher", "scheduler", "mlflow"}


def check_whole(flag: str, value: Any, low: int, high: int | None, fix: str) -> None:
    """A whole-number flag in [low, high]; a SettingsError that says what to pass if not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SettingsError(f"{flag} must be a whole number, got {value!r}; {fix}")
    if value < low:
        raise SettingsError(f"{flag} must be {f'at least {low}' if low else '0 or more'}, got {value}; {fix}")
    if high is not None and value > high:
        raise SettingsError(f"{flag} must be at most {high}, got {value}; {fix}")


def check_seed(seed: Any) -> None:
    """The one seed check, shared by `tuner sweep` and `tuner evaluate`."""
    check_whole("--seed", seed, 0, SEED_MAX, SEED_FIX)


@dataclass(frozen=True)
class SweepSettings:
    name: str = "default"
    dataset: str = "auto"
    space: str = "default"
    num_samples: int = 4
    max_epochs: int = 3
    grace_period: int = 1
    # ASHA keeps the top quarter at each rung; a trial stops after 3 epochs without a 1% gain. Chosen with
    # benchmarks/replay_stopping.py: the only ones that kept FIFO's best in every seed (docs/benchmarks.md).
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
    # Search fidelity against speed: two objectives, val_loss and each trial's images_per_s (space: pareto).
    pareto: bool = False
    mlflow: str | None = None  # MLflow tracking URI; kept here so that --resume logs to the same runs

    def __post_init__(self) -> None:
        """Every flag is checked here, before a directory is created or Ray is started."""
        self._check_numbers()
        self._check_names()

    def _check_numbers(self) -> None:
        for key, low, high, fix in WHOLE_FLAGS:
            if not (getattr(self, key) is None and key in OPTIONAL):
                check_whole(f"--{key.replace('_', '-')}", getattr(self, key), low, high, fix)
        for key, ok, rule, fix in REAL_FLAGS:
            value, flag = getattr(self, key), f"--{key.replace('_', '-')}"
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise SettingsError(f"{flag} must be a finite number, got {value!r}; {fix}")
            if not ok(value):
                raise SettingsError(f"{flag} must be {rule}, got {value:g}; {fix}")
        if self.grace_period > self.max_epochs:
            raise SettingsError(
                f"--grace-period ({self.grace_period}) exceeds --max-epochs ({self.max_epochs}); lower it"
            )

    def _check_names(self) -> None:
        for key in ("name", "dataset", "space", "storage", "data_dir", "address", "searcher", "scheduler", "mlflow"):
            if not isinstance(getattr(self, key), str) and not (getattr(self, key) is None and key in OPTIONAL):
                raise SettingsError(f"--{key.replace('_', '-')} must be text, got {getattr(self, key)!r}; pass text")
        for key in ("benchmark", "plateau", "pareto"):
            if not isinstance(getattr(self, key), bool):
                raise SettingsError(f"{key} must be true or false, got {getattr(self, key)!r}; write true or false")
        name, size = self.name, len(self.name.encode())
        checks = [
            (
                name not in {"", ".", ".."} and "/" not in name and not name.startswith("-") and name.isprintable(),
                f"--name {name!r} must be a plain directory name; use letters, digits, '-' or '_'",
            ),
            (size <= NAME_MAX, f"--name is {size} bytes long, over the {NAME_MAX} of a file name; pass a shorter one"),
        ]
        for key, names in (("searcher", SEARCHERS), ("scheduler", SCHEDULERS)):
            value = getattr(self, key)
            checks.append((value in (None, *names), f"unknown --{key} {value!r}; use one of: {', '.join(names)}"))
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)
        self._check_paths()

    def _check_paths(self) -> None:
        """The experiment's directory must be one this system can create: each part a file name, the whole a path."""
        try:
            exp_dir = self.experiment_dir
        except (OSError, ValueError) as exc:  # a NUL byte
            raise SettingsError(
                f"--storage {self.storage!r} cannot be used ({first_line(exc)}); pass another"
            ) from None
        longest = max(exp_dir.parts, key=lambda part: len(part.encode()))
        if len(longest.encode()) > NAME_MAX:
            raise SettingsError(
                f"--storage has a part {len(longest.encode())} bytes long ({longest[:20]}...), over the "
                f"{NAME_MAX} of a file name; pass a shorter path"
            )
        if len(str(exp_dir).encode()) + TRIAL_PATH_ROOM > PATH_MAX:
            raise SettingsError(
                f"the experiment's path would be {len(str(exp_dir).encode())} bytes long, too long for its trials' "
                f"files (at most {PATH_MAX} bytes a path); pass a shorter --storage or --name"
            )
        storage = Path(self.storage).expanduser()
        # os.path.exists answers False where Path.exists raises (a path this system cannot stat).
        if not self.remote_storage and os.path.exists(storage) and not storage.is_dir():
            raise SettingsError(
                f"--storage {self.storage} is a file, not a directory; pass a directory (it is created if missing)"
            )

    def check_memory(self) -> None:
        """Refuse sizes whose synthetic images would not fit in memory: before Ray starts, not on loading (an
        experiment stays readable on a smaller machine). CIFAR-10 and a folder hold what they hold."""
        if self.dataset in ("synthetic", "auto"):
            check_images_fit(self.train_size + self.val_size, "--train-size and --val-size", copies=2)

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> SweepSettings:
        if preset not in PRESETS:
            raise SettingsError(f"unknown preset {preset!r}; use one of: {', '.join(PRESETS)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        if given.get("pareto"):
            given.setdefault("space", "pareto")  # a space that searches model size, unless one is named
        settings = cls(**{**PRESETS[preset], **given})
        settings.check_memory()
        return settings

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
        """Where Ray writes: the URI as given (its query, e.g. ?endpoint_override=..., kept), else the directory."""
        if not self.remote_storage:
            return str(self.experiment_dir.parent)
        base, mark, query = self.storage.partition("?")
        return f"{base.rstrip('/')}{mark}{query}"

    @property
    def ray_experiment_path(self) -> str:
        """The experiment under ray_storage_path; a URI's query stays at the end, where pyarrow reads it."""
        base, mark, query = self.ray_storage_path.partition("?")
        return f"{base}/{self.name}{mark}{query}"

    def save(self, directory: Path, **extra: Any) -> None:
        """Record the settings (and e.g. the dataset actually used) beside the experiment."""
        (directory / SETTINGS_FILE).write_text(json.dumps({**asdict(self), **extra}, indent=2))


def load_settings(directory: Path) -> tuple[SweepSettings, dict[str, Any]]:
    """Settings saved by `save` and the extra keys recorded with them; a damaged file is one ExperimentError."""
    path = Path(directory) / SETTINGS_FILE
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict):
            raise ValueError(f"a JSON {type(doc).__name__}, not an object")
        known = {f.name for f in fields(SweepSettings)}
        settings = SweepSettings(**{k: v for k, v in doc.items() if k in known})
    except (OSError, ValueError, SettingsError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc).split("; ")[0]
        raise ExperimentError(
            f"{path} cannot be read ({what}); restore it from a backup, or delete the experiment"
        ) from None
    return settings, {k: v for k, v in doc.items() if k not in known}
