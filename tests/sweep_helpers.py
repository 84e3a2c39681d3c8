"""What several end-to-end tests do to a sweep running in a child process (not a test file)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tuner.results import record


def wait_for_one_done_and_one_running(proc: subprocess.Popen, exp: Path, timeout: float = 300) -> None:
    """Until the record holds one ended trial and another with an epoch; fails if the sweep ends first."""
    deadline = time.time() + timeout
    while True:
        # Ray makes a trial's folder a moment before the record's first line: wait for the record.
        trials = list(record.read(exp).values()) if (exp / record.RECORD_FILE).is_file() else []
        if any(t.outcome for t in trials) and any(t.outcome is None and t.epochs for t in trials):
            return
        assert time.time() < deadline and proc.poll() is None, "never had one trial done and one running"
        time.sleep(0.2)
