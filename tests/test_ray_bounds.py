"""Every path a user can take through Ray finishes, or fails in one line, in bounded time (slow, real Ray).

Each test runs the CLI in a child process with a RAY_TMPDIR of its own, so no
Ray it starts, and no cluster record it leaves, reaches another test or user.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from tuner.results import record

pytestmark = pytest.mark.slow

TINY = [
    "--dataset",
    "synthetic",
    "--num-samples",
    "1",
    "--max-epochs",
    "1",
    "--train-size",
    "128",
    "--val-size",
    "32",
    "--no-benchmark",
]


@pytest.fixture
def ray_tmp():
    path = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray puts unix sockets under it
    yield path
    shutil.rmtree(path, ignore_errors=True)


def tuner(*argv, env: dict, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tuner", *map(str, argv)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def env_with(ray_tmp: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, "RAY_TMPDIR": ray_tmp, "PYTHONUNBUFFERED": "1", **extra}


def last_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stderr.strip().splitlines()[-1]


def test_a_dead_cluster_record_is_never_joined(ray_tmp, tmp_path):
    record_dir = Path(ray_tmp) / "ray"
    record_dir.mkdir()
    (record_dir / "ray_current_cluster").write_text("127.0.0.1:1")  # what a crashed `ray start` leaves behind
    done = tuner("sweep", "--name", "own", *TINY, env=env_with(ray_tmp), cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.fullmatch(r"ray: local instance, \d+ CPUs, \d+ GPUs", done.stdout.splitlines()[0]), done.stdout
    assert (tmp_path / "results" / "own" / "trials.csv").is_file()


def test_an_address_with_nothing_behind_it_fails_in_one_line(ray_tmp, tmp_path):
    done = tuner(
        "sweep", "--name", "x", "--address", "127.0.0.1:1", *TINY, env=env_with(ray_tmp), cwd=tmp_path, timeout=35
    )
    assert last_line(done).startswith("tuner: error: nothing answers at 127.0.0.1:1")
    done = tuner(
        "sweep", "--name", "x", *TINY, env=env_with(ray_tmp, RAY_ADDRESS="127.0.0.1:1"), cwd=tmp_path, timeout=35
    )
    assert "nothing answers at 127.0.0.1:1" in last_line(done)
    assert not (tmp_path / "results").exists()


def test_an_address_that_never_answers_gives_up_after_the_bound(ray_tmp, tmp_path):
    silent = socket.socket()  # accepts connections, never speaks Ray's protocol
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    try:
        done = tuner(
            "sweep",
            "--name",
            "x",
            "--address",
            f"127.0.0.1:{port}",
            *TINY,
            env=env_with(ray_tmp, TUNER_CONNECT_TIMEOUT_S="8"),
            cwd=tmp_path,
            timeout=35,
        )
    finally:
        silent.close()
    line = last_line(done)
    assert f"127.0.0.1:{port}" in line and ("within 8 s" in line or "cannot join" in line), line


def test_sigterm_twice_while_asha_holds_trials_then_resume_ends_every_trial_once(ray_tmp, tmp_path):
    """`kill PID` (what a job scheduler sends), twice, while tuner's ASHA holds trials paused at a rung, and with
    Ray's automatic loggers off, as many users run. It ends as Ctrl-C does (tests/test_s3.py sends that): no
    native stack dump, the resume hint, the state interrupted. Ray restores paused trials as pending; the resume
    must run every trial to its end once, and never again one that had ended."""
    env = env_with(ray_tmp, TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1")
    exp = tmp_path / "results" / "held"
    argv = [sys.executable, "-m", "tuner", "sweep", "--name", "held", "--dataset", "synthetic"]
    argv += "--num-samples 4 --max-epochs 4 --grace-period 1 --reduction-factor 2 --patience 4".split()
    argv += "--train-size 256 --val-size 64".split()
    with open(tmp_path / "stderr.txt", "w+") as stderr:
        proc = subprocess.Popen(
            argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1,
            start_new_session=True,
        )  # fmt: skip
        out = sigterm_twice_once_a_trial_is_paused(proc)
        stderr.seek(0)
        err = stderr.read()
    assert proc.returncode in (130, 143), out[-2000:] + err[-2000:]
    assert "SIGTERM received" not in err and "*** " not in err, err[-2000:]
    assert "continue with  tuner sweep --resume held" in out
    assert json.loads((exp / "state.json").read_text())["state"] == "interrupted"
    assert not [
        line for line in err.splitlines() if any(w in line for w in ("WARNING", "Warning", "ERROR", "Error"))
    ], err
    assert not list(exp.glob("trial_*/result.json"))  # Ray's logger really was off
    first = record.read(exp).values()
    started, ended_first = len(first), {t.trial_id: len(t.epochs) for t in first if t.outcome}

    pickled = exp / "tuner.pkl"
    intact = pickled.read_bytes()
    pickled.write_bytes(intact[: len(intact) // 2])  # a disk that filled up
    line = last_line(tuner("sweep", "--resume", "held", env=env, cwd=tmp_path))
    assert "cannot be resumed: Ray's saved state is damaged" in line
    pickled.write_bytes(intact)

    resumed = tuner("sweep", "--resume", "held", "--no-benchmark", env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    to_start = f", {4 - started} to start" if started < 4 else ""
    said = f"resuming 'held': {len(ended_first)} of 4 trials finished, {started - len(ended_first)} to continue"
    assert said + to_start + "\n" in resumed.stdout, resumed.stdout
    assert not [
        line for line in resumed.stderr.splitlines() if any(w in line for w in ("WARNING", "Warning", "ERROR", "Error"))
    ], resumed.stderr
    trials = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})
    history = pd.read_csv(exp / "history.csv", dtype={"trial_id": str})
    assert len(trials) == 4 and set(trials["status"]) <= {"completed", "asha"}
    assert (trials["status"] == "completed").sum() == 1  # rung 2 promotes one, however the resume split it
    assert not history.duplicated(["trial_id", "epoch"]).any()
    after = {t.trial_id: len(t.epochs) for t in record.read(exp).values()}
    assert {t: after[t] for t in ended_first} == ended_first  # what had ended was not run again
    assert json.loads((exp / "state.json").read_text())["state"] == "finished"
    for command in (["results", "held"], ["report", "held"], ["export", "held", "--out", tmp_path / "out"]):
        done = tuner(*command, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]


def sigterm_twice_once_a_trial_is_paused(proc: subprocess.Popen) -> str:
    """SIGTERM to the driver only, as `kill PID` does, once the progress line counts a paused trial; again
    before the sweep has stopped. Everything the sweep printed."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    printed: list[str] = []
    try:
        deadline = time.time() + 240
        while " paused, " not in (printed[-1] if printed else ""):
            line = lines.get(timeout=max(1.0, deadline - time.time()))
            assert line is not None and time.time() < deadline, "no trial was ever paused: " + "".join(printed)
            printed.append(line)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    while (line := lines.get(timeout=30)) is not None:
        printed.append(line)
    return "".join(printed)


