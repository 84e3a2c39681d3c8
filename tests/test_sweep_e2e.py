"""End-to-end sweeps with real Ray, Optuna, ASHA and torchvision (slow).

1. The real trainable through the CLI on tiny synthetic data, with one trial
   made to diverge: every output file and its contents.
2. A scripted trainable whose losses are fixed per config, so that ASHA and the
   plateau stopper each must end one trial, at an epoch only they can end it.
"""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
import ray.cloudpickle
from ray import tune

from tuner.cli.main import main
from tuner.learn.checkpoints import load_model_file as load_model
from tuner.learn.data import load_images
from tuner.learn.fidelity import fidelity
from tuner.results.tables import HISTORY_COLUMNS, TRIAL_COLUMNS
from tuner.run.sweep import run_sweep
from tuner.search.schedulers import STATUSES
from tuner.search.settings import SweepSettings

pytestmark = pytest.mark.slow

# Ray workers cannot import this test module by name; ship its functions by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_sweep_writes_every_file(tiny_sweep):
    for name in (
        "sweep.json",
        "state.json",
        "trials.csv",
        "history.csv",
        "best.json",
        "best_model.pt",
        "benchmark.csv",
        "benchmark.png",
    ):
        assert (tiny_sweep / name).is_file(), name
    assert json.loads((tiny_sweep / "sweep.json").read_text())["dataset_used"] == "synthetic"


def test_trials_csv_has_one_row_per_trial_with_status(tiny_sweep):
    trials = pd.read_csv(tiny_sweep / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == 3
    assert list(trials.columns[: len(TRIAL_COLUMNS)]) == TRIAL_COLUMNS
    assert {"config/lr", "config/optimizer", "config/max_epochs"} <= set(trials.columns)
    assert set(trials["status"]) <= set(STATUSES)
    diverged = trials[trials["config/lr"] == 1e6]
    assert list(diverged["status"]) == ["diverged"]


def test_history_matches_the_trials(tiny_sweep):
    trials = pd.read_csv(tiny_sweep / "trials.csv", dtype={"trial_id": str})
    history = pd.read_csv(tiny_sweep / "history.csv", dtype={"trial_id": str})
    assert list(history.columns) == HISTORY_COLUMNS
    assert len(history) == trials["epochs"].sum()
    per_trial = history.groupby("trial_id")["epoch"].max()
    assert per_trial.to_dict() == trials.set_index("trial_id")["epochs"].to_dict()


def test_best_model_rebuilds_from_its_file_and_matches_its_reported_psnr(tiny_sweep):
    best = json.loads((tiny_sweep / "best.json").read_text())
    assert best["metrics"]["status"] != "diverged"
    model = load_model(tiny_sweep / "best_model.pt")
    splits = load_images("synthetic", train_size=128, val_size=32, seed=0)
    assert fidelity(model, splits.val).psnr == pytest.approx(best["metrics"]["val_psnr"], abs=0.01)


def test_an_existing_name_is_never_overwritten(tiny_sweep, capsys):
    before = (tiny_sweep / "trials.csv").read_text()
    argv = ["sweep", "--name", "tiny", "--storage", str(tiny_sweep.parent), "--dataset", "synthetic"]
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tiny_sweep / "trials.csv").read_text() == before


# lr picks a scripted loss curve. Ray's ASHA (grace 1, factor 2, max 5) can only stop at
# epochs 1, 2 and 4; the plateau stopper (patience 1) is the only one that can stop at 3.
# (tuner's own ASHA, which pauses trials at rungs, has its test in test_asha.py.)
CURVES = {
    1.0: [1.0, 0.5, 0.25, 0.12, 0.06],  # good: runs to the end
    2.0: [5.0, 4.0, 3.0, 2.0, 1.0],  # bad from the start: ASHA stops it at epoch 1
    3.0: [0.9, 0.3, 0.3, 0.3, 0.3],  # stalls after epoch 2: the plateau stopper stops it at epoch 3
}


def scripted_trainable(config, data):
    for epoch, loss in enumerate(CURVES[config["lr"]], start=1):
        tune.report({"epoch": epoch, "train_loss": loss, "val_loss": loss, "val_psnr": -loss, "diverged": False})


def test_ray_asha_and_the_plateau_stopper_each_stop_a_trial(tmp_path, ray_local):
    space = tmp_path / "scripted.yaml"
    space.write_text(
        "params:\n  lr: {type: choice, values: [1.0, 2.0, 3.0]}\nstart:\n  - {lr: 1.0}\n  - {lr: 2.0}\n  - {lr: 3.0}\n"
    )
    settings = SweepSettings(
        name="scripted",
        dataset="synthetic",
        space=str(space),
        num_samples=3,
        max_epochs=5,
        grace_period=1,
        reduction_factor=2,
        patience=1,
        min_delta=0.01,
        train_size=8,
        val_size=8,
        concurrency=1,
        storage=str(tmp_path),
        scheduler="ray-asha",
    )
    outcome = run_sweep(settings, trainable=scripted_trainable)
    by_lr = outcome.summary.trials.set_index("config/lr")
    assert (by_lr.loc[1.0, "status"], by_lr.loc[1.0, "epochs"]) == ("completed", 5)
    assert (by_lr.loc[2.0, "status"], by_lr.loc[2.0, "epochs"]) == ("ray-asha", 1)
    assert (by_lr.loc[3.0, "status"], by_lr.loc[3.0, "epochs"]) == ("plateau", 3)


def test_report_takes_importance_and_history_from_the_optuna_study(tiny_sweep, tmp_path):
    import shutil

    copy = tmp_path / "tiny"
    shutil.copytree(tiny_sweep, copy)
    assert main(["report", str(copy)]) == 0
    text = (copy / "report.md").read_text()
    assert "## Optimisation history (Optuna study)" in text and (copy / "history.png").stat().st_size > 1000
    assert "Needs at least 4 finished trials in the study" in text  # 3 trials: too few to weigh, and it says so


def test_the_dashboard_serves_the_sweeps_study(tiny_sweep):
    """A real optuna-dashboard server on 127.0.0.1, started by `tuner dashboard`; its API lists the sweep's trials."""
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuner", "dashboard", "tiny", "--storage", str(tiny_sweep.parent), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline, studies = time.time() + 60, None
        while studies is None:
            assert time.time() < deadline and proc.poll() is None, "the dashboard did not answer"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as response:
                    studies = json.loads(response.read())["study_summaries"]
            except OSError:
                time.sleep(0.5)
        assert [s["study_name"] for s in studies] == ["tiny"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}", timeout=10) as r:
            trials = json.loads(r.read())["trials"]
        assert len(trials) == 3
    finally:
        proc.terminate()
        proc.wait(timeout=30)
