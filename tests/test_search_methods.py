"""Every searcher and scheduler by name: refused combinations (fast), and a short real sweep each (slow)."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
import ray.cloudpickle

from tuner.core.errors import SearchSpaceError, SettingsError
from tuner.results import record
from tuner.search.checks import check
from tuner.search.schedulers import SCHEDULERS
from tuner.search.searchers import SEARCHERS
from tuner.search.settings import SweepSettings
from tuner.search.spaces import load_space

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

SPACE = """
params:
  lr: {type: loguniform, low: 1.0e-5, high: 1.0e-2}
  weight_decay: {type: loguniform, low: 1.0e-6, high: 1.0e-2}
fixed: {hidden: 32, batch_size: 16}
"""


def space_file(tmp_path, text=SPACE, name="s.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_space(str(path))


@pytest.mark.parametrize(
    "searcher, scheduler, extra, pattern",
    [
        ("cmaes", "asha", "  hidden2: {type: choice, values: [1, 2]}\n", "cannot search choice parameters"),
        ("tpe", "pbt", "", "pbt proposes configurations itself"),
    ],
)
def test_combinations_that_cannot_work_are_refused(tmp_path, searcher, scheduler, extra, pattern):
    text = (
        SPACE.replace("fixed:", extra.replace("hidden2", "hidden") + "fixed:").replace("hidden: 32, ", "")
        if extra
        else SPACE
    )
    with pytest.raises(SettingsError, match=pattern):
        check(searcher, scheduler, space_file(tmp_path, text))


def test_pbt_needs_something_to_mutate(tmp_path):
    text = "params:\n  negative_slope: {type: uniform, low: 0.1, high: 0.5}\n"
    with pytest.raises(SettingsError, match="pbt mutates lr and weight_decay"):
        check("random", "pbt", space_file(tmp_path, text))


def test_a_space_file_can_name_them_and_is_checked(tmp_path):
    space = space_file(tmp_path, SPACE + "searcher: random\nscheduler: median\n")
    assert (space.searcher, space.scheduler) == ("random", "median")
    with pytest.raises(SearchSpaceError, match="unknown scheduler 'sha'; use one of"):
        space_file(tmp_path, SPACE + "scheduler: sha\n", "bad.yaml")
    with pytest.raises(SettingsError, match="unknown --searcher 'bayes'"):
        SweepSettings(searcher="bayes")


def _sweep(tmp_path, name, **options):
    from tuner.run.sweep import run_sweep

    path = tmp_path / f"{name}.yaml"
    path.write_text(SPACE)
    settings = SweepSettings(
        name=name,
        dataset="synthetic",
        space=str(path),
        train_size=64,
        val_size=16,
        storage=str(tmp_path),
        benchmark=False,
        concurrency=2,
        **options,
    )
    return run_sweep(settings, echo=lambda line: None)


@pytest.mark.slow
@pytest.mark.parametrize("searcher", SEARCHERS)
def test_every_searcher_runs_a_sweep_and_keeps_its_study(tmp_path, ray_local, searcher):
    import optuna

    outcome = _sweep(tmp_path, searcher, searcher=searcher, num_samples=3, max_epochs=1, grace_period=1)
    assert not outcome.interrupted and len(outcome.summary.trials) == 3
    study = optuna.load_study(study_name=searcher, storage=f"sqlite:///{outcome.experiment_dir / 'optuna.db'}")
    assert len(study.trials) == 3 and all(t.value is not None for t in study.trials)
    assert json.loads((outcome.experiment_dir / "sweep.json").read_text())["searcher"] == searcher


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", [s for s in SCHEDULERS if s != "pbt"])
def test_every_scheduler_runs_a_sweep_and_names_what_it_stopped(tmp_path, ray_local, scheduler):
    outcome = _sweep(
        tmp_path,
        scheduler,
        scheduler=scheduler,
        num_samples=4,
        max_epochs=3,
        grace_period=1,
        reduction_factor=2,
        plateau=False,
    )
    trials = outcome.summary.trials
    assert not outcome.interrupted and len(trials) == 4
    assert set(trials["status"]) <= {"completed", scheduler}  # no plateau stopper, no other scheduler's name
    if scheduler == "fifo":
        assert (trials["status"] == "completed").all()
    # The best is the lowest final loss, whichever scheduler ended that trial.
    assert outcome.summary.best["trial_id"] == trials.dropna(subset=["val_loss"]).iloc[0]["trial_id"]


@pytest.mark.slow
def test_pbt_exploits_checkpoints_and_explores_lr_and_weight_decay(tmp_path, ray_local):
    outcome = _sweep(
        tmp_path, "pbt", searcher="random", scheduler="pbt", num_samples=4, max_epochs=4, grace_period=1, patience=4
    )
    assert not outcome.interrupted
    trials = record.read(outcome.experiment_dir)
    changed = {t.trial_id: t for t in trials.values() if any(e["event"] == "config" for e in _events(outcome, t))}
    assert changed, "PBT never exploited a trial"
    first_configs: dict[str, dict] = {}
    for line in _lines(outcome):
        doc = json.loads(line)
        if doc["event"] == "start":
            first_configs.setdefault(doc["trial_id"], doc["config"])
    starts = list(first_configs.values())
    for trial in changed.values():
        assert trial.config["hidden"] == 32  # a model-shape parameter is never mutated
        assert trial.config["lr"] not in [s["lr"] for s in starts] or trial.config["weight_decay"] not in [
            s["weight_decay"] for s in starts
        ]  # explored: a value no trial started with
        assert [e["epoch"] for e in trial.epochs] == list(range(1, len(trial.epochs) + 1))
    history = pd.read_csv(outcome.experiment_dir / "history.csv")
    assert not history.duplicated(["trial_id", "epoch"]).any()


def _lines(outcome):
    return (outcome.experiment_dir / "record.jsonl").read_text().splitlines()


def _events(outcome, trial):
    return [json.loads(line) for line in _lines(outcome) if f'"trial_id": "{trial.trial_id}"' in line]
