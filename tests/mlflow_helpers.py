"""A real MLflow tracking server on 127.0.0.1 and its REST API, for the tests (not a test file).

conftest.py's `mlflow_server` fixture starts one per test session with `serve`; the tests read what a sweep
logged through `runs_of` and `val_loss_history`, as any client of the server would.
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(root: Path) -> Iterator[str]:
    """`mlflow server` with a SQLite store and an artifact folder under root, until the block ends; its URL."""
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
        os.killpg(server.pid, signal.SIGTERM)  # the server and its uvicorn worker, which this started
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:  # it finishes what it serves first; nothing here needs that
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        log.close()


def api(url: str, path: str, body: dict | None = None, **query: str) -> dict:
    """GET (or POST with a JSON body) one MLflow REST endpoint."""
    address = f"{url}/api/2.0/mlflow/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(address, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


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