def test_a_full_preset_start_prints_its_estimate(ray_tmp, tmp_path):
    """The full preset's code path (2 CPUs per trial, the full schedule) with fewer images, to its first epoch."""
    done = tuner(
        "sweep",
        "--preset",
        "full",
        "--name",
        "big",
        "--dataset",
        "synthetic",
        "--train-size",
        "2048",
        "--val-size",
        "256",
        "--num-samples",
        "1",
        "--max-epochs",
        "1",
        "--grace-period",
        "1",
        "--no-benchmark",
        env=env_with(ray_tmp),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "first epoch took" in done.stdout and "take about" in done.stdout
    assert "| 0 done, 1 running, 0 pending | about" in done.stdout


def test_ctrl_c_as_trials_start_leaves_a_sweep_to_resume_or_nothing(ray_tmp, tmp_path):
    """Ctrl-C the moment the sweep's folder exists, before any epoch: either Ray saved its state and the resume
    hint works, or it had not (Ray cannot resume that) and the folder is gone, so the same command starts again.
    Never a resume hint that the resume then refuses."""
    argv = [sys.executable, "-m", "tuner", "sweep", "--name", "early", *TINY, "--max-epochs", "4"]
    # stderr into stdout: an undrained second pipe could fill and stall the sweep while stdout is read
    proc = subprocess.Popen(
        argv, env=env_with(ray_tmp), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] and None, daemon=True)
    reader.start()
    out, last, deadline = "", 0.0, time.monotonic() + 180
    while reader.is_alive() and time.monotonic() < deadline:
        try:
            out += lines.get(timeout=1)
        except queue.Empty:
            pass
        # Ctrl-C at the results line, and again every 3 s until the sweep says it stops, as a user would: once,
        # on a loaded machine, the first one was not acted on (the note of stop 24).
        if "results:" in out and "interrupted" not in out and time.monotonic() > last + 3:
            proc.send_signal(signal.SIGINT)
            last = time.monotonic()
    proc.wait(timeout=60)
    reader.join(timeout=10)
    while not lines.empty():
        out += lines.get()
    assert proc.returncode == 130, out[-2000:]
    assert "Traceback" not in out and "Stop signal received" not in out, out[-2000:]
    exp = tmp_path / "results" / "early"
    if exp.exists():
        assert "continue with  tuner sweep --resume early" in out, out
        done = tuner("sweep", "--resume", "early", env=env_with(ray_tmp), cwd=tmp_path)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    else:
        assert "nothing to keep" in out and "run the same command to start again" in out, out


def test_two_sweeps_with_one_name_at_once(ray_tmp, tmp_path):
    """Both pass the name check; one creates the directory, the other says so in one line and loses nothing."""
    argv = [sys.executable, "-m", "tuner", "sweep", "--name", "twin", *TINY]
    procs = [
        subprocess.Popen(
            argv, env=env_with(ray_tmp), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    done = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in done)
    assert codes == [0, 2], done
    loser_err = next(err for code, _, err in done if code == 2)
    assert loser_err.strip().splitlines()[-1].startswith("tuner: error: experiment 'twin'"), loser_err
    assert len(pd.read_csv(tmp_path / "results" / "twin" / "trials.csv", dtype={"trial_id": str})) == 1
