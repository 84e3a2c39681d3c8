"""A real two-node Ray cluster on this machine (separate raylets, token authentication; see
cluster_helper.py), driven through the CLI as a user would with --address (slow). Only the nodes
started here are stopped, never with `ray stop`."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


class TwoNodes:
    def __init__(self) -> None:
        helper = Path(__file__).with_name("cluster_helper.py")
        # A token of the test's own: a fresh machine has no ~/.ray/auth_token.
        self.env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
        self.proc = subprocess.Popen([sys.executable, str(helper)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=self.env)
        info = json.loads(self.proc.stdout.readline())
        self.address, self.worker_id = info["address"], info["worker"]

    def remove_worker(self) -> None:
        self.proc.stdin.write("remove-worker\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "removed"

    def stop(self) -> None:
        self.proc.stdin.close()  # the helper shuts its own nodes down
        self.proc.wait(timeout=120)


@pytest.fixture
def two_nodes():
    cluster = TwoNodes()
    yield cluster
    cluster.stop()


def _sweep(cluster, storage: Path, name: str, *extra: str, env: dict | None = None, wait: bool = True):
    argv = [sys.executable, "-m", "tuner", "sweep", "--address", cluster.address, "--name", name, "--storage", str(storage),
            "--dataset", "synthetic", "--cpus-per-trial", "1", "--no-benchmark", "--val-size", "32", *extra]
    env = env if env is not None else cluster.env
    if wait:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=400)
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_trials_spread_over_both_nodes(two_nodes, tmp_path):
    cluster = two_nodes
    done = _sweep(cluster, tmp_path, "spread", "--num-samples", "4", "--max-epochs", "2", "--grace-period", "2",
                  "--train-size", "128")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    trials = pd.read_csv(tmp_path / "spread" / "trials.csv")
    assert len(trials) == 4
    assert trials["node_id"].nunique() == 2  # one CPU per node, two trials at a time: both nodes worked


def test_a_node_stopped_mid_sweep_does_not_lose_the_sweep(two_nodes, tmp_path):
    cluster = two_nodes
    exp = tmp_path / "lossy"
    proc = _sweep(cluster, tmp_path, "lossy", "--num-samples", "2", "--max-epochs", "4", "--grace-period", "4",
                  "--patience", "4", "--train-size", "512", wait=False)

    def on_worker_with_an_epoch() -> bool:
        for result in exp.glob("trial_*/result.json"):
            lines = result.read_text().splitlines()
            if lines and json.loads(lines[-1]).get("node_id") == cluster.worker_id:
                return True
        return False

    deadline = time.time() + 240
    while not on_worker_with_an_epoch():
        assert time.time() < deadline and proc.poll() is None, "no trial reported from the worker node"
        time.sleep(0.5)
    cluster.remove_worker()  # the machine is gone, mid-trial
    output, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, output[-3000:]
    trials = pd.read_csv(exp / "trials.csv")
    history = pd.read_csv(exp / "history.csv")
    assert len(trials) == 2 and (trials["status"] == "completed").all() and (trials["epochs"] == 4).all()
    assert not history.duplicated(["trial_id", "epoch"]).any()


def test_a_cluster_that_wants_a_token_gets_a_one_line_hint(two_nodes, tmp_path):
    cluster = two_nodes
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    done = _sweep(cluster, tmp_path, "noauth", "--num-samples", "1", env=env)
    assert done.returncode == 2
    assert "InvalidAuthToken" not in done.stderr  # no page of gRPC retries
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("tuner: error: ") and "RAY_AUTH_MODE=token" in last and "RAY_AUTH_TOKEN" in last
