"""`tuner sweep --mlflow URI` against a real MLflow tracking server on 127.0.0.1, read back through its REST API.

The server runs in a child process with its own SQLite store and artifact folder;
sweeps run the CLI in a child process with a RAY_TMPDIR of their own
(tests/test_ray_bounds.py). Only the unreachable-server test starts neither.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from sweep_helpers import ctrl_c_when_one_is_done
from test_ray_bounds import env_with, ray_tmp, tuner  # noqa: F401  (ray_tmp is a fixture)

from tuner.cli.main import main

pytest.importorskip("mlflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(url: str, path: str, body: dict | None = None, **query: str) -> dict:
    """GET (or POST with a JSON body) one MLflow REST endpoint."""
    address = f"{url}/api/2.0/mlflow/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(address, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = open(root / "server.log", "w")
    argv = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--backend-store-uri", f"sqlite:///{root}/mlflow.db", "--artifacts-destination", str(root / "art")]
    server = subprocess.Popen(argv + ["--workers", "1"], stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180  # a bound, not a measurement: the server imports a lot on a busy 2-core box
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (root / "server.log").read_text()[-2000:]
            assert time.time() < deadline, "the MLflow server never answered /health"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its uvicorn worker, which this fixture started
        server.wait(timeout=60)
        log.close()


def runs_of(url: str, sweep: str) -> tuple[dict, list[dict]]:
    """The sweep's parent run and its trial runs, each as the REST API gives it, tags and params as dicts."""
    experiment = api(url, "experiments/get-by-name", experiment_name=sweep)["experiment"]
    found = api(url, "runs/search", {"experiment_ids": [experiment["experiment_id"]], "max_results": 100})
    runs = found.get("runs", [])
    for run in runs:
        run["tags"] = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
        run["params"] = {p["key"]: p["value"] for p in run["data"].get("params", [])}
    parents = [r for r in runs if r["tags"].get("tuner.role") == "sweep"]
    assert len(parents) == 1, [r["tags"] for r in runs]
    return parents[0], [r for r in runs if r is not parents[0]]


def val_loss_history(url: str, run_id: str) -> dict[int, float]:
    """The run's val_loss at each epoch; an epoch trained again after the resume counts with its later value,
    as in tuner's own record (and in MLflow's charts)."""
    history = api(url, "metrics/get-history", run_id=run_id, metric_key="val_loss").get("metrics", [])
    return {int(m["step"]): m["value"] for m in sorted(history, key=lambda m: int(m["timestamp"]))}


def interrupt_after_one_trial(argv: list[str], env: dict, cwd: Path, exp: Path) -> subprocess.CompletedProcess:
    """Run the sweep until one trial has ended and another has an epoch, then Ctrl-C it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuner", *argv], env=env, cwd=cwd, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    ctrl_c_when_one_is_done(proc, exp, 300)
    out, err = proc.communicate(timeout=180)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.mark.slow
def test_every_trial_is_a_run_and_resume_continues_the_same_runs(mlflow_server, ray_tmp, tmp_path):  # noqa: F811
    env = env_with(ray_tmp)
    exp = tmp_path / "results" / "tracked"
    argv = "sweep --name tracked --dataset synthetic --num-samples 2 --max-epochs 3 --grace-period 3 --patience 3"
    argv += " --train-size 512 --val-size 64 --concurrency 1 --no-benchmark --mlflow " + mlflow_server
    stopped = interrupt_after_one_trial(argv.split(), env, tmp_path, exp)
    assert stopped.returncode == 130, stopped.stdout[-2000:] + stopped.stderr[-2000:]
    parent, children = runs_of(mlflow_server, "tracked")
    assert parent["info"]["status"] == "KILLED"
    assert sorted(r["info"]["status"] for r in children) == ["FINISHED", "KILLED"]
    assert json.loads((exp / "sweep.json").read_text())["mlflow"] == mlflow_server

    resumed = tuner("sweep", "--resume", "tracked", env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "MLflow" not in resumed.stderr, resumed.stderr[-2000:]  # no warning: tracking never stopped

    again, children = runs_of(mlflow_server, "tracked")
    assert again["info"]["run_id"] == parent["info"]["run_id"] and again["info"]["status"] == "FINISHED"
    assert again["info"]["run_name"] == "tracked" and again["tags"]["sweep"] == "tracked"
    trials = pd.read_csv(exp / "trials.csv")
    history = pd.read_csv(exp / "history.csv")
    assert sorted(r["tags"]["trial_id"] for r in children) == sorted(trials["trial_id"])  # one run per trial
    for run in children:
        trial_id = run["tags"]["trial_id"]
        assert run["info"]["status"] == "FINISHED"
        assert run["tags"]["sweep"] == "tracked" and run["tags"]["mlflow.parentRunId"] == parent["info"]["run_id"]
        row = trials[trials["trial_id"] == trial_id].iloc[0]
        assert float(run["params"]["lr"]) == pytest.approx(row["config/lr"])
        assert run["params"]["max_epochs"] == "3"
        epochs = history[history["trial_id"] == trial_id].sort_values("epoch")
        logged = val_loss_history(mlflow_server, run["info"]["run_id"])
        assert sorted(logged) == list(epochs["epoch"])
        assert [logged[e] for e in epochs["epoch"]] == pytest.approx(list(epochs["val_loss"]))

    files = api(mlflow_server, "artifacts/list", run_id=parent["info"]["run_id"]).get("files", [])
    assert [(f["path"], int(f["file_size"])) for f in files] == [
        ("best_model.pt", (exp / "best_model.pt").stat().st_size)
    ]


def test_an_unreachable_tracking_server_fails_in_one_line_before_anything(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    argv = ["sweep", "--name", "untracked", "--storage", str(tmp_path), "--dataset", "synthetic", "--mlflow", url]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tuner: error: MLflow tracking server {url} cannot be reached"), err
    assert "; start it, fix --mlflow, or leave it out" in err[0]
    assert not list(tmp_path.iterdir())  # no experiment folder


def test_an_empty_tracking_uri_is_a_bad_flag(tmp_path, capsys):
    assert main(["sweep", "--storage", str(tmp_path), "--mlflow", ""]) == 2
    assert capsys.readouterr().err.startswith("tuner: error: --mlflow needs a tracking URI")
