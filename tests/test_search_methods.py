"""Every searcher and scheduler by name: refused combinations (fast), and a short real sweep each (slow)."""

from __future__ import annotations

import json
import pickle
import signal
import sys

import pandas as pd
import pytest
import ray.cloudpickle

from tuner.core.errors import SearchSpaceError, SettingsError
from tuner.results import record
from tuner.search.checks import check
from tuner.search.schedulers import SCHEDULERS, STATUSES, statuses
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


@pytest.mark.parametrize("concurrency", [None, 3])
def test_pbt_limits_trials_at_once_in_its_own_generator(tmp_path, concurrency):
    # Ray ignores max_concurrent_trials for PBT's BasicVariantGenerator (a warning quiet_ray hides): --concurrency
    # would limit nothing, and the memory check would count fewer trials than run.
    from tuner.run import methods

    settings = SweepSettings(scheduler="pbt", searcher="random", concurrency=concurrency, storage=str(tmp_path))
    space = space_file(tmp_path)
    generator = methods.searcher(settings, space)
    search_alg, limit = methods.with_limit(generator, methods.scheduler(settings, space), settings, 2)
    assert search_alg is generator and limit is None
    assert generator.max_concurrent == (concurrency or 0)  # 0: the nodes' resources alone bound it


def test_pbt_needs_two_trials_at_once():
    from tuner.search.checks import check_population

    with pytest.raises(SettingsError, match="--concurrency 1 leaves one; pass --concurrency 2 or more"):
        check_population("pbt", 4, 1)
    with pytest.raises(SettingsError, match="--num-samples 1 leaves one"):
        check_population("pbt", 1, None)
    check_population("pbt", 2, None)
    check_population("asha", 1, 1)


def test_a_space_file_can_name_them_and_is_checked(tmp_path):
    space = space_file(tmp_path, SPACE + "searcher: random\nscheduler: median\n")
    assert (space.searcher, space.scheduler) == ("random", "median")
    with pytest.raises(SearchSpaceError, match="unknown scheduler 'sha'; use one of"):
        space_file(tmp_path, SPACE + "scheduler: sha\n", "bad.yaml")
    with pytest.raises(SettingsError, match="unknown --searcher 'bayes'"):
        SweepSettings(searcher="bayes")


def test_every_scheduler_has_a_builder_a_status_and_a_marker():
    import importlib

    markers = statuses()
    for entry in SCHEDULERS.values():
        module, function = entry.build.split(":")
        assert callable(getattr(importlib.import_module(module), function)), entry.name
        if entry.stops_trials:
            assert entry.status == entry.name and markers[entry.status][0], entry.name
        else:
            assert entry.status is None
    assert tuple(markers) == STATUSES and all(marker and colour for marker, colour in markers.values())
    assert set(STATUSES) >= {"completed", "plateau", "diverged", "error", "unfinished"}


@pytest.mark.parametrize(
    "name, sampler",
    [
        ("tpe", "TPESampler"),
        ("random", "RandomSampler"),
        ("cmaes", "CmaEsSampler"),
        ("gp", "GPSampler"),
        ("qmc", "QMCSampler"),
    ],
)
def test_each_searcher_name_builds_its_own_sampler(name, sampler):
    assert set(SEARCHERS) == {"tpe", "random", "cmaes", "gp", "qmc", "nsga2"}
    assert type(SEARCHERS[name].sampler(0, 6)).__name__ == sampler


# Two configurations that train, then two that barely move (lr 1e-5): the schedulers that stop trials have
# something to stop, and it must be the poor ones.
GOOD_FIRST = """
start:
  - {lr: 3.0e-3, weight_decay: 1.0e-6}
  - {lr: 2.0e-3, weight_decay: 1.0e-6}
  - {lr: 1.0e-5, weight_decay: 1.0e-6}
  - {lr: 1.1e-5, weight_decay: 1.0e-6}
"""


def _sweep(tmp_path, name, space=SPACE, **options):
    from tuner.run.sweep import run_sweep

    path = tmp_path / f"{name}.yaml"
    path.write_text(space)
    settings = SweepSettings(
        name=name,
        dataset="synthetic",
        space=str(path),
        train_size=64,
        val_size=16,
        storage=str(tmp_path),
        benchmark=False,
        **{"concurrency": 2, **options},
    )
    return run_sweep(settings)


