"""Whether a sweep runs, finished or was interrupted: `state.json` in its folder, with the process that
wrote it, so a sweep that was killed reads as interrupted and a second one on the same folder is refused.

    write_state(exp_dir, "running")   # a sweep or resume starts
    read_state(exp_dir)               # "running" only while that process lives (on this host)
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from tuner.core.files import write_text

STATE_FILE = "state.json"
STATES = ("running", "finished", "interrupted")


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
    try:
        doc = json.loads((Path(exp_dir) / STATE_FILE).read_text())
    except (OSError, ValueError):  # missing, a folder, cut short, not UTF-8: nothing says it runs
        return "interrupted"
    if not isinstance(doc, dict) or doc.get("state") not in STATES:
        return "interrupted"
    if doc["state"] != "running":
        return doc["state"]
    pid = doc.get("pid")
    if doc.get("host") == socket.gethostname() and not (isinstance(pid, int) and _alive(pid)):
        return "interrupted"
    return "running"


def running_where(exp_dir: Path) -> str:
    """Which process state.json says runs the sweep: `pid 123 on host`."""
    try:
        doc = json.loads((Path(exp_dir) / STATE_FILE).read_text())
        return f"pid {doc['pid']} on {doc['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown process"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0
