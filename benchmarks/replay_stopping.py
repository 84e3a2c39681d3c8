"""Replay FIFO runs through tuner's ASHA (or Ray's) and the plateau stopper, to choose early-stopping defaults.

    .venv/bin/python benchmarks/early_stopping.py --ways fifo --keep /tmp/fifo   # train once
    .venv/bin/python benchmarks/replay_stopping.py /tmp/fifo                     # replay, seconds
    .venv/bin/python benchmarks/replay_stopping.py /tmp/fifo --scheduler ray-asha

Training the same configurations three ways for each candidate setting costs
minutes per setting. A FIFO run already holds every epoch of every trial, and a
trial's epoch k does not depend on whether it is later stopped or paused (the
one-cycle schedule is fixed by --max-epochs), so cutting its history short is
what the scheduler and the plateau stopper would have produced. This replays
those histories through the real `PromotingASHA` (or Ray's `ASHAScheduler`) and
`PlateauStopper`, with the trials started in the FIFO run's order on as many
workers as it had, each epoch taking the time it took, and prints per setting
the share of FIFO's epochs trained and how far the best final val loss is from
FIFO's, per seed. `early_stopping.py` then confirms a chosen setting by
training it for real.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import statistics
from pathlib import Path
from types import SimpleNamespace

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from tuner.core.constants import METRIC, MODE
from tuner.results import record
from tuner.results.experiments import read_state
from tuner.run.schedulers.asha import PromotingASHA
from tuner.run.stoppers.plateau import PlateauStopper

START_S = 2.0  # a trial's actor start (and a paused trial's restart), as seen on the 2-core machine


class Controller:
    """The calls a scheduler makes on Ray's TuneController: every trial's status, and stopping a paused one."""

    def __init__(self, trials: list[record.TrialRecord]) -> None:
        self.shells = [SimpleNamespace(trial_id=t.trial_id, status=Trial.PENDING, is_saving=False) for t in trials]

    def get_trials(self) -> list[SimpleNamespace]:
        return self.shells

    def stop_trial(self, shell: SimpleNamespace) -> None:
        shell.status = Trial.TERMINATED


def replay(
    trials: list[record.TrialRecord], workers: int, grace: int, rf: int, patience: int | None, scheduler: str = "asha"
) -> dict:
    """Epochs trained and the best final val loss under tuner's ASHA (or Ray's, `ray-asha`), plus the
    plateau stopper unless patience is None. New trials take a free worker first, as in Ray Tune; then a
    paused trial the scheduler chooses resumes (paying START_S again) where it stopped."""
    max_t = max(len(t.epochs) for t in trials)
    if scheduler == "asha":
        sched = PromotingASHA(max_t=max_t, grace_period=grace, reduction_factor=rf, num_samples=len(trials))
    else:
        sched = ASHAScheduler(time_attr="epoch", max_t=max_t, grace_period=grace, reduction_factor=rf)
    sched.set_search_properties(METRIC, MODE)
    stopper = PlateauStopper(patience=patience) if patience else None
    ctl = Controller(trials)
    index_of = {t.trial_id: i for i, t in enumerate(trials)}
    queue = list(range(len(trials)))
    events: list[tuple[float, int, int]] = []  # (time, trial index, epoch reached)
    trained = dict.fromkeys(index_of, 0)
    free = workers

    def run(index: int, now: float) -> None:
        nonlocal free
        free -= 1
        ctl.shells[index].status = Trial.RUNNING
        epoch = trained[trials[index].trial_id] + 1
        heapq.heappush(events, (now + START_S + trials[index].epochs[epoch - 1]["epoch_time_s"], index, epoch))

    def fill(now: float) -> None:
        while free > 0:
            if queue:
                sched.on_trial_add(None, ctl.shells[queue[0]])
                run(queue.pop(0), now)
                continue
            chosen = sched.choose_trial_to_run(ctl)
            if chosen is None or chosen.status != Trial.PAUSED:
                return
            run(index_of[chosen.trial_id], now)

    fill(0.0)
    while events:
        now, index, epoch = heapq.heappop(events)
        trial, shell = trials[index], ctl.shells[index]
        result = {"epoch": epoch, METRIC: trial.epochs[epoch - 1][METRIC]}
        trained[trial.trial_id] = epoch
        decision = TrialScheduler.STOP if stopper is not None and stopper(trial.trial_id, result) else None
        decision = decision or sched.on_trial_result(ctl, shell, result)
        if decision == TrialScheduler.CONTINUE and epoch < len(trial.epochs):
            heapq.heappush(events, (now + trial.epochs[epoch]["epoch_time_s"], index, epoch + 1))
            continue
        free += 1
        if decision == TrialScheduler.PAUSE:
            shell.status = Trial.PAUSED
        else:
            shell.status = Trial.TERMINATED
            sched.on_trial_complete(ctl, shell, result)
        fill(now)
    final = [t.epochs[trained[t.trial_id] - 1][METRIC] for t in trials if trained[t.trial_id]]
    return {"epochs": sum(trained.values()), "best": min(_finite(v) for v in final)}


def _finite(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else math.inf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", help="directory of FIFO experiments kept by early_stopping.py --ways fifo --keep")
    parser.add_argument("--workers", type=int, default=2, help="trials at a time in the FIFO run [2]")
    parser.add_argument("--grace", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rf", type=int, nargs="+", default=[2, 3, 4, 6, 8])
    parser.add_argument("--patience", type=int, nargs="+", default=[0, 1, 2, 3], help="0: no plateau stopper")
    parser.add_argument(
        "--scheduler", choices=["asha", "ray-asha"], default="asha", help="tuner's ASHA, or Ray's ASHAScheduler [asha]"
    )
    args = parser.parse_args()
    runs = {
        p.name: list(record.read(p).values())
        for p in sorted(Path(args.runs).glob("fifo-seed*"))
        if read_state(p) == "finished"
    }
    if not runs:
        raise SystemExit(f"no fifo-seed* experiments in {args.runs}; run early_stopping.py --ways fifo --keep DIR")
    print(f"{len(runs)} FIFO runs: {', '.join(runs)}")
    print(
        f"{'grace':>5s} {'rf':>3s} {'patience':>8s} {'epochs % (per seed)':>24s} "
        f"{'best loss gap % (per seed)':>30s}  goal"
    )
    for grace, rf, patience in itertools.product(args.grace, args.rf, args.patience):
        if grace > max(len(t.epochs) for trials in runs.values() for t in trials):
            continue
        shares, gaps = [], []
        for trials in runs.values():
            fifo_epochs = sum(len(t.epochs) for t in trials)
            fifo_best = min(_finite(t.epochs[-1][METRIC]) for t in trials)
            got = replay(trials, args.workers, grace, rf, patience or None, args.scheduler)
            shares.append(100 * got["epochs"] / fifo_epochs)
            gaps.append(100 * (got["best"] / fifo_best - 1))
        met = statistics.median(shares) <= 35 and statistics.median(gaps) <= 5
        every = max(shares) <= 35 and max(gaps) <= 5
        print(
            f"{grace:5d} {rf:3d} {patience or '-':>8} {' '.join(f'{s:5.0f}' for s in shares):>24s} "
            f"{' '.join(f'{g:+6.1f}' for g in gaps):>30s}  {'every seed' if every else 'median' if met else ''}"
        )


if __name__ == "__main__":
    main()