@pytest.mark.slow
# Every searcher runs through the same OptunaSearch; which sampler each name builds is checked fast above. A
# real sweep for the default and for the one with its own check (CMA-ES, numeric parameters only).
@pytest.mark.parametrize("searcher", ["tpe", "cmaes"])
def test_searchers_run_a_sweep_and_keep_their_study(tmp_path, ray_local, searcher):
    import optuna

    before = signal.getsignal(signal.SIGINT)
    outcome = _sweep(tmp_path, searcher, searcher=searcher, num_samples=3, max_epochs=1, grace_period=1)
    assert not outcome.interrupted and len(outcome.summary.trials) == 3
    # Ray Tune's handler, which only asks a finished run to stop, must not outlive fit(): a Ctrl-C during the
    # tables or the benchmark would be ignored.
    assert signal.getsignal(signal.SIGINT) is before
    # Which sampler ran: OptunaSearch saves its state, sampler included, beside the experiment.
    (saved,) = outcome.experiment_dir.glob("searcher-state-*.pkl")
    ran = type(pickle.loads(saved.read_bytes())["_sampler"])
    assert ran is type(SEARCHERS[searcher].sampler(0, 3)), ran
    study = optuna.load_study(study_name=searcher, storage=f"sqlite:///{outcome.experiment_dir / 'optuna.db'}")
    assert len(study.trials) == 3 and all(t.value is not None for t in study.trials)
    assert json.loads((outcome.experiment_dir / "sweep.json").read_text())["searcher"] == searcher


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", [s for s in SCHEDULERS if s != "pbt"])
def test_every_scheduler_runs_a_sweep_and_names_what_it_stopped(tmp_path, ray_local, scheduler):
    outcome = _sweep(
        tmp_path,
        scheduler,
        SPACE + GOOD_FIRST,
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
    stopped = set(trials.loc[trials["status"] == scheduler, "config/lr"])
    if scheduler == "hyperband":
        # Ray's HyperBand stopped nothing in 4-trial sweeps of 3 or 4 epochs here; tests/test_ray_adapter.py
        # checks FinishingHyperBand's one change on its own. What it did stop must be named as its own.
        assert set(trials["status"]) <= {"completed", "hyperband"}
    elif SCHEDULERS[scheduler].stops_trials:
        assert stopped, f"{scheduler} stopped nothing: {trials[['status', 'epochs', 'config/lr']]}"
        completed = set(trials.loc[trials["status"] == "completed", "config/lr"])
        assert not completed & {1.0e-5, 1.1e-5}, f"{scheduler} let a poor trial run to the end: {trials}"
    else:
        assert (trials["status"] == "completed").all()
    # The best is the lowest final loss, whichever scheduler ended that trial.
    assert outcome.summary.best["trial_id"] == trials.dropna(subset=["val_loss"]).iloc[0]["trial_id"]


@pytest.mark.slow
def test_pbt_exploits_checkpoints_and_explores_lr_and_weight_decay(tmp_path, ray_local, recwarn):
    # A good and a poor trial take turns on one slot (2 CPUs each on 2): PBT pauses each after every epoch
    # while the other waits, so the order of reports is fixed, not a race of worker start times. The good one
    # saves a checkpoint at its epoch 2, and the poor one takes it at its epoch 2. Side by side on two slots, a
    # trial that started late found no leader's checkpoint in 3 epochs (CI, stop 23). Every pause and exploit
    # restarts a worker process, which is most of this test's time.
    outcome = _sweep(
        tmp_path,
        "pbt",
        SPACE + "start:\n  - {lr: 3.0e-3, weight_decay: 1.0e-6}\n  - {lr: 1.0e-5, weight_decay: 1.0e-6}\n",
        searcher="random",
        scheduler="pbt",
        num_samples=2,
        max_epochs=3,
        grace_period=1,
        patience=4,
        cpus_per_trial=2,
    )
    advice = [str(w.message) for w in recwarn if "reuse_actors" in str(w.message)]
    assert not advice, advice  # Ray's advice to reuse workers does not apply to tuner's trainable
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
    assert 1.0e-5 in {first_configs[t]["lr"] for t in changed}, changed  # the poor trial took the good one's
    for trial in changed.values():
        assert trial.config["hidden"] == 32  # a model-shape parameter is never mutated
        assert trial.config["lr"] not in [s["lr"] for s in starts] or trial.config["weight_decay"] not in [
            s["weight_decay"] for s in starts
        ]  # explored: a value no trial started with
        assert [e["epoch"] for e in trial.epochs] == list(range(1, len(trial.epochs) + 1))
    history = pd.read_csv(outcome.experiment_dir / "history.csv", dtype={"trial_id": str})
    assert not history.duplicated(["trial_id", "epoch"]).any()


def _lines(outcome):
    return (outcome.experiment_dir / "record.jsonl").read_text().splitlines()


def _events(outcome, trial):
    return [json.loads(line) for line in _lines(outcome) if f'"trial_id": "{trial.trial_id}"' in line]
