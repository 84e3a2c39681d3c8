"""Turn a Ray Tune experiment directory into tables a person can read, without Ray.

Each trial directory holds Ray's `result.json` (one JSON line per reported
epoch) and, when the trial failed, `error.txt`. From those and the sweep's
settings this module writes, beside them:

- `history.csv`: one row per reported epoch of every trial (HISTORY_COLUMNS);
- `trials.csv`: one row per trial (TRIAL_COLUMNS plus `config/<name>` columns);
- `best.json`: the best trial's config, metrics and checkpoint;
- `best_model.pt`: the best trial's model config and weights, nothing else.

Why a trial stopped is derived from its history, so the answer is the same
for a finished sweep and for one that was interrupted and resumed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from tuner.checkpoints import BEST_MODEL_FILE, load_checkpoint
from tuner.settings import SweepSettings, load_settings
from tuner.stoppers import is_plateau

HISTORY_COLUMNS = ["trial_id", "epoch", "train_loss", "val_loss", "val_psnr", "epoch_time_s", "time_total_s"]
TRIAL_COLUMNS = [
    "trial_id", "status", "epochs", "val_loss", "val_psnr", "best_val_loss", "best_val_psnr",
    "train_loss", "node_id", "checkpoint",
]
STATUSES = ("completed", "asha", "plateau", "diverged", "error", "unfinished")
RESULT_FILE, ERROR_FILE = "result.json", "error.txt"


@dataclass
class Summary:
    trials: pd.DataFrame
    history: pd.DataFrame
    best: dict[str, Any] | None


def trial_dirs(exp_dir: Path) -> list[Path]:
    return sorted(p.parent for p in Path(exp_dir).glob(f"*/{RESULT_FILE}"))


def _read_results(trial_dir: Path) -> list[dict[str, Any]]:
    """One row per epoch. A trial resumed from its checkpoint may report an epoch again
    (logged before a crash, but not checkpointed): the later report wins."""
    by_epoch: dict[Any, dict[str, Any]] = {}
    for line in (trial_dir / RESULT_FILE).read_text().splitlines():
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut short by a killed process: keep what came before
            by_epoch[row.get("epoch", row.get("training_iteration"))] = row
    return list(by_epoch.values())


def _latest_checkpoint(trial_dir: Path) -> str:
    found = sorted(trial_dir.glob("checkpoint_*/checkpoint.pt"))
    return str(found[-1]) if found else ""


def ray_statuses(exp_dir: Path) -> dict[str, str]:
    """Ray's own final status per trial id (TERMINATED, ERROR, RUNNING, ...), from its newest
    experiment_state file. That format is Ray's, not ours: if it cannot be read, return {} and
    let the callers fall back on what the trial directories show."""
    try:
        newest = max(Path(exp_dir).glob("experiment_state-*.json"), key=lambda p: p.stat().st_mtime)
        statuses = {}
        for entry in json.loads(newest.read_text())["trial_data"]:
            trial = json.loads(entry[0]) if isinstance(entry[0], str) else entry[0]
            statuses[str(trial["trial_id"])] = str(trial["status"])
        return statuses
    except (ValueError, KeyError, IndexError, TypeError, OSError):
        return {}


def _status(history: list[dict[str, Any]], ray_status: str | None, errored: bool, settings: SweepSettings,
            finished: bool) -> str:
    losses = [float(r["val_loss"]) for r in history]
    # error.txt stays after a successful retry, so Ray's status decides when it is known.
    if ray_status == "ERROR" or (ray_status is None and errored):
        return "error"
    if history and (history[-1].get("diverged") or not math.isfinite(losses[-1])):
        return "diverged"
    if len(history) >= settings.max_epochs:
        return "completed"
    if is_plateau(losses, settings.patience, settings.min_delta):
        return "plateau"
    if ray_status in ("RUNNING", "PENDING", "PAUSED"):
        return "unfinished"
    return "asha" if history and (finished or ray_status == "TERMINATED") else "unfinished"


def _trial_row(trial_dir: Path, settings: SweepSettings, statuses: dict[str, str],
               finished: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    history = _read_results(trial_dir)
    errored = (trial_dir / ERROR_FILE).exists()
    config = history[0]["config"] if history else json.loads((trial_dir / "params.json").read_text())
    trial_id = history[0]["trial_id"] if history else trial_dir.name.removeprefix("trial_")
    finite = [r for r in history if math.isfinite(float(r["val_loss"]))]
    best = min(finite, key=lambda r: r["val_loss"]) if finite else {}
    last = history[-1] if history else {}
    row = {
        "trial_id": trial_id,
        "status": _status(history, statuses.get(str(trial_id)), errored, settings, finished),
        "epochs": len(history),
        "val_loss": last.get("val_loss", math.nan),
        "val_psnr": last.get("val_psnr", math.nan),
        "best_val_loss": best.get("val_loss", math.nan),
        "best_val_psnr": best.get("val_psnr", math.nan),
        "train_loss": last.get("train_loss", math.nan),
        "node_id": last.get("node_id", ""),
        "checkpoint": _latest_checkpoint(trial_dir),
        **{f"config/{k}": v for k, v in config.items()},
    }
    epochs = [{"trial_id": trial_id, **{c: r.get(c, math.nan) for c in HISTORY_COLUMNS[1:]}} for r in history]
    return row, epochs


def collect(exp_dir: Path, finished: bool) -> Summary:
    """Read every trial of an experiment into DataFrames; the best is the lowest final val_loss."""
    settings, _ = load_settings(exp_dir)
    statuses = ray_statuses(exp_dir)
    rows, epochs = [], []
    for trial_dir in trial_dirs(exp_dir):
        row, history = _trial_row(trial_dir, settings, statuses, finished)
        rows.append(row)
        epochs.extend(history)
    trials = pd.DataFrame(rows, columns=TRIAL_COLUMNS if not rows else None)
    if rows:
        trials = trials.sort_values("val_loss", na_position="last").reset_index(drop=True)
    history = pd.DataFrame(epochs, columns=HISTORY_COLUMNS)
    return Summary(trials, history, _best(trials))


def _best(trials: pd.DataFrame) -> dict[str, Any] | None:
    # Chosen by metrics alone: a best trial whose checkpoint went missing is reported as such, not skipped.
    usable = trials[trials["val_loss"].notna() & trials["status"].isin(["completed", "asha", "plateau", "unfinished"])] if len(trials) else trials
    if not len(usable):
        return None
    top = usable.iloc[0]
    config = {k.removeprefix("config/"): _plain(v) for k, v in top.items() if k.startswith("config/")}
    metrics = {k: _plain(top[k]) for k in ("val_loss", "val_psnr", "best_val_loss", "best_val_psnr", "epochs", "status")}
    return {"trial_id": top["trial_id"], "config": config, "metrics": metrics, "checkpoint": top["checkpoint"]}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def summarise(exp_dir: Path, finished: bool = True) -> Summary:
    """collect() and write trials.csv, history.csv, best.json and best_model.pt into exp_dir."""
    exp_dir = Path(exp_dir)
    summary = collect(exp_dir, finished)
    summary.trials.to_csv(exp_dir / "trials.csv", index=False)
    summary.history.to_csv(exp_dir / "history.csv", index=False)
    if summary.best is not None and summary.best["checkpoint"]:
        state = load_checkpoint(summary.best["checkpoint"])
        model_file = exp_dir / BEST_MODEL_FILE
        torch.save({"model_config": state["model_config"], "model": state["model"], "metrics": summary.best["metrics"],
                    "trial_id": summary.best["trial_id"]}, model_file)
        summary.best["model_file"] = str(model_file)
        (exp_dir / "best.json").write_text(json.dumps(summary.best, indent=2))
    return summary


LEADERBOARD_COLUMNS = ["trial_id", "status", "epochs", "val_psnr", "val_loss"]
FORMATS = ("table", "csv", "json", "markdown")


def leaderboard(trials: pd.DataFrame, top: int = 5) -> str:
    cols = LEADERBOARD_COLUMNS + [c for c in trials.columns if c.startswith("config/")]
    return render(trials[cols].head(top).rename(columns=lambda c: c.removeprefix("config/")), "table")


def render(frame: pd.DataFrame, fmt: str) -> str:
    """A DataFrame as text: an aligned table, CSV, JSON records or a Markdown table."""
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        return frame.to_json(orient="records", indent=2)
    cells = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    if fmt == "markdown":
        rows = [list(frame.columns), ["---"] * len(frame.columns), *cells]
        return "\n".join("| " + " | ".join(r) + " |" for r in rows)
    if fmt == "table":
        return frame.to_string(index=False, float_format=lambda v: f"{v:.4g}") if len(frame) else "(no trials)"
    raise ValueError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
