"""tuner's ASHA promotes only the top 1/rf of a rung: its decisions on stand-in trials (fast), then a real
sweep on Ray where trials pause at rungs, resume from their checkpoints, and only the best reaches the end."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import ray.cloudpickle
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from tuner.results import record
from tuner.run.schedulers.asha import PromotingASHA, rungs
from tuner.search.settings import SweepSettings

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
CONTINUE, PAUSE, STOP = TrialScheduler.CONTINUE, TrialScheduler.PAUSE, TrialScheduler.STOP


class Controller:
    """The two calls PromotingASHA makes on Ray's TuneController."""

    def __init__(self) -> None:
        self.trials: dict[str, SimpleNamespace] = {}
        self.stopped: list[str] = []

    def get_trials(self) -> list[SimpleNamespace]:
        return list(self.trials.values())

    def stop_trial(self, trial: SimpleNamespace) -> None:
        trial.status = Trial.TERMINATED
        self.stopped.append(trial.trial_id)


def report(asha: PromotingASHA, ctl: Controller, trial_id: str, epoch: int, loss: float) -> str:
    """One result, and the status Ray would give the trial for the decision."""
    trial = ctl.trials.setdefault(trial_id, SimpleNamespace(trial_id=trial_id, status=Trial.RUNNING, is_saving=False))
    decision = asha.on_trial_result(ctl, trial, {"epoch": epoch, "val_loss": loss})
    trial.status = {PAUSE: Trial.PAUSED, STOP: Trial.TERMINATED}.get(decision, Trial.RUNNING)
    return decision


def scheduler(max_t: int = 16, grace: int = 1, rf: int = 4) -> tuple[PromotingASHA, Controller]:
    asha = PromotingASHA(max_t=max_t, grace_period=grace, reduction_factor=rf)
    asha.set_search_properties("val_loss", "min")
    return asha, Controller()


def test_rungs_are_grace_times_powers_of_the_factor_below_max_t():
    assert rungs(1, 4, 16) == [1, 4]
    assert rungs(1, 2, 8) == [1, 2, 4]
    assert rungs(3, 3, 30) == [3, 9, 27]
    assert rungs(4, 2, 4) == []


def test_the_first_trials_at_a_rung_wait_until_one_in_rf_can_go_on():
    asha, ctl = scheduler()
    # Ray's ASHA would let "a" (first, so best so far) go on; here it has no three others to beat yet.
    assert [report(asha, ctl, t, 1, loss) for t, loss in zip("abcd", [0.4, 0.3, 0.2, 0.1], strict=True)] == [
        PAUSE,
        PAUSE,
        PAUSE,
        CONTINUE,  # 4 at the rung: the best one goes on
    ]
    assert report(asha, ctl, "e", 1, 0.05) == PAUSE  # 5 at the rung still promote only one
    assert asha.choose_trial_to_run(ctl) is None  # "d" runs; nothing paused has earned more


def test_a_paused_trial_resumes_once_enough_trials_rank_below_it():
    asha, ctl = scheduler()
    assert report(asha, ctl, "a", 1, 0.1) == PAUSE
    for t in "bcd":
        report(asha, ctl, t, 1, 0.5)
    chosen = asha.choose_trial_to_run(ctl)
    assert chosen is not None and chosen.trial_id == "a"
    chosen.status = Trial.RUNNING
    assert report(asha, ctl, "a", 2, 0.09) == CONTINUE  # between rungs
    assert report(asha, ctl, "a", 16, 0.01) == STOP  # max_t


def test_a_better_trial_that_waits_is_promoted_before_the_one_reporting():
    asha, ctl = scheduler(rf=2)
    assert report(asha, ctl, "a", 1, 0.4) == PAUSE
    assert report(asha, ctl, "b", 1, 0.3) == CONTINUE
    assert report(asha, ctl, "c", 1, 0.1) == PAUSE  # best so far, but the one place of 3 went to b
    assert report(asha, ctl, "d", 1, 0.2) == PAUSE  # 4 give a second place: c's, not d's
    assert asha.choose_trial_to_run(ctl).trial_id == "c"


def test_when_nothing_runs_every_rung_is_complete_and_promotes_at_least_one():
    asha, ctl = scheduler(max_t=4, rf=2)  # rungs 1 and 2
    assert report(asha, ctl, "a", 1, 0.3) == PAUSE
    assert report(asha, ctl, "b", 1, 0.2) == CONTINUE  # 2 at the rung, b the better
    assert report(asha, ctl, "c", 1, 0.1) == PAUSE  # 3 at the rung promote one, and b went on
    assert report(asha, ctl, "b", 2, 0.15) == PAUSE  # alone at rung 2
    chosen = asha.choose_trial_to_run(ctl)  # nothing runs: b, the best at the top rung, goes on
    assert chosen.trial_id == "b" and sorted(ctl.stopped) == ["a", "c"]


