"""tuner's own record of a sweep: one JSON line per event, written by the driver as it happens.

    {"event": "start", "trial_id": "a1b2", "config": {...}, "time": ...}
    {"event": "epoch", "trial_id": "a1b2", "epoch": 1, "val_loss": ..., ...}
    {"event": "config", "trial_id": "a1b2", "config": {...}}      (PBT changed the trial's config)
    {"event": "end",   "trial_id": "a1b2", "outcome": "terminated" | "error" | "lost", "error": "...", "time": ...}

Every table and command reads this file (`record.jsonl` in the experiment
directory), never Ray's optional loggers (result.json, which
TUNE_DISABLE_AUTO_CALLBACK_LOGGERS turns off) or its private state files. A
trial without an "end" line did not finish: the sweep was interrupted while it
ran, and `--resume` continues it. A "lost" trial started after Ray last saved
its own state, so a resume cannot continue it and runs its configuration again
as a new trial; its lines stay in the file, and `read` leaves it out. No Ray or
torch here.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECORD_FILE = "record.jsonl"
LOST = "lost"
EPOCH_KEYS = ("epoch", "train_loss", "val_loss", "val_psnr", "epoch_time_s", "time_total_s", "node_id", "diverged")


@dataclass
class TrialRecord:
    trial_id: str
    config: dict[str, Any] = field(default_factory=dict)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    outcome: str | None = None  # "terminated" or "error" once the trial ended; None while unfinished
    error: str = ""


def append(exp_dir: Path, event: str, trial_id: str, **fields: Any) -> None:
    """Add one line; opened and closed each time, so a killed sweep loses at most the line being written."""
    line = json.dumps({"event": event, "trial_id": str(trial_id), "time": time.time(), **fields}, default=str)
    with open(Path(exp_dir) / RECORD_FILE, "a") as f:
        f.write(line + "\n")


def read(exp_dir: Path) -> dict[str, TrialRecord]:
    """Every trial in the order it started, lost ones left out. A repeated epoch (reported before a crash, then again
    after a retry from the checkpoint) keeps its later report; a later start or end replaces an earlier one."""
    path = Path(exp_dir) / RECORD_FILE
    trials: dict[str, TrialRecord] = {}
    by_epoch: dict[str, dict[int, dict[str, Any]]] = {}
    if not path.is_file():
        return trials
    for line in path.read_text().splitlines():
        try:
            doc = json.loads(line)
            trial_id = doc["trial_id"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut short by a killed process
        trial = trials.setdefault(trial_id, TrialRecord(trial_id))
        if doc["event"] == "start":
            trial.config = doc.get("config", {})
            trial.outcome = None  # started again after an interruption
        elif doc["event"] == "config":
            trial.config = doc.get("config", trial.config)
        elif doc["event"] == "epoch":
            by_epoch.setdefault(trial_id, {})[int(doc["epoch"])] = {k: doc.get(k) for k in EPOCH_KEYS}
        elif doc["event"] == "end":
            trial.outcome, trial.error = doc.get("outcome"), doc.get("error", "")
    for trial_id, epochs in by_epoch.items():
        trials[trial_id].epochs = [epochs[e] for e in sorted(epochs)]
    return {trial_id: t for trial_id, t in trials.items() if t.outcome != LOST}


def unfinished(exp_dir: Path) -> list[str]:
    """Trials that started but have no end: what an interruption left running."""
    return [t.trial_id for t in read(exp_dir).values() if t.outcome is None]
