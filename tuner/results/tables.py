"""Turn an experiment's record into tables a person can read, without Ray.

From tuner's own record (record.py) and the sweep's settings this module writes:

- `history.csv`: one row per reported epoch of every trial (HISTORY_COLUMNS);
- `trials.csv`: one row per trial (TRIAL_COLUMNS plus `config/<name>` columns);
- `best.json`: the best trial's config, metrics and checkpoint;
- `best_model.pt`: the best trial's model config and weights, nothing else.

Why a trial stopped is derived from its history and how it ended, so the
answer is the same for a finished sweep and for one that was interrupted and
resumed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tuner.core import metrics
from tuner.core.constants import BEST_MODEL_FILE, METRIC, MODE
from tuner.core.files import replaced, write_text
from tuner.results import pareto, record
from tuner.search.plateau import is_plateau
from tuner.search.schedulers import SCHEDULERS
from tuner.search.settings import SweepSettings, load_settings

# Columns from the metric registry: a metric registered there appears here by itself.
HISTORY_COLUMNS = ["trial_id", "epoch", *metrics.names(), "time_total_s"]
TRIAL_COLUMNS = [
    "trial_id",
    "status",
    "epochs",
    *(m.name for m in metrics.per_trial()),  # the last epoch's value
    *(f"best_{m.name}" for m in metrics.per_trial()),  # the best epoch's, by the metric's direction
    "node_id",
    "checkpoint",
]


@dataclass
class Summary:
    trials: pd.DataFrame
    history: pd.DataFrame
    best: dict[str, Any] | None


def _latest_checkpoint(trial_dir: Path) -> str:
    # Newest by time, then name: a trial restored from Ray's older saved state numbers its checkpoints
    # anew, and names linked to one checkpoint on resume (run.resume.refill_deleted_checkpoints) tie.
    # Any folder of the trial's holding tuner's checkpoint file: Ray's folder names are not read here.
    found = sorted(trial_dir.glob("*/checkpoint.pt"), key=lambda p: (p.stat().st_mtime_ns, p.parent.name))
    return str(found[-1]) if found else ""


def _status(trial: record.TrialRecord, settings: SweepSettings, metric: str = METRIC, mode: str = MODE) -> str:
    """How a trial ended. Ray's TERMINATED covers finishing, the scheduler and the stopper alike;
    the history tells them apart. A trial cut early that is not a plateau was cut by the scheduler."""
    values = [_number(e.get(metric)) for e in trial.epochs]
    if trial.outcome == "error":
        return "error"
    if trial.epochs and (trial.epochs[-1].get("diverged") or not math.isfinite(values[-1])):
        return "diverged"
    if len(trial.epochs) >= settings.max_epochs:
        return "completed"
    if trial.outcome is None:
        return "unfinished"
    if settings.plateau and is_plateau(values, settings.patience, settings.min_delta, mode):
        return "plateau"
    stopped_by = SCHEDULERS[settings.scheduler or "asha"].status
    return stopped_by if trial.epochs and stopped_by else "unfinished"


def _trial_row(
    exp_dir: Path, trial: record.TrialRecord, settings: SweepSettings, metric: str = METRIC, mode: str = MODE
) -> dict[str, Any]:
    last = trial.epochs[-1] if trial.epochs else {}
    summarised = metrics.per_trial()
    return {
        "trial_id": trial.trial_id,
        "status": _status(trial, settings, metric, mode),
        "epochs": len(trial.epochs),
        **{m.name: _number(last.get(m.name)) for m in summarised},
        **{
            f"best_{m.name}": metrics.best([_number(e.get(m.name)) for e in trial.epochs], m.direction)
            for m in summarised
        },
        "node_id": last.get("node_id") or "",
        "checkpoint": _latest_checkpoint(exp_dir / f"trial_{trial.trial_id}"),
        **{f"config/{k}": v for k, v in trial.config.items()},
    }


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def collect(exp_dir: Path, metric: str = METRIC, mode: str = MODE) -> Summary:
    """Read every trial of an experiment into DataFrames, best first: by the final `metric` in `mode`.

    RecordError (one line) when the record is damaged; nothing is read past what it says."""
    exp_dir = Path(exp_dir)
    settings, _ = load_settings(exp_dir)
    trials_by_id = record.read(exp_dir)
    rows = [_trial_row(exp_dir, t, settings, metric, mode) for t in trials_by_id.values()]
    epochs = [
        {"trial_id": t.trial_id, **{c: _number(e.get(c)) for c in HISTORY_COLUMNS[1:]}}
        for t in trials_by_id.values()
        for e in t.epochs
    ]
    trials = pareto.with_retimed(pd.DataFrame(rows, columns=TRIAL_COLUMNS if not rows else None), exp_dir)
    if rows:
        trials = trials.sort_values(metric, ascending=mode == "min", na_position="last", kind="stable")
        trials = trials.reset_index(drop=True)
    history = pd.DataFrame(epochs, columns=HISTORY_COLUMNS)
    if len(history):
        history["epoch"] = history["epoch"].astype(int)
    return Summary(trials, history, _best(trials, metric))


def _best(trials: pd.DataFrame, metric: str = METRIC) -> dict[str, Any] | None:
    """The first usable trial of `trials`, which come best first (collect sorts them by `metric` in its mode)."""
    # Chosen by metrics alone: a best trial whose checkpoint went missing is reported as such, not skipped.
    # Whatever ended it, a trial with a finite metric counts, except one that failed (diverged ones have none).
    usable = trials[trials[metric].notna() & trials["status"].ne("error")] if len(trials) else trials
    if not len(usable):
        return None
    top = usable.iloc[0]
    config = {k.removeprefix("config/"): _plain(v) for k, v in top.items() if k.startswith("config/")}
    names = [m.name for m in metrics.per_trial()]
    shown = [metric, *[n for n in names if n != metric], *[f"best_{n}" for n in names], "epochs", "status"]
    summary = {k: _plain(top[k]) for k in shown if k in top}
    return {"trial_id": top["trial_id"], "config": config, "metrics": summary, "checkpoint": top["checkpoint"]}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def summarise(exp_dir: Path) -> Summary:
    """collect() and write trials.csv, history.csv, best.json and best_model.pt into exp_dir."""
    exp_dir = Path(exp_dir)
    summary = collect(exp_dir)
    # Paths in the files are relative to the experiment, so a copied or moved folder's files stay true.
    on_disk = summary.trials.assign(checkpoint=summary.trials["checkpoint"].map(lambda c: _relative(c, exp_dir)))
    with replaced(exp_dir / "trials.csv") as temp:
        on_disk.to_csv(temp, index=False)
    with replaced(exp_dir / "history.csv") as temp:
        summary.history.to_csv(temp, index=False)
    if summary.best is None or not summary.best["checkpoint"]:
        for stale in (exp_dir / "best.json", exp_dir / BEST_MODEL_FILE):
            stale.unlink(missing_ok=True)  # a best trial without a checkpoint leaves none, not an older one
    else:  # each replaced whole: an interrupt leaves both files (one maybe a summary older), never neither
        import torch

        from tuner.learn.checkpoints import load_checkpoint

        state = load_checkpoint(summary.best["checkpoint"])
        model_file = exp_dir / BEST_MODEL_FILE
        best = {
            "model_config": state["model_config"],
            "model": state["model"],
            "metrics": summary.best["metrics"],
            "trial_id": summary.best["trial_id"],
        }
        with replaced(model_file) as temp:
            torch.save(best, temp)
        summary.best["model_file"] = str(model_file)
        written = {**summary.best, "checkpoint": _relative(summary.best["checkpoint"], exp_dir)}
        doc = _strict({**written, "model_file": BEST_MODEL_FILE})
        write_text(exp_dir / "best.json", json.dumps(doc, indent=2, allow_nan=False))
    return summary


def _strict(value: Any) -> Any:
    """NaN and infinities as null: strict JSON readers (jq, JavaScript) refuse Python's bare NaN."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _relative(path: Any, exp_dir: Path) -> Any:
    """A path under the experiment as relative to it; anything else as it is."""
    try:
        return str(Path(path).relative_to(exp_dir)) if isinstance(path, str) and path else path
    except ValueError:
        return path
