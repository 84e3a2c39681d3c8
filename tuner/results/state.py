"""Whether a sweep runs, finished or was interrupted: `state.json` in its folder, with the process that
wrote it, so a sweep that was killed reads as interrupted and a second one on the same folder is refused.

    write_state(exp_dir, "running")   # a sweep or resume starts
    read_state(exp_dir)               # "running" only while that process lives (on this host)
    state_damage(exp_dir)             # "" or what is wrong with state.json
    with experiment_lock(exp_dir): ...    # held by the one process that runs or resumes the sweep

A state.json that is missing or damaged does not make a finished sweep read as interrupted: the state is then
worked out from record.jsonl (finished when every trial asked for has ended; running while another process
holds the folder's lock), and `state_damage` says why.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tuner.core.errors import ExperimentError
from tuner.core.files import write_text
from tuner.results import record
from tuner.search.settings import SETTINGS_FILE

STATE_FILE = "state.json"
STATES = ("running", "finished", "interrupted")
LOCK_WAIT_S = 1.0  # how long taking the lock waits out another command that only looks whether it is held
_HELD: set[Path] = set()  # the experiment folders this process holds the lock of


def write_state(exp_dir: Path, state: str) -> None:
    assert state in STATES, state
    doc = {
        "state": state,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "updated": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_text(Path(exp_dir) / STATE_FILE, json.dumps(doc))


def read_state(exp_dir: Path) -> str:
    """finished / interrupted / running. A 'running' sweep whose process is gone was interrupted."""
    doc = _document(exp_dir)
    if doc is None:
        return _state_from_record(exp_dir)
    if doc["state"] != "running":
        return doc["state"]
    pid = doc.get("pid")
    if doc.get("host") == socket.gethostname() and not (isinstance(pid, int) and _alive(pid)):
        return "interrupted"
    return "running"


def state_damage(exp_dir: Path) -> str:
    """ "" when state.json is sound; else what is wrong with it, for tables to show beside the state."""
    if _document(exp_dir) is not None:
        return ""
    missing = not os.path.lexists(Path(exp_dir) / STATE_FILE)
    return f"{STATE_FILE} {'missing' if missing else 'damaged'}; state from {record.RECORD_FILE}"


def _document(exp_dir: Path) -> dict | None:
    """state.json's contents; None when it is missing, a folder, cut short, not UTF-8 or names no state."""
    try:
        doc = json.loads((Path(exp_dir) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("state") in STATES else None


@contextmanager
def experiment_lock(exp_dir: Path) -> Iterator[None]:
    """Hold the folder's lock while a sweep runs or resumes it: a second driver gets one line, even when
    state.json is gone. The lock is on the folder itself, so a refused start leaves no file behind, and the kernel
    drops it when the process ends however it ends: a killed sweep never leaves the folder locked."""
    exp_dir = Path(exp_dir).resolve()
    fd, held = os.open(exp_dir, os.O_RDONLY | os.O_DIRECTORY), False
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ExperimentError(
                        f"experiment {exp_dir.name!r} is being run by another process{running_where(exp_dir)}; "
                        "wait for it to end, or stop it"
                    ) from None
                time.sleep(0.05)
        _HELD.add(exp_dir)
        held = True
        yield
    finally:
        if held:  # a refused second attempt in this process leaves the first one's mark
            _HELD.discard(exp_dir)
        os.close(fd)  # closing releases the lock (this descriptor's: a refused attempt holds none)


def _locked_elsewhere(exp_dir: Path) -> bool:
    """Whether another process holds the folder's lock now (this one's own lock does not count)."""
    exp_dir = Path(exp_dir).resolve()
    if exp_dir in _HELD:
        return False
    try:
        fd = os.open(exp_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _state_from_record(exp_dir: Path) -> str:
    """Running while another process holds the folder's lock; else finished when record.jsonl shows as many
    ended trials as sweep.json asked for, and interrupted when it does not (`--resume` of a finished sweep
    only says so)."""
    if _locked_elsewhere(exp_dir):
        return "running"
    trials, damage = record.scan(exp_dir)
    try:
        asked = json.loads((Path(exp_dir) / SETTINGS_FILE).read_text())["num_samples"]
    except (OSError, ValueError, KeyError, TypeError):
        return "interrupted"
    return "finished" if not damage and isinstance(asked, int) and all_ended(trials, asked) else "interrupted"


def all_ended(trials: dict[str, record.TrialRecord], asked: int) -> bool:
    """A sweep finished when as many trials as it asked for have an end in the record: what a sweep writes to
    state.json as it stops, and what a lost state.json is worked out from."""
    return sum(t.outcome is not None for t in trials.values()) >= asked


def written_here(exp_dir: Path) -> bool:
    """Whether this process wrote the folder's state.json: a folder found by name again is this sweep's own."""
    doc = _document(exp_dir)
    return doc is not None and doc.get("pid") == os.getpid() and doc.get("host") == socket.gethostname()


def running_where(exp_dir: Path) -> str:
    """Which process state.json says runs the sweep, for a message: ` (pid 123 on host)`; "" when it says none."""
    try:
        doc = json.loads((Path(exp_dir) / STATE_FILE).read_text())
        return f" (pid {doc['pid']} on {doc['host']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0
