"""Resume and faults, with real Ray (slow): SIGKILL then --resume, a trial that raises, a finished resume.

Storage at a URI (Ray writes there, tuner keeps a local copy and resumes from it) is tests/test_s3.py's, against
a real S3 server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import ray.cloudpickle

from tuner.results import record
from tuner.run.sweep import resume_sweep, run_sweep
from tuner.run.trainable import train_trial
from tuner.search.settings import SweepSettings

pytestmark = pytest.mark.slow
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

SWEEP = [
    sys.executable,
    "-m",
    "tuner",
    *(
        "sweep --dataset synthetic --num-samples 4 --max-epochs 3 --grace-period 3 --patience 3 --train-size 256 "
        "--val-size 32 --concurrency 1 --no-benchmark"
    ).split(),
]


def _epochs_logged(exp: Path) -> dict[str, int]:
    if not (exp / record.RECORD_FILE).is_file():  # Ray makes a trial's folder before its first line is written
        return {}
    return {t.trial_id: len(t.epochs) for t in record.read(exp).values()}


def _epoch_lines(exp: Path, trial_id: str) -> list[str]:
    lines = (exp / "record.jsonl").read_text().splitlines()
    return [line for line in lines if f'"trial_id": "{trial_id}"' in line and '"event": "epoch"' in line]


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise TimeoutError(f"waited {timeout}s for {what}")
        time.sleep(0.5)


def test_sigkill_then_resume_keeps_every_trial_exactly_once(tmp_path):
    exp = tmp_path / "killed"
    proc = subprocess.Popen(
        [*SWEEP, "--name", "killed", "--storage", str(tmp_path)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Kill once one trial has finished and the next has reported an epoch but not finished.
        _wait_for(
            lambda: sorted(_epochs_logged(exp).values(), reverse=True)[:2] in ([3, 1], [3, 2]),
            240,
            "a finished and a running trial",
        )
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver without a word; its Ray dies with it (fate-sharing)
        proc.wait()
    before = _epochs_logged(exp)
    finished = [t for t, n in before.items() if n == 3]
    finished_logs = {t: _epoch_lines(exp, t) for t in finished}
    assert json.loads((exp / "state.json").read_text())["state"] == "running"  # what the killed process left

    from tuner.results.state import read_state

    assert read_state(exp) == "interrupted"
    resumed = subprocess.run(
        [sys.executable, "-m", "tuner", "sweep", "--resume", "killed", "--storage", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]

    trials = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})
    history = pd.read_csv(exp / "history.csv", dtype={"trial_id": str})
    assert len(trials) == 4 and trials["trial_id"].is_unique  # the number asked for, each once
    assert (trials["status"] == "completed").all() and (trials["epochs"] == 3).all()
    assert not history.duplicated(["trial_id", "epoch"]).any()
    for t in finished:  # finished trials were not run again
        assert _epoch_lines(exp, t) == finished_logs[t]
    assert read_state(exp) == "finished"

    # Resuming a finished experiment says so and changes nothing.
    mtime = (exp / "trials.csv").stat().st_mtime
    again = subprocess.run(
        [sys.executable, "-m", "tuner", "sweep", "--resume", "killed", "--storage", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0 and "already finished; nothing to resume" in again.stdout
    assert (exp / "trials.csv").stat().st_mtime == mtime


MARKERS: Path | None = None  # set by the test before the sweep; pickled by value with the trainable


def flaky_trainable(config, data):
    """lr 0.002: trains one epoch (reported with its checkpoint), then raises; once.
    lr 0.003: raises every time. Anything else trains normally."""
    from ray import tune

    if config["lr"] == 0.003:
        raise RuntimeError("injected: this trial always fails")
    marker = MARKERS / f"failed-{config['lr']}"
    if config["lr"] == 0.002 and tune.get_checkpoint() is None and not marker.exists():
        train_trial({**config, "max_epochs": 1}, data)  # constant schedule: the same first epoch
        marker.touch()
        raise RuntimeError("injected: fail once after the first checkpoint")
    train_trial(config, data)


def test_a_raising_trial_recovers_from_its_checkpoint_and_a_hopeless_one_is_an_error(tmp_path, ray_local):
    global MARKERS
    MARKERS = tmp_path
    space = tmp_path / "flaky.yaml"
    space.write_text(
        "params:\n  lr: {type: choice, values: [0.001, 0.002, 0.003]}\n"
        "fixed: {schedule: constant, hidden: 32, batch_size: 16}\n"
        "start:\n  - {lr: 0.001}\n  - {lr: 0.002}\n  - {lr: 0.003}\n"
    )
    settings = SweepSettings(
        name="flaky",
        dataset="synthetic",
        space=str(space),
        num_samples=3,
        max_epochs=3,
        grace_period=3,
        patience=3,
        train_size=64,
        val_size=16,
        concurrency=1,
        max_failures=1,
        storage=str(tmp_path),
        benchmark=False,
    )
    outcome = run_sweep(settings, trainable=flaky_trainable)
    trials = outcome.summary.trials.set_index("config/lr")
    history = outcome.summary.history
    assert (MARKERS / "failed-0.002").exists()
    assert trials.loc[0.002, "status"] == "completed" and trials.loc[0.002, "epochs"] == 3
    recovered = history[history["trial_id"] == trials.loc[0.002, "trial_id"]]
    assert list(recovered["epoch"]) == [1, 2, 3]  # continued from epoch 1's checkpoint, not from scratch
    assert trials.loc[0.003, "status"] == "error"  # after --max-failures retries; the sweep went on
    assert trials.loc[0.001, "status"] == "completed"
    assert not outcome.interrupted

    # An experiment can't be resumed from a name that does not exist, with a one-line hint.
    from tuner.core.errors import ExperimentError

    with pytest.raises(ExperimentError, match="no experiment 'nope'"):
        resume_sweep("nope", storage=str(tmp_path))
