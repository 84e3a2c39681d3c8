"""`--storage s3://...` against a real S3-compatible server (moto, on 127.0.0.1; conftest's s3_server).

The bad-storage tests run the CLI in this process and stop before Ray: one line, exit 2, nothing made. The
end-to-end test runs the CLI in child processes with their own RAY_TMPDIR, as tests/test_ray_bounds.py does:
a sweep tracked on a real MLflow server (conftest's mlflow_server), interrupted with Ctrl-C, resumed from the
bucket, then read and exported from the local copy. One sweep serves both servers, as a team's
set-up would, and the suite keeps its time budget.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import pandas as pd
import pytest
from mlflow_helpers import api, runs_of, val_loss_history
from sweep_helpers import wait_for_one_done_and_one_running
from test_ray_bounds import env_with, ray_tmp, tuner  # noqa: F401  (ray_tmp is a fixture)

from tuner.cli.main import main
from tuner.core.errors import ExperimentExistsError, SettingsError, redact
from tuner.run import storage
from tuner.run.storage import check_storage
from tuner.search.settings import SweepSettings

TINY = "--dataset synthetic --num-samples 1 --max-epochs 1 --train-size 128 --val-size 32 --no-benchmark".split()


def uri(bucket: str, endpoint: str, prefix: str = "runs") -> str:
    return f"s3://{bucket}/{prefix}?endpoint_override={endpoint}&scheme=http"


def keys(endpoint: str, bucket: str) -> list[str]:
    listed = boto3.client("s3", endpoint_url=f"http://{endpoint}").list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


def refused(capsys, tmp_path, monkeypatch, storage: str, name: str = "x") -> str:
    """Run `tuner sweep` here on `storage`; it must fail in one line before Ray or any folder. The line."""
    monkeypatch.chdir(tmp_path)
    code = main(["sweep", "--name", name, "--storage", storage, *TINY])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert len(err.strip().splitlines()) == 1 and err.startswith("tuner: error: "), err
    assert "ray:" not in out  # connecting to Ray prints this first: it was never reached
    assert list(tmp_path.iterdir()) == []  # no results/ folder, nothing else
    return err.strip()


def test_a_missing_bucket_is_one_line_before_anything_is_made(capsys, tmp_path, monkeypatch, s3_server, s3_env):
    line = refused(capsys, tmp_path, monkeypatch, uri("no-such-bucket", s3_server))
    assert "bucket 'no-such-bucket' does not exist; create it" in line, line


def test_an_endpoint_that_refuses_is_one_line_before_anything_is_made(capsys, tmp_path, monkeypatch, s3_env):
    line = refused(capsys, tmp_path, monkeypatch, uri("some-bucket", "127.0.0.1:1"))
    assert "cannot be reached (NETWORK_CONNECTION" in line and "; check the endpoint" in line, line


def test_an_experiment_already_in_the_bucket_is_never_overwritten(capsys, tmp_path, monkeypatch, s3_server, s3_bucket):
    client = boto3.client("s3", endpoint_url=f"http://{s3_server}")
    client.put_object(Bucket=s3_bucket, Key="runs/taken/tuner.pkl", Body=b"somebody's sweep")
    line = refused(capsys, tmp_path, monkeypatch, uri(s3_bucket, s3_server), name="taken")
    assert "experiment 'taken' already exists in s3://" in line, line
    assert keys(s3_server, s3_bucket) == ["runs/taken/tuner.pkl"]


@pytest.mark.parametrize(
    "credentials, says",
    [
        (None, "did not answer within 2 s; check the URI"),  # pyarrow's GCS client retries for many minutes
        ("/nonexistent/gcs.json", "cannot be reached (Unknown error: google::cloud::Status"),
    ],
)
def test_a_gcs_storage_that_cannot_be_used_is_one_line_within_the_bound(
    capsys, tmp_path, monkeypatch, credentials, says
):
    monkeypatch.setattr(storage, "PROBE_TIMEOUT_S", 2.0)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    if credentials:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", credentials)
    with socket.socket() as silent:  # accepts connections, never speaks HTTP
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"127.0.0.1:{silent.getsockname()[1]}"
        line = refused(
            capsys, tmp_path, monkeypatch, f"gs://no-such-bucket/runs?endpoint_override={endpoint}&scheme=http"
        )
    assert says in line, line


def test_an_unknown_scheme_is_one_line(capsys, tmp_path, monkeypatch):
    assert "is not a storage pyarrow can open" in refused(capsys, tmp_path, monkeypatch, "nosuch://bucket/runs")


def test_the_endpoint_may_come_from_the_environment(s3_server, s3_bucket, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://{s3_server}")
    check_storage(SweepSettings(name="x", storage=f"s3://{s3_bucket}/runs"), new=True)
    with pytest.raises(SettingsError, match="bucket 'not-there' does not exist"):
        check_storage(SweepSettings(name="x", storage="s3://not-there/runs"), new=True)


def test_a_file_uri_that_does_not_exist_yet_passes_and_is_not_made(tmp_path):
    check_storage(SweepSettings(name="x", storage=f"file://{tmp_path}/later/runs"), new=True)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "runs" / "x").mkdir(parents=True)
    with pytest.raises(ExperimentExistsError, match="experiment 'x' already exists in file://"):
        check_storage(SweepSettings(name="x", storage=f"file://{tmp_path}/runs"), new=True)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["x"]  # the write check left nothing


def test_paths_keep_the_query_last_and_messages_hide_keys():
    settings = SweepSettings(name="exp", storage="s3://b/runs/?endpoint_override=127.0.0.1:9&scheme=http")
    assert settings.ray_storage_path == "s3://b/runs?endpoint_override=127.0.0.1:9&scheme=http"
    assert settings.ray_experiment_path == "s3://b/runs/exp?endpoint_override=127.0.0.1:9&scheme=http"
    assert SweepSettings(name="exp", storage="file:///tmp/r/").ray_experiment_path == "file:///tmp/r/exp"
    assert redact("s3://KEY:SECRET@b/runs?scheme=http") == "s3://***@b/runs?scheme=http"


def test_reading_commands_given_the_uri_read_its_local_copy(tmp_path, monkeypatch, made_experiment, capsys):
    monkeypatch.chdir(tmp_path)
    storage = "s3://bucket/runs?endpoint_override=127.0.0.1:1&scheme=http"  # never contacted: reading is local
    assert main(["list", "--storage", storage]) == 2
    assert "no local copies of s3://bucket/runs" in capsys.readouterr().err
    for name, stored in (("made", "s3://bucket/runs/?endpoint_override=127.0.0.1:9"), ("local", "results")):
        shutil.copytree(made_experiment, tmp_path / "results" / name)
        settings = tmp_path / "results" / name / "sweep.json"
        settings.write_text(json.dumps({**json.loads(settings.read_text()), "name": name, "storage": stored}))
    assert main(["results", "made", "--storage", storage]) == 0 and "completed" in capsys.readouterr().out
    assert main(["list", "--storage", storage, "--format", "csv"]) == 0
    assert pd.read_csv(io.StringIO(capsys.readouterr().out))["name"].tolist() == ["made"]  # not the local sweep


@pytest.mark.slow
def test_an_endpoint_that_never_answers_gives_up_in_one_line(capsys, tmp_path, monkeypatch, s3_env):
    silent = socket.socket()  # accepts connections, never speaks HTTP
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        line = refused(capsys, tmp_path, monkeypatch, uri("some-bucket", f"127.0.0.1:{silent.getsockname()[1]}"))
    finally:
        silent.close()
    assert "cannot be reached" in line and "Timeout" in line, line


@pytest.mark.slow
def test_a_tracked_sweep_on_s3_is_interrupted_resumed_read_and_exported(
    ray_tmp,  # noqa: F811
    tmp_path,
    s3_server,
    s3_bucket,
    mlflow_server,
):
    """A team's set-up: results in a bucket, every trial a run on the tracking server. Ctrl-C after one of two
    trials, then --resume: the bucket and the server each continue what they had, and nothing is run twice."""
    storage = uri(s3_bucket, s3_server)
    env = env_with(ray_tmp)  # with s3_env's fake credentials: the children run Ray, its workers write to S3
    exp = tmp_path / "results" / "remote"
    argv = [sys.executable, "-m", "tuner", "sweep", "--name", "remote", "--storage", storage, "--dataset", "synthetic"]
    argv += "--num-samples 2 --max-epochs 3 --grace-period 3 --patience 3 --train-size 1024 --val-size 64".split()
    argv += ["--concurrency", "1", "--mlflow", mlflow_server]
    proc = subprocess.Popen(
        argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        wait_for_one_done_and_one_running(proc, exp)
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:] + err[-2000:]
    remote = f"s3://{s3_bucket}/runs/remote?endpoint_override={s3_server}&scheme=http"
    assert f"results: {remote}, copied to {exp}" in out and f"copied {remote} to {exp}" in out
    assert "continue with  tuner sweep --resume remote" in out
    assert json.loads((exp / "state.json").read_text())["state"] == "interrupted"
    assert json.loads((exp / "sweep.json").read_text())["mlflow"] == mlflow_server
    assert (exp / "tuner.pkl").is_file()  # Ray's state, copied back from the bucket
    in_bucket = keys(s3_server, s3_bucket)
    assert "runs/remote/tuner.pkl" in in_bucket and any("/checkpoint_" in k for k in in_bucket), in_bucket
    parent, children = runs_of(mlflow_server, "remote")
    assert parent["info"]["status"] == "KILLED"
    assert sorted(r["info"]["status"] for r in children) == ["FINISHED", "KILLED"]

    resumed = tuner("sweep", "--resume", "remote", "--storage", storage, "--no-benchmark", env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "resuming 'remote': 1 of 2 trials finished, 1 to continue" in resumed.stdout
    assert f"results: {remote}" in resumed.stdout
    assert "MLflow" not in resumed.stderr, resumed.stderr[-2000:]  # no warning: tracking never stopped
    trials = pd.read_csv(exp / "trials.csv", dtype={"trial_id": str})
    history = pd.read_csv(exp / "history.csv", dtype={"trial_id": str})
    assert len(trials) == 2 and (trials["status"] == "completed").all() and (trials["epochs"] == 3).all()
    assert not history.duplicated(["trial_id", "epoch"]).any()
    assert json.loads((exp / "state.json").read_text())["state"] == "finished"
    tracked_like_the_tables(mlflow_server, parent, trials, history, exp / "best_model.pt")

    again = tuner("sweep", "--resume", "remote", env=env, cwd=tmp_path)  # the local copy by its name alone
    assert again.returncode == 0 and "already finished; nothing to resume" in again.stdout, again.stderr[-2000:]
    shown = tuner("results", "remote", "--storage", storage, env=env, cwd=tmp_path)  # the sweep's flag: its copy
    assert shown.returncode == 0 and "completed" in shown.stdout, shown.stderr[-2000:]
    exported = tuner("export", "remote", "--out", tmp_path / "out", env=env, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert any((tmp_path / "out").iterdir())


def tracked_like_the_tables(url: str, parent: dict, trials: pd.DataFrame, history: pd.DataFrame, best: Path) -> None:
    """The resume went on in the same parent run, with one finished run per trial holding what the tables hold,
    and the best model as the parent's artifact."""
    again, children = runs_of(url, "remote")
    assert again["info"]["run_id"] == parent["info"]["run_id"] and again["info"]["status"] == "FINISHED"
    assert again["info"]["run_name"] == "remote" and again["tags"]["sweep"] == "remote"
    assert sorted(r["tags"]["trial_id"] for r in children) == sorted(trials["trial_id"])  # one run per trial
    for run in children:
        trial_id = run["tags"]["trial_id"]
        assert run["info"]["status"] == "FINISHED"
        assert run["tags"]["sweep"] == "remote" and run["tags"]["mlflow.parentRunId"] == parent["info"]["run_id"]
        row = trials[trials["trial_id"] == trial_id].iloc[0]
        assert float(run["params"]["lr"]) == pytest.approx(row["config/lr"])
        assert run["params"]["max_epochs"] == "3"
        epochs = history[history["trial_id"] == trial_id].sort_values("epoch")
        logged = val_loss_history(url, run["info"]["run_id"])
        assert sorted(logged) == list(epochs["epoch"])
        assert [logged[e] for e in epochs["epoch"]] == pytest.approx(list(epochs["val_loss"]))
    files = api(url, "artifacts/list", run_id=parent["info"]["run_id"]).get("files", [])
    assert [(f["path"], int(f["file_size"])) for f in files] == [("best_model.pt", best.stat().st_size)]
