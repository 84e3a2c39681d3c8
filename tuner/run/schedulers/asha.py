"""ASHA that promotes: a trial goes past a rung only once it is in the top 1/reduction_factor of that rung.

Ray's ASHAScheduler decides the moment a trial reports at a rung, against whoever reported there before.
The first trial at a rung has no one to lose to, so it always goes on; on a 2-core machine the first two
trials of a sweep hold both cores to the last epoch while the rest wait, however poor they are (measured
in docs/benchmarks.md, early stopping).

This is ASHA as Li et al. describe it (MLSys 2020, "A System for Massively Parallel Hyperparameter
Tuning", Algorithm 2), on Ray Tune's scheduler API. A trial reaching a rung goes on only if it is among the
best floor(n / rf) of the n trials recorded there; otherwise it is paused, its checkpoint kept, and its
resources go to the next new trial. A paused trial resumes as soon as enough trials below it make it
promotable. When nothing runs and nothing waits to start, every rung is taken as complete: each promotes
max(1, floor(n / rf)) trials in all (so at least one trial always reaches max_t) and its other paused
trials stop; a trial reporting when it is the last one left is decided that way at once, without a pause.

Ray's concurrency limit (max_concurrent_trials) counts paused trials, which would keep new ones from
starting; `--concurrency` comes through `RunningLimit` instead, which counts only trials holding
resources. Ray saves no scheduler state, so a resumed sweep rebuilds the rungs from tuner's record.
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher

from tuner.run import ray_adapter


def _busy(trial: Trial) -> bool:
    """Running, about to run, or saving before a pause: a trial that may still report."""
    return trial.status in (Trial.PENDING, Trial.RUNNING) or ray_adapter.is_saving(trial)


def rungs(grace_period: int, reduction_factor: int, max_t: int) -> list[int]:
    """The epochs at which trials are compared: grace, grace*rf, grace*rf^2, ... below max_t."""
    found, t = [], grace_period
    while t < max_t:
        found.append(t)
        t *= reduction_factor
    return found


class PromotingASHA(FIFOScheduler):
    """Asynchronous successive halving with ASHA's promotion rule; see the module docstring."""

    def __init__(
        self,
        max_t: int,
        grace_period: int,
        reduction_factor: int,
        num_samples: int | None = None,
        time_attr: str = "epoch",
        max_running: int | None = None,
    ) -> None:
        super().__init__()
        self.max_t, self.rf, self.time_attr = max_t, reduction_factor, time_attr
        self.num_samples, self.max_running = num_samples, max_running
        self.rungs = rungs(grace_period, reduction_factor, max_t)
        self.recorded: dict[int, dict[str, float]] = {r: {} for r in self.rungs}  # rung -> trial -> loss
        self.promoted: dict[int, set[str]] = {r: set() for r in self.rungs}
        self.waiting: dict[str, int] = {}  # paused trial -> the rung it waits at
        self.ahead: dict[str, tuple[int, float]] = {}  # waiting trial -> an epoch it trained past its rung
        self.sign = 1.0  # losses are compared as sign * metric, lower is better

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        ray_adapter.set_scheduler_metric(self, metric)
        self.sign = -1.0 if mode == "max" else 1.0
        return True

    def restore(self, histories: dict[str, list[float]], unfinished: set[str]) -> None:
        """Rebuild the rungs from tuner's record when a sweep resumes (Ray keeps no scheduler state):
        `histories` holds every trial's loss per epoch. An unfinished trial that stopped at a rung it had
        not passed was waiting there; Ray restarts it anyway, and its next report pauses it again."""
        for trial_id, losses in histories.items():
            for rung in self.rungs:
                if len(losses) >= rung:
                    self.recorded[rung][trial_id] = self._ranked(losses[rung - 1])
                if len(losses) > rung:
                    self.promoted[rung].add(trial_id)
            if trial_id in unfinished and len(losses) in self.recorded and trial_id not in self.promoted[len(losses)]:
                self.waiting[trial_id] = len(losses)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        t = int(result.get(self.time_attr, 0))
        if t >= self.max_t:
            return TrialScheduler.STOP
        value = self._ranked(result.get(self.metric, math.nan))
        if t > self.waiting.get(trial.trial_id, t):
            # Ray's resume restarted a trial that waited at a rung; it trained on. It waits again, and its
            # new epoch counts once it is promoted (at the next rung, if it reached one).
            self.ahead[trial.trial_id] = (t, value)
            return TrialScheduler.PAUSE
        if t not in self.recorded or trial.trial_id in self.promoted[t]:
            return TrialScheduler.CONTINUE  # not a rung, or a trial without checkpoints starting over
        self.recorded[t][trial.trial_id] = value
        if self._promotable(trial.trial_id, t, self._quota(t)):
            self.promoted[t].add(trial.trial_id)
            return TrialScheduler.CONTINUE
        if self._alone(tune_controller, trial):  # the rung is complete: pausing would only cost a restart
            if self._promotable(trial.trial_id, t, self._quota(t, complete=True)):
                self.promoted[t].add(trial.trial_id)
                return TrialScheduler.CONTINUE
            return TrialScheduler.STOP
        self.waiting[trial.trial_id] = t
        return TrialScheduler.PAUSE

    def _ranked(self, loss: float) -> float:
        """What trials are compared by, lower better; a non-finite loss ranks last."""
        value = self.sign * float(loss)
        return value if math.isfinite(value) else math.inf

    def _alone(self, tune_controller: Any, trial: Trial) -> bool:
        """Every trial of the sweep has started, and no other one runs or is about to: no result can come."""
        trials = tune_controller.get_trials()
        if self.num_samples is None or len(trials) < self.num_samples:
            return False
        return not any(t is not trial and _busy(t) for t in trials)

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        self._forget(trial.trial_id)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._forget(trial.trial_id)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self._forget(trial.trial_id)

    def _forget(self, trial_id: str) -> None:
        self.waiting.pop(trial_id, None)
        self.ahead.pop(trial_id, None)

    def _quota(self, rung: int, complete: bool = False) -> int:
        """How many trials this rung promotes: a complete rung promotes at least one."""
        n = len(self.recorded[rung]) // self.rf
        return max(1, n) if complete else n

    def _promotable(self, trial_id: str, rung: int, quota: int) -> bool:
        """In the rung's top `quota`, and among the best of those not yet promoted while places are left:
        a better trial that arrived earlier and waits is promoted before this one."""
        recorded = self.recorded[rung]
        top = sorted(recorded, key=recorded.__getitem__)[:quota]
        waiting = [t for t in top if t not in self.promoted[rung]]
        return trial_id in waiting[: quota - len(self.promoted[rung])]

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        """A paused trial to resume, if one has earned it; new trials Ray starts by itself."""
        trials = tune_controller.get_trials()
        paused = [t for t in trials if t.status == Trial.PAUSED]
        for trial in paused:
            if trial.trial_id not in self.waiting:
                # Promoted below, or paused before the sweep was resumed (this scheduler's state is new then).
                return trial
        busy = sum(_busy(t) for t in trials)
        if self.max_running is not None and busy >= self.max_running:
            return None
        # Highest rung first: the trials closest to a result.
        paused.sort(key=lambda t: (-self.waiting[t.trial_id], self.recorded[self.waiting[t.trial_id]][t.trial_id]))
        for trial in paused:
            rung = self.waiting[trial.trial_id]
            if self._promotable(trial.trial_id, rung, self._quota(rung)) and self._promote(trial):
                return trial
        if not paused or busy:
            return None
        # Nothing runs and nothing waits to start (all trials started, or a concurrency limit holds the rest):
        # take every rung as complete.
        chosen = []
        for trial in paused:
            rung = self.waiting[trial.trial_id]
            if self._promotable(trial.trial_id, rung, self._quota(rung, complete=True)):
                if self._promote(trial):  # paused, no longer waiting: the next calls return the rest
                    chosen.append(trial)
            else:
                del self.waiting[trial.trial_id]
                tune_controller.stop_trial(trial)
        return chosen[0] if chosen else None

    def _promote(self, trial: Trial) -> Trial | None:
        """Promote a waiting trial; None when it already stands at the next rung, where it now waits."""
        rung = self.waiting.pop(trial.trial_id)
        self.promoted[rung].add(trial.trial_id)
        epoch, value = self.ahead.pop(trial.trial_id, (0, math.inf))
        if epoch in self.recorded:
            self.recorded[epoch][trial.trial_id] = value
            self.waiting[trial.trial_id] = epoch
            return None
        return trial

    def debug_string(self) -> str:
        counts = ", ".join(f"{r}: {len(self.recorded[r])} in, {len(self.promoted[r])} on" for r in self.rungs)
        return f"PromotingASHA rungs {{{counts}}}, {len(self.waiting)} paused"


class RunningLimit(ConcurrencyLimiter):
    """Ray's ConcurrencyLimiter, except that trials PromotingASHA holds paused do not count: they hold no
    resources, and counting them would stop new trials from starting while the paused ones wait for them."""

    def __init__(self, searcher: Searcher, max_concurrent: int, scheduler: PromotingASHA) -> None:
        super().__init__(searcher, max_concurrent=max_concurrent)
        self.scheduler = scheduler

    def suggest(self, trial_id: str) -> dict | None:
        if len(self.live_trials - set(self.scheduler.waiting)) >= self.max_concurrent:
            return None
        suggestion = self.searcher.suggest(trial_id)
        if suggestion not in (None, Searcher.FINISHED):
            self.live_trials.add(trial_id)
            self.num_unfinished_live_trials += 1
        return suggestion

    def get_state(self) -> dict:
        state = super().get_state()
        state.pop("scheduler", None)  # the live scheduler, not a copy, after Tuner.restore
        return state
