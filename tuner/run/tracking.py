"""`tuner sweep --mlflow URI`: every trial an MLflow run, under one parent run named after the sweep.

    tuner sweep --name demo --mlflow http://mlflow.example:5000
    tuner sweep --resume demo          # the URI is in sweep.json: the same runs go on

Trials are logged by Ray Tune's own `MLflowLoggerCallback` (parameters when a trial
starts, every reported epoch's metrics with the epoch as step, FINISHED or FAILED
when it ends), wrapped here only to hang every trial run under the sweep's
parent run (tag `mlflow.parentRunId`) and to find a trial's run again on resume.
An epoch trained again after a resume (Ray continues a trial from the last checkpoint
it recorded) is logged again at its step, as tuner's record keeps its later value.
The MLflow experiment is named after the sweep. The parent run's id is kept in
the experiment folder (mlflow.json), so a resumed sweep, and `finish` once the
tables and best_model.pt are written, log to the same parent.

A tracking server that cannot be reached is found by `check` before anything is
created. A server that goes away during the sweep costs one warning and the rest
of the tracking, never the sweep.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ray.tune.logger import LoggerCallback

from tuner.core.constants import BEST_MODEL_FILE
from tuner.core.errors import SettingsError, first_line
from tuner.run import ray_adapter

logger = logging.getLogger(__name__)

RUN_FILE = "mlflow.json"
PROBE_TIMEOUT_S = 5.0
# By default MLflow retries a failed request 7 times with backoff, with a 120 s timeout for each: minutes of a
# stalled driver when the server goes away. Users who set these keep theirs.
_CLIENT_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}


def _auth_headers() -> dict[str, str]:
    """The credentials MLflow's own client would send, from the same environment variables."""
    if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return {"Authorization": f"Bearer {token}"}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    return {}