def test_once_every_trial_has_started_the_last_one_running_is_decided_at_once():
    asha = PromotingASHA(max_t=4, grace_period=1, reduction_factor=2, num_samples=3)
    asha.set_search_properties("val_loss", "min")
    ctl = Controller()
    assert report(asha, ctl, "a", 1, 0.3) == PAUSE
    assert report(asha, ctl, "b", 1, 0.2) == CONTINUE
    assert report(asha, ctl, "c", 1, 0.4) == PAUSE  # b still runs
    assert report(asha, ctl, "b", 2, 0.1) == CONTINUE  # alone at rung 2, and no one else can reach it now
    asha, ctl = scheduler(rf=2)
    asha.num_samples = 2
    assert report(asha, ctl, "a", 1, 0.1) == PAUSE
    assert report(asha, ctl, "b", 1, 0.5) == STOP  # a, waiting, has the one place: no pause and restart for b
    assert asha.choose_trial_to_run(ctl).trial_id == "a"


def test_a_concurrency_limit_holds_promotions_back():
    asha, ctl = scheduler()
    asha.max_running = 1
    assert report(asha, ctl, "a", 1, 0.1) == PAUSE
    for t in "bcd":
        report(asha, ctl, t, 1, 0.5 if t != "d" else 0.6)
    ctl.trials["d"].status = Trial.RUNNING  # one trial holds the only slot
    assert asha.choose_trial_to_run(ctl) is None
    ctl.trials["d"].status = Trial.PAUSED
    assert asha.choose_trial_to_run(ctl).trial_id == "a"


def test_a_resumed_sweep_rebuilds_the_rungs_from_the_record():
    asha, ctl = scheduler(max_t=4, rf=2)  # rungs 1 and 2
    # a passed rung 1 and reached rung 2; b waited at rung 1; c and d, finished, lost there.
    asha.restore({"a": [0.1, 0.05], "b": [0.2], "c": [0.3], "d": [0.4]}, unfinished={"a", "b"})
    assert asha.recorded == {1: {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}, 2: {"a": 0.05}}
    assert asha.promoted == {1: {"a"}, 2: set()} and asha.waiting == {"a": 2, "b": 1}
    # Ray restarts every unfinished trial: b trains on to epoch 2 and pauses, still waiting at rung 1.
    assert report(asha, ctl, "b", 2, 0.04) == PAUSE
    assert asha.waiting["b"] == 1
    # Promoted at rung 1 (2 of 4 go on), b already stands at rung 2 and is judged there: better than a.
    assert asha.choose_trial_to_run(ctl).trial_id == "b"
    assert asha.recorded[2] == {"a": 0.05, "b": 0.04} and asha.promoted[2] == {"b"}


def test_a_nan_loss_ranks_last():
    asha, ctl = scheduler(rf=2)
    report(asha, ctl, "a", 1, float("nan"))
    assert report(asha, ctl, "b", 1, 0.9) == CONTINUE


# --- a real sweep -------------------------------------------------------------------------------------------
def checkpointing_trainable(config, data):
    """lr sets the loss at every epoch (lr 1 always best); each epoch reports a checkpoint holding the epoch,
    and a resumed trial starts after it, as tuner's own trainable does."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            start = int((Path(d) / "epoch").read_text())
    for epoch in range(start + 1, config["max_epochs"] + 1):
        loss = config["lr"] / (10 * epoch)
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "epoch").write_text(str(epoch))
            metrics = {"epoch": epoch, "train_loss": loss, "val_loss": loss, "val_psnr": -loss, "diverged": False}
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


@pytest.mark.slow
def test_a_sweep_pauses_trials_at_rungs_and_only_the_best_runs_to_the_end(tmp_path, ray_local):
    from tuner.run.sweep import run_sweep

    space = tmp_path / "four.yaml"
    space.write_text(
        "params:\n  lr: {type: choice, values: [1.0, 2.0, 3.0, 4.0]}\n"
        "start:\n  - {lr: 4.0}\n  - {lr: 3.0}\n  - {lr: 2.0}\n  - {lr: 1.0}\n"
    )
    settings = SweepSettings(
        name="promoting",
        dataset="synthetic",
        space=str(space),
        num_samples=4,
        max_epochs=4,
        grace_period=1,
        reduction_factor=2,  # rungs at epochs 1 and 2
        plateau=False,
        train_size=8,
        val_size=8,
        storage=str(tmp_path),
        benchmark=False,
    )
    outcome = run_sweep(settings, trainable=checkpointing_trainable)
    assert not outcome.interrupted
    trials = outcome.summary.trials.set_index("config/lr")
    # Whatever order the two cores report in: the worst two start first, so Ray's ASHA would run both of
    # them to the end (16 epochs in all); here only the best does, and at most half pass each rung.
    assert (trials.loc[1.0, "status"], trials.loc[1.0, "epochs"]) == ("completed", 4)
    others = trials.drop(index=1.0)
    assert (others["status"] == "asha").all() and (others["epochs"] <= 2).all()
    assert (trials["epochs"] >= 2).sum() <= 2 and trials["epochs"].sum() <= 8
    # Paused trials went on from their checkpoints: no epoch was trained twice.
    lines = [json.loads(line) for line in (outcome.experiment_dir / record.RECORD_FILE).read_text().splitlines()]
    epochs = [(doc["trial_id"], doc["epoch"]) for doc in lines if doc["event"] == "epoch"]
    assert len(epochs) == len(set(epochs)) == trials["epochs"].sum()
