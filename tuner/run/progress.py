"""What the driver does as a sweep runs: keep tuner's record, and print one line per epoch with an estimate.

`SweepMonitor` is a Ray Tune callback in the driver process. Each reported epoch
and each trial's end go into the experiment's record (record.py) the moment they
happen, so the tables never depend on Ray's own loggers. Each epoch also prints

    [  41s] trial 3f2a epoch 2/3  val_loss 0.00231  val_psnr 26.36 dB  val_ssim 0.9120 | 1 done, 2 running, ...

(every metric the registry, tuner.core.metrics, marks for the progress line; then the counts, e.g.
"1 done, 2 running, 1 pending", and the estimate, "about 90 s of training left": epochs at their median
time; trial starts and restores come on top).

("paused" joins the counts while tuner's ASHA holds trials at a rung.)

The estimate counts training only: every unfinished trial running to --max-epochs, as many at a time as
fit, at the median epoch time measured so far. Starting or restoring a trial's worker (seconds on a CPU) is
not in it, so it is "about", not "at most".
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from tuner.core import metrics
from tuner.core.errors import first_line
from tuner.results import record

log = logging.getLogger(__name__)


def duration(seconds: float) -> str:
    """42 s, 6.5 min, 2.1 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def time_left(
    epochs_done: dict[str, int], trials_left: int, max_epochs: int, parallel: int, epoch_seconds: float
) -> float:
    """Upper bound on the sweep's remaining time: no trial stopped early, `parallel` trials at a time.
    epochs_done: the running trials' epochs so far; trials_left: running and pending trials."""
    running = sum(max(0, max_epochs - n) for n in epochs_done.values())
    pending = max(0, trials_left - len(epochs_done)) * max_epochs
    return (running + pending) * epoch_seconds / max(1, parallel)


class SweepMonitor(Callback):
    def __init__(self, exp_dir: Path, num_samples: int, max_epochs: int, parallel: int) -> None:
        self.exp_dir = Path(exp_dir)
        self.num_samples, self.max_epochs, self.parallel = num_samples, max_epochs, parallel
        self.started = time.time()
        self.epoch_seconds: list[float] = []
        self.epochs_done: dict[str, int] = {}  # unfinished trials: epochs reported
        self.configs: dict[str, dict] = {}  # each trial's config as last recorded
        self.ended = 0
        self.paused = 0  # trials paused by the scheduler (tuner's ASHA, HyperBand), waiting at a rung
        self.resumed = False  # set by resume(): check the record against Ray's restored trials

    def resume(self, exp_dir: Path, trials: dict[str, record.TrialRecord] | None = None) -> None:
        """Point a monitor restored by Ray (from the pickled run config) at this run's directory and output,
        wherever the pickle says it was: the folder may have been copied or moved since. `trials`: the record
        as the resume already read it (read again if not given)."""
        self.exp_dir, self.started = Path(exp_dir), time.time()
        trials = record.read(self.exp_dir) if trials is None else trials
        self.ended = sum(t.outcome is not None for t in trials.values())
        self.epochs_done = {t.trial_id: len(t.epochs) for t in trials.values() if t.outcome is None}
        self.epoch_seconds = [e["epoch_time_s"] for t in trials.values() for e in t.epochs if e.get("epoch_time_s")]
        self.paused = 0
        self.resumed = True

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self.paused = sum(t.status == "PAUSED" for t in trials)
        # On the first step of a resume, Ray has loaded its saved trials: an unfinished trial of the record
        # that Ray does not know started after Ray's last save. Its configuration runs again as a new trial.
        if not self.resumed:
            return
        self.resumed = False
        known = {t.trial_id for t in trials}
        for trial_id in [t for t in self.epochs_done if t not in known]:
            record.append(
                self.exp_dir, "end", trial_id, outcome=record.LOST, error="started after Ray's last saved state"
            )
            self.epochs_done.pop(trial_id)
            log.info(f"trial {trial_id} started after Ray's last saved state; its configuration runs again")

    def _prefix(self, trial: Any) -> str:
        return f"[{time.time() - self.started:6.0f}s] trial {trial.trial_id}"

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        record.append(self.exp_dir, "start", trial.trial_id, config=dict(trial.config))
        self.configs[trial.trial_id] = dict(trial.config)
        self.epochs_done.setdefault(trial.trial_id, 0)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        fields = {k: result.get(k) for k in record.EPOCH_KEYS}
        if dict(trial.config) != self.configs.get(trial.trial_id, dict(trial.config)):  # PBT explored
            record.append(self.exp_dir, "config", trial.trial_id, config=dict(trial.config))
        self.configs[trial.trial_id] = dict(trial.config)
        record.append(self.exp_dir, "epoch", trial.trial_id, **fields)
        if result.get("epoch_time_s"):
            self.epoch_seconds.append(float(result["epoch_time_s"]))
        self.epochs_done[trial.trial_id] = int(result.get("epoch", 0))
        log.info(
            f"{self._prefix(trial)} epoch {result.get('epoch', '?')}/{self.max_epochs}  {metrics.line(result)}"
            f" | {self._counts()} | {self._estimate()}"
        )
        if len(self.epoch_seconds) == 1:
            log.info(f"first epoch took {duration(self.epoch_seconds[0])}: {self._budget()}")

    def _counts(self) -> str:
        started = len(self.epochs_done)  # running or paused
        pending = max(0, self.num_samples - self.ended - started)
        paused = min(self.paused, started)
        held = f"{paused} paused, " if paused else ""
        return f"{self.ended} done, {started - paused} running, {held}{pending} pending"

    def _estimate(self) -> str:
        left = (
            time_left(
                self.epochs_done,
                self.num_samples - self.ended,
                self.max_epochs,
                self.parallel,
                statistics.median(self.epoch_seconds),
            )
            if self.epoch_seconds
            else 0.0
        )
        return f"about {duration(left)} of training left"

    def _budget(self) -> str:
        whole = self.num_samples * self.max_epochs * self.epoch_seconds[0] / max(1, self.parallel)
        return (
            f"{self.num_samples} trials x {self.max_epochs} epochs, {self.parallel} at a time, take about "
            f"{duration(whole)} of training, plus each trial's start; early stopping usually ends most trials sooner"
        )

    def _ended(self, trial: Any, outcome: str, error: str = "") -> None:
        record.append(self.exp_dir, "end", trial.trial_id, outcome=outcome, error=error)
        self.epochs_done.pop(trial.trial_id, None)
        self.ended += 1

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended(trial, "terminated")
        log.info(f"{self._prefix(trial)} ended ({self._counts()})")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = trial.get_error()
        self._ended(trial, "error", first_line(error, 200) if error else "")
        log.info(f"{self._prefix(trial)} failed: see {trial.local_path}/error.txt ({self._counts()})")
