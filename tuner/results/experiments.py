"""Find experiments on disk and load one for Python use (its state: results/state.py).

    import tuner
    exp = tuner.load_experiment("results/demo")    # or a name under results/
    exp.trials      # DataFrame, one row per trial (results.TRIAL_COLUMNS + config/<name>)
    exp.history     # DataFrame, one row per trial epoch (results.HISTORY_COLUMNS)
    exp.best        # {"trial_id", "config", "metrics", "checkpoint"} or None

No Ray needed: everything is read from the experiment directory's files.
"""

from __future__ import annotations

import json
import os
import shlex
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import torch

    from tuner.learn.data import ImageSplits
    from tuner.learn.model import StudentCNN

from tuner.core.constants import RESULTS_DIR
from tuner.core.errors import ExperimentError, TunerError, first_line, redact, shorten
from tuner.results import pareto, record
from tuner.results import tables as results
from tuner.results.state import STATE_FILE, read_state, state_damage
from tuner.search.settings import SETTINGS_FILE, SweepSettings, load_settings

SPACE_COPY = "space.yaml"  # the sweep's search space file, copied into the experiment
EXPERIMENT_MARKS = (SETTINGS_FILE, record.RECORD_FILE, STATE_FILE)  # any of them: a folder is an experiment


def local_root(storage: str | Path = RESULTS_DIR) -> Path:
    """Where the experiments of `storage` are on this machine. A sweep on a URI storage (s3://, file://) keeps
    its local copy under results/ of the directory it ran from, so `--storage s3://...` reads that copy."""
    return Path(RESULTS_DIR if "://" in str(storage) else storage).expanduser()


def find_experiment(name_or_path: str | Path, storage: str | Path = RESULTS_DIR) -> Path:
    """An experiment directory from a path or a name under `storage` (its local copy, for a URI)."""
    as_path, under_storage = Path(name_or_path).expanduser(), local_root(storage) / str(name_or_path)
    # A bare name means the one under --storage, even when the working directory holds a folder of that name.
    bare = "/" not in str(name_or_path) and not as_path.is_absolute()
    for candidate in (under_storage, as_path) if bare else (as_path, under_storage):
        # os.path.isfile answers False where Path.is_file raises (a name longer than the system allows).
        if any(os.path.isfile(candidate / mark) for mark in EXPERIMENT_MARKS):
            return candidate.resolve()  # without sweep.json, loading it says that it is damaged
    root = local_root(storage)
    where = f"{root}/, the local copies of {redact(str(storage))}," if "://" in str(storage) else f"{storage}/"
    # A --storage that is a file is said so by experiment_dirs; one that is missing simply holds nothing.
    known = [p.name for p in experiment_dirs(storage)] if os.path.exists(root) else []
    hint = f"known in {where}: {', '.join(known)}" if known else f"{where} holds no experiments"
    raise ExperimentError(
        f"no experiment {str(name_or_path)[:80]!r} ({hint}); run `tuner list` or pass the experiment's path"
    )


def experiment_dirs(storage: str | Path = RESULTS_DIR) -> list[Path]:
    """Experiment directories under `storage` (its local copies, for a URI); a storage that is a file or does
    not exist is an error."""
    root = local_root(storage)
    if not os.path.isdir(root) and "://" in str(storage):
        raise ExperimentError(
            f"no local copies of {redact(str(storage))} here ({root}/ does not exist); run tuner in the directory "
            "the sweep ran in"
        )
    if not os.path.isdir(root):
        what = "is a file" if os.path.exists(root) else "does not exist"
        raise ExperimentError(
            f"--storage {storage} {what}; pass the directory that holds your experiments (default: {RESULTS_DIR})"
        )
    found = sorted(p.parent for p in root.glob(f"*/{SETTINGS_FILE}"))
    if "://" in str(storage):  # results/ may also hold local sweeps and copies of other URIs
        return [d for d in found if _same_place(_stored_at(d), str(storage))]
    # A folder that lost its sweep.json is still an experiment (listed as damaged), not nothing.
    return sorted({p.parent for mark in EXPERIMENT_MARKS for p in root.glob(f"*/{mark}")})


