"""Replay FIFO runs through Ray's ASHA and tuner's plateau stopper, to choose early-stopping defaults.

    .venv/bin/python benchmarks/early_stopping.py --ways fifo --epochs 8 --keep /tmp/fifo   # train once
    .venv/bin/python benchmarks/replay_stopping.py /tmp/fifo                                # replay, seconds

Training the same configurations three ways for each candidate setting costs
minutes per setting. A FIFO run already holds every epoch of every trial, and a
trial's epoch k does not depend on whether it is later stopped (the one-cycle
schedule is fixed by --max-epochs), so cutting its history short is what ASHA
and the plateau stopper would have produced. This replays those histories
through the real `ASHAScheduler` and `PlateauStopper`, with the trials started
in the FIFO run's order on as many workers as it had, each epoch taking the
time it took, and prints per setting the share of FIFO's epochs trained and how
far the best final val loss is from FIFO's, per seed. `early_stopping.py` then
confirms a chosen setting by training it for real.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import statistics
from pathlib import Path
from types import SimpleNamespace

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from tuner import record
from tuner.constants import METRIC, MODE
from tuner.experiments import read_state
from tuner.stoppers import PlateauStopper

START_S = 2.0  # a trial's actor start, as seen on the 2-core machine


def replay(trials: list[record.TrialRecord], workers: int, grace: int, rf: int, patience: int | None) -> dict:
    """Epochs trained and the best final val loss under ASHA (+ the plateau stopper unless patience is None)."""
    max_t = max(len(t.epochs) for t in trials)
    scheduler = ASHAScheduler(time_attr="epoch", max_t=max_t, grace_period=grace, reduction_factor=rf)
    scheduler.set_search_properties(METRIC, MODE)
    stopper = PlateauStopper(patience=patience) if patience else None
    queue = list(trials)
    events: list[tuple[float, int, int]] = []  # (time, trial index, epoch reached)
    free_at = [0.0] * workers
    trained = {}

    def start(now: float) -> None:
        index = len(trials) - len(queue)
        trial = queue.pop(0)
        scheduler.on_trial_add(None, SimpleNamespace(trial_id=trial.trial_id))
        heapq.heappush(events, (now + START_S + trial.epochs[0]["epoch_time_s"], index, 1))

    for w in range(min(workers, len(queue))):
        start(free_at[w])
    while events:
        now, index, epoch = heapq.heappop(events)
        trial = trials[index]
        shell = SimpleNamespace(trial_id=trial.trial_id)
        result = {"epoch": epoch, METRIC: trial.epochs[epoch - 1][METRIC]}
        trained[trial.trial_id] = epoch
        stopped = stopper is not None and stopper(trial.trial_id, result)
        if not stopped:
            stopped = scheduler.on_trial_result(None, shell, result) == TrialScheduler.STOP
        if stopped or epoch == len(trial.epochs):
            scheduler.on_trial_complete(None, shell, result)
            if queue:
                start(now)
        else:
            heapq.heappush(events, (now + trial.epochs[epoch]["epoch_time_s"], index, epoch + 1))
    final = [t.epochs[trained[t.trial_id] - 1][METRIC] for t in trials]
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
            got = replay(trials, args.workers, grace, rf, patience or None)
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
