"""`tuner sweep --mlflow URI`: what is refused before anything starts (fast).

The end-to-end test, a sweep tracked on a real MLflow server (conftest's `mlflow_server`) while it stores its
results in a real S3 bucket, interrupted and resumed, is tests/test_s3.py's: one sweep serves both servers.
"""

from __future__ import annotations

import socket

import pytest

from tuner.cli.main import main

pytest.importorskip("mlflow")


def test_an_unreachable_tracking_server_fails_in_one_line_before_anything(tmp_path, capsys):
    with socket.socket() as held:  # bound, never listening: refused, and no other test's server can take it
        held.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{held.getsockname()[1]}"
        argv = ["sweep", "--name", "untracked", "--storage", str(tmp_path), "--dataset", "synthetic", "--mlflow", url]
        assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tuner: error: MLflow tracking server {url} cannot be reached"), err
    assert "; start it, fix --mlflow, or leave it out" in err[0]
    assert not list(tmp_path.iterdir())  # no experiment folder


def test_an_empty_tracking_uri_is_a_bad_flag(tmp_path, capsys):
    assert main(["sweep", "--storage", str(tmp_path), "--mlflow", ""]) == 2
    assert capsys.readouterr().err.startswith("tuner: error: --mlflow needs a tracking URI")
