"""Ray's HyperBand, made safe for trainables that end themselves (`--scheduler hyperband`)."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import HyperBandScheduler, TrialScheduler

from tuner.run import ray_adapter


class FinishingHyperBand(HyperBandScheduler):
    """Ray's HyperBand, except that a trial reporting its last epoch is stopped rather than paused.

    HyperBand pauses a trial that reaches its bracket's milestone until the others get there. At the
    last milestone our trainable has already returned; if the bracket ends while that pause is still
    being saved, Ray's cleanup skips the trial (it is not PAUSED yet), and the sweep then waits forever
    on a paused trial nothing resumes (seen in 4-trial sweeps; docs/design.md). A trial at max_t is done: stop it.
    """

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action != TrialScheduler.PAUSE:
            return action
        time_attr, max_t = ray_adapter.hyperband_limits(self)
        if result.get(time_attr, 0) >= max_t:
            return TrialScheduler.STOP
        return action
