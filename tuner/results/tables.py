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

from tuner.core.constants import BEST_MODEL_FILE, METRIC, TABLE_FORMATS
from tuner.core.errors import TunerError
from tuner.results import record
from tuner.search.plateau import is_plateau
from tuner.search.schedulers import SCHEDULERS, STATUSES
from tuner.search.settings import SweepSettings, load_settings

HISTORY_COLUMNS = ["trial_id", "epoch", "train_loss", "val_loss", "val_psnr", "epoch_time_s", "time_total_s"]
TRIAL_COLUMNS = [
    "trial_id",
    "status",
    "epochs",
    "val_loss",
    "val_psnr",
    "best_val_loss",
    "best_val_psnr",
    "train_loss",
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
    # anew, and names linked to one checkpoint on resume (checkpoints.refill_deleted_checkpoints) tie.
    found = sorted(trial_dir.glob("checkpoint_*/checkpoint.pt"), key=lambda p: (p.stat().st_mtime_ns, p.parent.name))
    return str(found[-1]) if found else ""


def _status(trial: record.TrialRecord, settings: SweepSettings) -> str:
    """How a trial ended. Ray's TERMINATED covers finishing, the scheduler and the stopper alike;
    the history tells them apart. A trial cut early that is not a plateau was cut by the scheduler."""
    losses = [float(e[METRIC]) if e[METRIC] is not None else math.nan for e in trial.epochs]
    if trial.outcome == "error":
        return "error"
    if trial.epochs and (trial.epochs[-1].get("diverged") or not math.isfinite(losses[-1])):
        return "diverged"
    if len(trial.epochs) >= settings.max_epochs:
        return "completed"
    if trial.outcome is None:
        return "unfinished"
    if settings.plateau and is_plateau(losses, settings.patience, settings.min_delta):
        return "plateau"
    stopped_by = SCHEDULERS[settings.scheduler or "asha"].status
    return stopped_by if trial.epochs and stopped_by else "unfinished"


def _trial_row(exp_dir: Path, trial: record.TrialRecord, settings: SweepSettings) -> dict[str, Any]:
    finite = [e for e in trial.epochs if e[METRIC] is not None and math.isfinite(float(e[METRIC]))]
    best = min(finite, key=lambda e: e[METRIC]) if finite else {}
    last = trial.epochs[-1] if trial.epochs else {}
    nan = math.nan
    return {
        "trial_id": trial.trial_id,
        "status": _status(trial, settings),
        "epochs": len(trial.epochs),
        "val_loss": _number(last.get("val_loss")),
        "val_psnr": _number(last.get("val_psnr")),
        "best_val_loss": best.get("val_loss", nan),
        "best_val_psnr": best.get("val_psnr", nan),
        "train_loss": _number(last.get("train_loss")),
        "node_id": last.get("node_id") or "",
        "checkpoint": _latest_checkpoint(exp_dir / f"trial_{trial.trial_id}"),
        **{f"config/{k}": v for k, v in trial.config.items()},
    }


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def collect(exp_dir: Path) -> Summary:
    """Read every trial of an experiment into DataFrames; the best is the lowest final val_loss."""
    exp_dir = Path(exp_dir)
    settings, _ = load_settings(exp_dir)
    trials_by_id = record.read(exp_dir)
    rows = [_trial_row(exp_dir, t, settings) for t in trials_by_id.values()]
    epochs = [
        {"trial_id": t.trial_id, **{c: _number(e.get(c)) for c in HISTORY_COLUMNS[1:]}}
        for t in trials_by_id.values()
        for e in t.epochs
    ]
    trials = pd.DataFrame(rows, columns=TRIAL_COLUMNS if not rows else None)
    if rows:
        trials = trials.sort_values(METRIC, na_position="last", kind="stable").reset_index(drop=True)
    history = pd.DataFrame(epochs, columns=HISTORY_COLUMNS)
    if len(history):
        history["epoch"] = history["epoch"].astype(int)
    return Summary(trials, history, _best(trials))


def _best(trials: pd.DataFrame) -> dict[str, Any] | None:
    # Chosen by metrics alone: a best trial whose checkpoint went missing is reported as such, not skipped.
    # Whatever ended it, a trial with a finite loss counts, except one that failed (diverged ones have none).
    usable = trials[trials[METRIC].notna() & trials["status"].ne("error")] if len(trials) else trials
    if not len(usable):
        return None
    top = usable.iloc[0]
    config = {k.removeprefix("config/"): _plain(v) for k, v in top.items() if k.startswith("config/")}
    metrics = {k: _plain(top[k]) for k in (METRIC, "val_psnr", "best_val_loss", "best_val_psnr", "epochs", "status")}
    return {"trial_id": top["trial_id"], "config": config, "metrics": metrics, "checkpoint": top["checkpoint"]}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def summarise(exp_dir: Path) -> Summary:
    """collect() and write trials.csv, history.csv, best.json and best_model.pt into exp_dir."""
    exp_dir = Path(exp_dir)
    summary = collect(exp_dir)
    summary.trials.to_csv(exp_dir / "trials.csv", index=False)
    summary.history.to_csv(exp_dir / "history.csv", index=False)
    if summary.best is not None and summary.best["checkpoint"]:
        import torch

        from tuner.learn.checkpoints import load_checkpoint

        state = load_checkpoint(summary.best["checkpoint"])
        model_file = exp_dir / BEST_MODEL_FILE
        torch.save(
            {
                "model_config": state["model_config"],
                "model": state["model"],
                "metrics": summary.best["metrics"],
                "trial_id": summary.best["trial_id"],
            },
            model_file,
        )
        summary.best["model_file"] = str(model_file)
        (exp_dir / "best.json").write_text(json.dumps(summary.best, indent=2))
    return summary


LEADERBOARD_COLUMNS = ["trial_id", "status", "epochs", "val_psnr", METRIC]


def leaderboard(
    trials: pd.DataFrame,
    sort: str = METRIC,
    descending: bool = False,
    top: int = 5,
    columns: list[str] | None = None,
    statuses: list[str] | None = None,
) -> pd.DataFrame:
    """The trials to show: filtered by status, sorted, the first `top`, in `columns` (names or parameters)."""
    if statuses:
        unknown = set(statuses) - set(STATUSES)
        if unknown:
            raise TunerError(f"unknown status {sorted(unknown)}; use some of: {', '.join(STATUSES)}")
        trials = trials[trials["status"].isin(statuses)]
    key = sort if sort in trials.columns else f"config/{sort}"
    if key not in trials.columns:
        raise TunerError(f"cannot sort by {sort!r}; use one of: {', '.join(trials.columns)}")
    # Higher is better for PSNR; lower for losses and everything else, unless asked.
    trials = trials.sort_values(key, ascending=not (descending or "psnr" in key), na_position="last", kind="stable")
    wanted = columns or LEADERBOARD_COLUMNS + [c for c in trials.columns if c.startswith("config/")]
    wanted = [c if c in trials.columns else f"config/{c}" for c in wanted]
    missing = [c for c in wanted if c not in trials.columns]
    if missing:
        raise TunerError(
            f"unknown columns {[m.removeprefix('config/') for m in missing]}; use some of: {', '.join(trials.columns)}"
        )
    return trials[wanted].head(top)


def render(frame: pd.DataFrame, fmt: str) -> str:
    """A DataFrame as text: an aligned table, CSV, JSON records or a Markdown table (parameters without `config/`)."""
    if fmt in ("table", "markdown"):
        frame = frame.rename(columns=lambda c: c.removeprefix("config/"))
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        return frame.to_json(orient="records", indent=2)
    cells = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    if fmt == "markdown":
        rows = [list(frame.columns), ["---"] * len(frame.columns), *cells]
        return "\n".join("| " + " | ".join(r) + " |" for r in rows)
    if fmt == "table":
        return frame.to_string(index=False, float_format=lambda v: f"{v:.4g}") if len(frame) else "(none)"
    raise TunerError(f"unknown format {fmt!r}; use one of: {', '.join(TABLE_FORMATS)}")


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
