"""`tuner dashboard NAME` as a user sees it: the page rendered by a real headless Chromium.

optuna-dashboard is a JavaScript application: its HTML holds no study until the
browser has run its scripts and fetched the study from tuner's server, so the
page is read back with `chromium --dump-dom` after a virtual-time budget. The
experiment is the `made` fixture's (written without Ray, so without an Optuna
study); the test adds a small study to its optuna.db under the name a sweep
gives it, the experiment's name.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tuner.core.constants import OPTUNA_DB
from tuner.results.dashboard import study_url

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TRIALS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def experiment_with_study(made_experiment, tmp_path) -> Path:
    """A copy of the made experiment with an Optuna study of TRIALS finished trials in its optuna.db."""
    import optuna

    exp = Path(shutil.copytree(made_experiment, tmp_path / "storage" / made_experiment.name))
    assert not (made_experiment / OPTUNA_DB).exists()  # else the fixture's own study would be tested
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=exp.name, storage=study_url(exp), direction="minimize")
    for value in range(TRIALS):
        trial = study.ask()
        trial.suggest_float("lr", 1e-5, 1e-2, log=True)
        study.tell(trial, 0.01 * (value + 1))
    return exp


def rendered_text(url: str, profile: Path) -> str:
    """The page's visible text after Chromium has run its scripts (virtual time: no waiting on a clock)."""
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    argv += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    argv += ["--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=20000"]
    done = subprocess.run([*argv, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    body = done.stdout[done.stdout.find("<body") :]
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def test_the_live_view_shows_the_study_and_its_trials_in_a_browser(experiment_with_study, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI; .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    pytest.importorskip("optuna_dashboard")
    port = free_port()
    storage = experiment_with_study.parent
    argv = [sys.executable, "-m", "tuner", "dashboard", "made", "--storage", str(storage), "--port", str(port)]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120  # a bound, not a measurement
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/studies", timeout=5) as response:
                    assert b'"study_name": "made"' in response.read()
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read()[-2000:]
                assert time.time() < deadline, "tuner dashboard never answered"
                time.sleep(0.5)
        listing = rendered_text(f"{base}/dashboard", tmp_path / "profile")
        assert "made" in listing and "MINIMIZE" in listing, listing[:2000]
        trials = rendered_text(f"{base}/dashboard/studies/1/trials", tmp_path / "profile")
        assert "made (id=1)" in trials and f"{TRIALS} Trials" in trials, trials[:2000]
        assert trials.count(" Complete") >= TRIALS, trials[:2000]
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the dashboard this test started
        server.communicate(timeout=60)