def _stored_at(exp_dir: Path) -> str:
    """The storage sweep.json names; "" when it cannot be read (a damaged folder is no URI's copy)."""
    try:
        return str(json.loads((exp_dir / SETTINGS_FILE).read_text()).get("storage", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _same_place(a: str, b: str) -> bool:
    """Two storage URIs name one place: the same scheme, bucket and path, whatever their query says."""
    x, y = urllib.parse.urlsplit(a), urllib.parse.urlsplit(b)
    return (x.scheme, x.netloc.rsplit("@", 1)[-1], x.path.rstrip("/")) == (
        y.scheme,
        y.netloc.rsplit("@", 1)[-1],
        y.path.rstrip("/"),
    )


@dataclass
class Experiment:
    path: Path
    settings: SweepSettings
    info: dict[str, Any]
    state: str
    trials: pd.DataFrame
    history: pd.DataFrame
    best: dict[str, Any] | None
    state_damage: str = ""  # what is wrong with state.json, when `state` was worked out from the record instead

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def state_text(self) -> str:
        """The state as tables show it: `finished`, or `finished (state.json missing; state from record.jsonl)`."""
        return f"{self.state} ({self.state_damage})" if self.state_damage else self.state

    def trial(self, trial_id: str) -> pd.Series:
        match = self.trials[self.trials["trial_id"].astype(str) == str(trial_id)]
        if match.empty:
            raise ExperimentError(
                f"experiment {self.name!r} has no trial {trial_id!r}; "
                f"its trials: {', '.join(self.trials['trial_id'].astype(str))}"
            )
        return match.iloc[0]

    def checkpoint(self, trial_id: str | None = None) -> Path:
        """Checkpoint file of a trial, or of the best trial."""
        if trial_id is None:
            if self.best is None:
                name = shlex.quote(self.name)
                todo = {
                    "running": f"wait for its first epoch (`tuner results {name}` shows it)",
                    "interrupted": f"continue it with `tuner sweep --resume {name}`",
                }.get(self.state, "run a new sweep")
                raise ExperimentError(f"experiment {self.name!r} has no trial that finished an epoch; {todo}")
            ckpt = self.best["checkpoint"]
        else:
            ckpt = self.trial(trial_id)["checkpoint"]
        if not isinstance(ckpt, str) or not ckpt or not Path(ckpt).is_file():
            raise ExperimentError(
                f"trial {trial_id or self.best['trial_id']} of {self.name!r} has no checkpoint on disk; "
                f"pass another trial's checkpoint_* folder, or `tuner export {self.name} --trial ID`"
            )
        return Path(ckpt)

    def checkpoint_bytes(self, trial_id: str | None = None) -> tuple[Path, bytes]:
        """A checkpoint's path and contents, read at once: a running sweep deletes a trial's older checkpoints
        as it saves new ones, so a path read from the tables may be gone a few seconds later."""
        path = self.checkpoint(trial_id)
        try:
            return path, path.read_bytes()
        except OSError as exc:
            raise ExperimentError(
                f"{path} could not be read ({exc.strerror}); if the sweep is running it replaced that checkpoint "
                "meanwhile: run the command again"
            ) from None

    @property
    def space_file(self) -> Path | str:
        """The search space the sweep used: its copy inside the folder, or (tuner 0.1) the path it was read from."""
        recorded = self.info.get("search_space", self.settings.space)
        return self.path / recorded if recorded == SPACE_COPY else recorded

    @property
    def dataset(self) -> str:
        """The dataset the sweep used (what `auto` resolved to)."""
        return self.info.get("dataset_used", self.settings.dataset)

    def splits(self, with_train: bool = False) -> ImageSplits:
        """The experiment's own images, rebuilt from its recorded settings (training images only if asked)."""
        from tuner.learn.data import images_of

        return images_of(self.settings, self.dataset, with_train=with_train)

    def heldout_images(self, count: int) -> torch.Tensor:
        """Up to `count` of the validation images no trial trained on."""
        return self.splits().val[:count]


def load_experiment(name_or_path: str | Path, storage: str | Path = RESULTS_DIR) -> Experiment:
    """An experiment (a name under `storage`, or a path) with its trials, history and best trial."""
    path = find_experiment(name_or_path, storage)
    settings, info = load_settings(path)  # a damaged sweep.json is an ExperimentError of one line
    found = pareto.retimed(path)
    if found and info.get("teacher_speed"):  # the teacher as timed again beside the models, at the end
        info = {**info, "teacher_speed": {**info["teacher_speed"], **found["teacher"]}}
    summary = results.collect(path)
    state = read_state(path)
    return Experiment(path, settings, info, state, summary.trials, summary.history, summary.best, state_damage(path))


def list_experiments(storage: str | Path = RESULTS_DIR) -> pd.DataFrame:
    """One row per experiment under `storage`: name, date, dataset, trials, best val PSNR, state. A damaged
    experiment is listed too, its state `damaged: <what>`, so one bad file never hides the others."""
    rows = []
    for path in experiment_dirs(storage):
        row = {"name": path.name, "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))}
        try:
            exp = load_experiment(path)
        except (TunerError, OSError, ValueError, KeyError, TypeError) as exc:
            rows.append(
                {**row, "dataset": "", "trials": None, "best_val_psnr": float("nan"), "state": _damage(path, exc)}
            )
            continue
        best = exp.trials["val_psnr"].max() if len(exp.trials) else float("nan")
        rows.append(
            {**row, "dataset": exp.dataset, "trials": len(exp.trials), "best_val_psnr": best, "state": exp.state_text}
        )
    frame = pd.DataFrame(rows, columns=["name", "date", "dataset", "trials", "best_val_psnr", "state"])
    # A damaged experiment's trials are unknown: a nullable integer keeps the others' counts from reading 2.0.
    return frame.astype({"trials": "Int64", "best_val_psnr": float}).round({"best_val_psnr": 2})


def _damage(path: Path, exc: Exception) -> str:
    """`damaged: <what>` for `tuner list`: the problem without its fix, and without the experiment's own path."""
    what = first_line(exc, 200).split("; ")[0].replace(f"{path.resolve()}{os.sep}", "")
    return shorten(f"damaged: {what if isinstance(exc, TunerError) else f'{type(exc).__name__}: {what}'}", 100)


def load_model(source: str | Path, trial: str | None = None, storage: str | Path = RESULTS_DIR) -> StudentCNN:
    """Rebuild a model, in eval mode, from a checkpoint file or directory, or from an experiment
    (a name under `storage` or a path): its best trial, or `trial`."""
    from tuner.learn.checkpoints import CHECKPOINT_FILE, load_model_file

    path = Path(source)
    if trial is None and (path.is_file() or (path / CHECKPOINT_FILE).is_file()):
        if path.name.endswith((".onnx", ".torchscript.pt")):  # exports that are no longer a tuner checkpoint
            raise ExperimentError(
                f"{path} is {'an ONNX' if path.suffix == '.onnx' else 'a TorchScript'} export, not a checkpoint; "
                "load_model reads checkpoints and state_dict exports (`tuner evaluate` scores any of them)"
            )
        return load_model_file(path)
    return load_model_file(load_experiment(source, storage).checkpoint(trial))
