"""A real two-node Ray cluster on this machine (separate raylets, token authentication; see
cluster_helper.py), driven through the CLI as a user would with --address (slow). Only the nodes
started here are stopped, never with `ray stop`."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from tuner.results import record

pytestmark = pytest.mark.slow


class TwoNodes:
    def __init__(self) -> None:
        helper = Path(__file__).with_name("cluster_helper.py")
        # A token of the test's own: a fresh machine has no ~/.ray/auth_token. A temp dir of its own, so the
        # cluster record it leaves never reaches another Ray on this machine (short: Ray puts sockets there).
        self.tmpdir = tempfile.mkdtemp(prefix="rt", dir="/tmp")
        self.env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_TMPDIR=self.tmpdir)
        self.proc = subprocess.Popen(
            [sys.executable, str(helper)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=self.env
        )
        info = json.loads(self.proc.stdout.readline())
        self.address, self.worker_id = info["address"], info["worker"]

    def remove_worker(self) -> None:
        self.proc.stdin.write("remove-worker\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "removed"

    def stop(self) -> None:
        self.proc.stdin.close()  # the helper shuts its own nodes down
        self.proc.wait(timeout=120)
        shutil.rmtree(self.tmpdir, ignore_errors=True)


@pytest.fixture
def two_nodes():
    cluster = TwoNodes()
    yield cluster
    cluster.stop()


def _sweep(cluster, storage: Path, name: str, *extra: str, env: dict | None = None, wait: bool = True):
    argv = [
        sys.executable,
        "-m",
        "tuner",
        "sweep",
        "--address",
        cluster.address,
        "--name",
        name,
        "--storage",
        str(storage),
        "--dataset",
        "synthetic",
        "--val-size",
        "32",
        *extra,
    ]
    env = env if env is not None else cluster.env
    if wait:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=400)
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_whole_sweep_on_two_one_cpu_nodes_benchmark_included(two_nodes, tmp_path):
    cluster = two_nodes
    done = _sweep(
        cluster,
        tmp_path,
        "spread",
        "--num-samples",
        "4",
        "--max-epochs",
        "2",
        "--grace-period",
        "2",
        "--train-size",
        "128",
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"ray: cluster at {cluster.address}, 2 nodes, 2 CPUs, 0 GPUs" in done.stdout
    trials = pd.read_csv(tmp_path / "spread" / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == 4
    assert trials["node_id"].nunique() == 2  # one CPU per node, two trials at a time: both nodes worked
    # The benchmark's CPU worker takes one node's CPU, not the cluster's two: it ran and wrote its table.
    assert "benchmark: CPU worker (1 CPUs)" in done.stdout and (tmp_path / "spread" / "benchmark.csv").is_file()


def test_requests_no_node_can_hold_are_refused_at_once(two_nodes, tmp_path):
    cluster = two_nodes
    done = _sweep(cluster, tmp_path, "big", "--num-samples", "1", "--cpus-per-trial", "2")
    assert done.returncode == 2 and not (tmp_path / "big").exists()
    assert done.stderr.strip().splitlines()[-1] == (
        "tuner: error: each trial asks for 2 CPUs and 0 GPUs on one node, but the largest node has 1 CPUs and 0 GPUs; "
        "lower --cpus-per-trial / --gpus-per-trial, or add a node that large"
    )
    done = _sweep(cluster, tmp_path, "gpu", "--num-samples", "1", "--gpus-per-trial", "1")
    assert done.returncode == 2 and "no node has a GPU" in done.stderr.strip().splitlines()[-1]


def test_a_node_stopped_mid_sweep_does_not_lose_the_sweep(two_nodes, tmp_path):
    cluster = two_nodes
    exp = tmp_path / "lossy"
    proc = _sweep(
        cluster,
        tmp_path,
        "lossy",
        "--no-benchmark",
        "--num-samples",
        "2",
        "--max-epochs",
        "4",
        "--grace-period",
        "4",
        "--patience",
        "4",
        "--train-size",
        "512",
        wait=False,
    )

    def on_worker_with_an_epoch() -> bool:
        return any(t.epochs and t.epochs[-1]["node_id"] == cluster.worker_id for t in record.read(exp).values())

    deadline = time.time() + 240
    while not on_worker_with_an_epoch():
        assert time.time() < deadline and proc.poll() is None, "no trial reported from the worker node"
        time.sleep(0.5)
    cluster.remove_worker()  # the machine is gone, mid-trial
    output, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, output[-3000:]
    trials = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})
    history = pd.read_csv(exp / "history.csv", dtype={"trial_id": str})
    assert len(trials) == 2 and (trials["status"] == "completed").all() and (trials["epochs"] == 4).all()
    assert not history.duplicated(["trial_id", "epoch"]).any()


def test_a_cluster_that_wants_a_token_gets_a_one_line_hint(two_nodes, tmp_path):
    cluster = two_nodes
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    done = _sweep(cluster, tmp_path, "noauth", "--num-samples", "1", env=env)
    assert not (tmp_path / "noauth").exists()
    assert done.returncode == 2
    assert "InvalidAuthToken" not in done.stderr  # no page of gRPC retries
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("tuner: error: ") and "RAY_AUTH_MODE=token" in last and "RAY_AUTH_TOKEN" in last
