"""Shared fixtures: tiny synthetic data and a small experiment directory for the fast tests;
real Ray for the slow end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tuner.core.configs import split_config
from tuner.learn.checkpoints import save_checkpoint
from tuner.learn.data import ImageSplits, TeacherData, with_targets
from tuner.learn.synthetic import synthetic_images
from tuner.learn.training import Trainer
from tuner.results import record
from tuner.results import tables as results
from tuner.results.state import write_state
from tuner.search.settings import SweepSettings
from tuner.search.spaces import SPACES_DIR


@pytest.fixture(scope="session")
def tiny_data() -> TeacherData:
    """96 train / 32 val synthetic images with their teacher targets."""
    return with_targets(ImageSplits("synthetic", synthetic_images(96, seed=0), synthetic_images(32, seed=1)))


# (trial id, lr, epochs trained, how it ended): one runs to the end, one is cut after an epoch, one fails.
MADE_TRIALS = [("aaa11111", 2e-3, 2, "terminated"), ("bbb22222", 1e-5, 1, "terminated"), ("ccc33333", 1e-3, 1, "error")]


@pytest.fixture(scope="session")
def made_experiment(tmp_path_factory, tiny_data) -> Path:
    """A finished experiment of three trials, written without Ray by the code a sweep uses: settings,
    record lines, checkpoints after every epoch, then the tables. Tests that change it take a copy."""
    storage = tmp_path_factory.mktemp("made")
    settings = SweepSettings(
        name="made",
        dataset="synthetic",
        num_samples=3,
        max_epochs=2,
        train_size=96,
        val_size=32,
        storage=str(storage),
        benchmark=False,
    )
    exp = settings.experiment_dir
    exp.mkdir(parents=True)
    settings.save(exp, dataset_used="synthetic", search_space=str(SPACES_DIR / "default.yaml"))
    for trial_id, lr, epochs, outcome in MADE_TRIALS:
        config = {
            "lr": lr,
            "hidden": 32,
            "batch_size": 16,
            "negative_slope": 0.1,
            "init_scale": 1.0,
            "max_epochs": 2,
            "seed": 0,
        }
        record.append(exp, "start", trial_id, config=config)
        trainer = Trainer(*split_config(config), tiny_data)
        for _ in range(epochs):
            metrics = trainer.run_epoch()
            directory = exp / f"trial_{trial_id}" / f"checkpoint_{metrics['epoch'] - 1:06d}"
            directory.mkdir(parents=True)
            save_checkpoint({**trainer.state_dict(), "metrics": metrics}, directory)
            record.append(exp, "epoch", trial_id, **metrics, node_id="node-1", time_total_s=1.0)
        record.append(exp, "end", trial_id, outcome=outcome, error="injected" if outcome == "error" else "")
    write_state(exp, "finished")
    results.summarise(exp)
    return exp


@pytest.fixture(autouse=True)
def _few_threads():
    # Unit tests are small; one thread avoids oversubscribing a 2-core CI box while Ray runs.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray instance of this test process's own, started once for its session: with two pytest
    workers (make test), each has one, and neither joins the other's through the temp dir's cluster record."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


DIVERGING_SPACE = """
params:
  lr: {type: loguniform, low: 1.0e-3, high: 1.0e+7}
fixed: {optimizer: sgd, schedule: constant, hidden: 32, batch_size: 16}
start:
  - {lr: 1.0e+6}
  - {lr: 1.0e-2}
"""


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory, ray_local):
    """A real tiny sweep through the CLI, made once per session: 3 trials, one of them made to diverge."""
    from tuner.cli.main import main

    storage = tmp_path_factory.mktemp("results")
    space = storage / "diverging.yaml"
    space.write_text(DIVERGING_SPACE)
    argv = [
        "sweep",
        "--name",
        "tiny",
        "--storage",
        str(storage),
        "--dataset",
        "synthetic",
        "--space",
        str(space),
        "--num-samples",
        "3",
        "--max-epochs",
        "2",
        "--train-size",
        "128",
        "--val-size",
        "32",
        "--concurrency",
        "2",
    ]
    assert main(argv) == 0
    return storage / "tiny"


# Fake credentials, and nothing that sends pyarrow or boto3 anywhere but the test's server: no EC2
# metadata lookup (169.254.169.254), no profile or config file of the user's, no endpoint from the shell.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}
S3_ENV_DROPPED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


@pytest.fixture(scope="session")
def s3_server() -> str:
    """A real S3-compatible server (moto in server mode) on 127.0.0.1 for the session; its "127.0.0.1:PORT"."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(monkeypatch) -> dict[str, str]:
    """S3_ENV set in this process (pyarrow reads it here), and the same for child processes."""
    for key in S3_ENV_DROPPED:
        monkeypatch.delenv(key, raising=False)
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    return dict(S3_ENV)


@pytest.fixture
def s3_bucket(s3_server, s3_env, request) -> str:
    """A new, empty bucket on the test's S3 server, named after the test."""
    import re
    import uuid

    import boto3

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + f"-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=f"http://{s3_server}").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """A real MLflow tracking server (SQLite store) on 127.0.0.1 for the session; its URL."""
    pytest.importorskip("mlflow")
    from mlflow_helpers import serve

    with serve(tmp_path_factory.mktemp("mlflow")) as url:
        yield url