def check(uri: str | None, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise SettingsError unless MLflow is installed and an http(s) tracking server answers its API in time."""
    if uri is None:
        return
    if not uri.strip():
        raise SettingsError("--mlflow needs a tracking URI; pass e.g. http://127.0.0.1:5000, or leave it out")
    if importlib.util.find_spec("mlflow") is None:
        raise SettingsError("--mlflow needs MLflow, which is not installed; pip install 'tuner[tracking]'")
    if not uri.startswith(("http://", "https://")):
        return  # a local store (file:, sqlite:): MLflow creates it
    probe = urllib.request.Request(
        f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search?max_results=1", headers=_auth_headers()
    )
    try:
        with urllib.request.urlopen(probe, timeout=timeout):
            pass
    except urllib.error.HTTPError as exc:
        hint = "set MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD" if exc.code in (401, 403) else ""
        raise SettingsError(
            f"MLflow tracking server {uri} answered HTTP {exc.code}; {hint or 'check that --mlflow is the server'}"
        ) from None
    except (OSError, ValueError) as exc:  # refused, unknown host, timeout, malformed URL
        reason = first_line(getattr(exc, "reason", None) or exc, 80)
        raise SettingsError(
            f"MLflow tracking server {uri} cannot be reached ({reason}); start it, fix --mlflow, or leave it out"
        ) from None


def callbacks(settings: Any, exp_dir: Path) -> list[Any]:
    """Ray Tune callbacks for the tracking the settings ask for (none without --mlflow). Checks first."""
    if settings.mlflow is None:
        return []
    check(settings.mlflow)
    return [SweepMLflowCallback(settings.mlflow, settings.name, exp_dir)]


class SweepMLflowCallback(LoggerCallback):
    """Ray's MLflow callback, each trial's run a child of the sweep's parent run. Ray's callback is made in
    `setup`, not here: importing MLflow is slow, and sweeps without --mlflow should not pay for it."""

    def __init__(self, tracking_uri: str, sweep: str, exp_dir: Path) -> None:
        self.tracking_uri = tracking_uri
        self.sweep = sweep
        self.exp_dir = Path(exp_dir)
        self._ray: Any = None
        self._broken = False
        self._resumed = False

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles its run config for --resume; the MLflow session is made again there, in setup.
        return {**self.__dict__, "_ray": None, "_broken": False, "_resumed": False}

    def setup(self, *args: Any, **kwargs: Any) -> None:
        for key, value in _CLIENT_DEFAULTS.items():
            os.environ.setdefault(key, value)
        self._guard(self._setup, *args, **kwargs)

    def _setup(self, *args: Any, **kwargs: Any) -> None:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        self._ray = MLflowLoggerCallback(self.tracking_uri, experiment_name=self.sweep, tags={"sweep": self.sweep})
        self._ray.setup(*args, **kwargs)
        util = self._ray.mlflow_util
        saved = _saved(self.exp_dir)
        self._resumed = saved is not None
        if saved is None:
            parent = util.start_run(
                run_name=self.sweep, tags={"sweep": self.sweep, "tuner.role": "sweep", "tuner.dir": str(self.exp_dir)}
            )
            saved = {"tracking_uri": self.tracking_uri, "experiment_id": util.experiment_id}
            saved["run_id"] = parent.info.run_id
            (self.exp_dir / RUN_FILE).write_text(json.dumps(saved, indent=2))
        else:  # resumed: the parent was ended as KILLED when the sweep was interrupted
            ray_adapter.mlflow_client(self._ray).update_run(saved["run_id"], status="RUNNING")
        self._ray.tags["mlflow.parentRunId"] = saved["run_id"]

    def _guard(self, method: Any, *args: Any, **kwargs: Any) -> None:
        # One warning, then no more tracking: a tracking server's outage must not end the sweep.
        if self._broken:
            return
        try:
            method(*args, **kwargs)
        except Exception as exc:
            self._broken = True
            logger.warning("MLflow tracking stopped: %s; the sweep goes on, its files are complete", first_line(exc))

    def _find_run(self, trial: Any) -> None:
        """On resume, the trial's run from before the interruption, if it had one."""
        util = self._ray.mlflow_util
        client = ray_adapter.mlflow_client(self._ray)
        parent = self._ray.tags["mlflow.parentRunId"]
        for run in client.search_runs([util.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'"):
            if run.data.tags.get("trial_id") == trial.trial_id:
                client.update_run(run.info.run_id, status="RUNNING")
                ray_adapter.mlflow_trial_runs(self._ray)[trial] = run.info.run_id

    def _start(self, trial: Any) -> None:
        self._ray.tags["trial_id"] = trial.trial_id
        if self._resumed and trial not in ray_adapter.mlflow_trial_runs(self._ray):
            self._find_run(trial)
        self._ray.log_trial_start(trial)

    def log_trial_start(self, trial: Any) -> None:
        self._guard(self._start, trial)

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        self._guard(lambda: self._ray.log_trial_result(iteration, trial, result))

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        self._guard(lambda: self._ray.log_trial_end(trial, failed))


def _saved(exp_dir: Path) -> dict[str, str] | None:
    path = Path(exp_dir) / RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def finish(exp_dir: Path, interrupted: bool) -> None:
    """End the sweep's parent run: the best model as its artifact and the best trial's metrics, FINISHED;
    or, when interrupted, KILLED with its unfinished trial runs (a resume sets them running again)."""
    saved = _saved(exp_dir)
    if saved is None:
        return
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(saved["tracking_uri"])
        run_id = saved["run_id"]
        best_model = Path(exp_dir) / BEST_MODEL_FILE
        if not interrupted and best_model.is_file():
            client.log_artifact(run_id, str(best_model))
        best_file = Path(exp_dir) / "best.json"
        if best_file.is_file():
            best = json.loads(best_file.read_text())
            client.set_tag(run_id, "best_trial_id", best.get("trial_id", ""))
            for key, value in (best.get("metrics") or {}).items():
                if isinstance(value, (int, float)):
                    client.log_metric(run_id, f"best_{key}", float(value))
        if interrupted:
            children = client.search_runs([saved["experiment_id"]], f"tags.`mlflow.parentRunId` = '{run_id}'")
            for run in children:
                if run.info.status == "RUNNING":
                    client.set_terminated(run.info.run_id, "KILLED")
        client.set_terminated(run_id, "KILLED" if interrupted else "FINISHED")
    except Exception as exc:  # the sweep's own files are written; tracking is a copy
        logger.warning("MLflow: could not end run %s: %s", saved.get("run_id"), first_line(exc))
