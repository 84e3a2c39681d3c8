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

A record can be damaged. A last line that is not JSON is what a killed driver leaves: `scan` skips it
without a word, and the next `append` removes it. Anything else (a line that is not JSON before the last, a line
without its fields, trial folders but no record) is damage: `scan` returns it as `Damage`, and `read`
raises RecordError naming the first damaged line, so no table is built from a record that lies.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.core import metrics
from tuner.core.constants import CHECKPOINT_FILE
from tuner.core.errors import RecordError

RECORD_FILE = "record.jsonl"
LOST = "lost"
EVENTS = ("start", "epoch", "config", "end")
# Every registered metric, plus what Ray adds to each report.
EPOCH_KEYS = ("epoch", *metrics.names(), "time_total_s", "node_id", "diverged")

__all__ = ["RecordError"]  # re-exported: callers catch it from here


@dataclass
class TrialRecord:
    trial_id: str
    config: dict[str, Any] = field(default_factory=dict)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    outcome: str | None = None  # "terminated" or "error" once the trial ended; None while unfinished
    error: str = ""


@dataclass(frozen=True)
class Damage:
    line: int  # 1-based; 0 when the whole file is missing
    what: str

    def message(self, exp_dir: Path, more: int = 0) -> str:
        """One line for a RecordError: where, what (and how many more), and what to do."""
        path = Path(exp_dir) / RECORD_FILE
        if self.line == 0:
            return f"{path} is missing ({self.what}); restore it from a backup: tables and resume are built from it"
        if self.line < 0:
            return f"{path} is cut short ({self.what}); restore it from a backup: tables and resume are built from it"
        others = f", and {more} more damaged line{'s' if more > 1 else ''} after it" if more else ""
        return (
            f"{path} is damaged at line {self.line} ({self.what}{others}); "
            "repair or delete the line (each line is one JSON event), then run the command again"
        )


def append(exp_dir: Path, event: str, trial_id: str, **fields: Any) -> None:
    """Add one line; opened and closed each time, so a killed sweep loses at most the line being written."""
    line = json.dumps({"event": event, "trial_id": str(trial_id), "time": time.time(), **fields}, default=str)
    path = Path(exp_dir) / RECORD_FILE
    _drop_cut_line(path)
    with open(path, "a") as f:
        f.write(line + "\n")


def _drop_cut_line(path: Path) -> None:
    """Remove a last line that is not JSON: what a killed driver leaves (cut short, or with its newline
    flushed first), which `scan` skips. Else the next line would be glued to it, or put after it, and the
    record would read as damaged from then on."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "rb+") as f:
        # Lines are short: the last line starts within the last few kilobytes.
        start = max(0, size - (1 << 16))
        f.seek(start)
        tail = f.read()
        body = tail[:-1] if tail.endswith(b"\n") else tail
        cut = body.rfind(b"\n") + 1  # where the last line starts (0: the tail is one line)
        if tail.endswith(b"\n") and _is_json(body[cut:]):
            return
        f.truncate(start + cut if cut or start == 0 else start)
        f.flush()
        os.fsync(f.fileno())


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return not line.strip()  # an empty line is not a cut one
    return True


def _event(text: str) -> tuple[dict[str, Any] | None, str]:
    """A parsed line, or None and what is wrong with it."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return None, "not JSON"
    if not isinstance(doc, dict):
        return None, "not a JSON object"
    missing = [k for k in ("event", "trial_id") if k not in doc]
    if missing:
        return None, f"no {' or '.join(missing)}"
    if doc["event"] not in EVENTS:
        return None, f"unknown event {doc['event']!r}"
    if doc["event"] == "epoch":
        try:
            doc["epoch"] = int(doc["epoch"])
        except KeyError:
            return None, "an epoch line without `epoch`"
        except (TypeError, ValueError):
            return None, f"epoch {doc['epoch']!r} is not a whole number"
    return doc, ""


def scan(exp_dir: Path) -> tuple[dict[str, TrialRecord], list[Damage]]:
    """Every trial in the order it started, lost ones left out, and the damage found. A repeated epoch (reported
    before a crash, then again after a retry from the checkpoint) keeps its later report; a later start or end
    replaces an earlier one. Damaged lines are left out; the trials are what the rest of the record says."""
    exp_dir = Path(exp_dir)
    path = exp_dir / RECORD_FILE
    trials: dict[str, TrialRecord] = {}
    if not path.is_file():
        folders = sorted(p.name for p in exp_dir.glob("trial_*") if p.is_dir())
        damage = [Damage(0, f"the experiment has {len(folders)} trial folders, {folders[0]} first")] if folders else []
        return trials, damage
    by_epoch: dict[str, dict[int, dict[str, Any]]] = {}
    damage: list[Damage] = []
    lines = path.read_text(errors="replace").splitlines()
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        doc, problem = _event(text)
        if doc is None:
            if number < len(lines) or problem != "not JSON":  # a cut last line is a killed driver's, not damage
                damage.append(Damage(number, problem))
            continue
        trial_id = str(doc["trial_id"])
        trial = trials.setdefault(trial_id, TrialRecord(trial_id))
        if doc["event"] == "start":
            trial.config = doc.get("config", {})
            trial.outcome = None  # started again after an interruption
        elif doc["event"] == "config":
            trial.config = doc.get("config", trial.config)
        elif doc["event"] == "epoch":
            # Metrics an older tuner did not record (val_ssim) read as None, shown as NaN.
            by_epoch.setdefault(trial_id, {})[doc["epoch"]] = {k: doc.get(k) for k in EPOCH_KEYS}
        else:
            trial.outcome, trial.error = doc.get("outcome"), doc.get("error", "")
    for trial_id, epochs in by_epoch.items():
        trials[trial_id].epochs = [epochs[e] for e in sorted(epochs)]
    # A trial's start is recorded before it can report, and it saves a checkpoint only with a report: a
    # checkpoint of a trial the record never names means lines are gone, not a driver killed mid-line.
    unnamed = [
        d.name for d in exp_dir.glob("trial_*") if d.name[6:] not in trials and any(d.glob(f"*/{CHECKPOINT_FILE}"))
    ]
    if unnamed:
        damage.append(Damage(-1, f"{sorted(unnamed)[0]} has checkpoints, but no line names the trial"))
    return {trial_id: t for trial_id, t in trials.items() if t.outcome != LOST}, damage


def read(exp_dir: Path) -> dict[str, TrialRecord]:
    """scan()'s trials; RecordError (one line, naming the first damaged line) if the record is damaged."""
    trials, damage = scan(exp_dir)
    if damage:
        raise RecordError(damage[0].message(exp_dir, more=len(damage) - 1))
    return trials
