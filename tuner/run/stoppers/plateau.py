"""Our own early stopping on Ray Tune: a Stopper that ends trials whose validation metric has stopped
improving.

ASHA compares trials with each other; this stopper looks at one trial alone
and ends it when it stalls, so the two act together. The decision is
`plateau.is_plateau`, which the results code shares; which way is better comes
from the metric registry (tuner.core.metrics), so a "max" metric improves upward.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ray.tune import Stopper

from tuner.core import metrics
from tuner.core.constants import METRIC, MODE
from tuner.search.plateau import is_non_finite, is_plateau


class PlateauStopper(Stopper):
    """Stops a trial after `patience` epochs without a relative improvement of `min_delta`,
    and at once when its metric is not finite (a diverged trial teaches nothing more)."""

    def __init__(
        self, metric: str = METRIC, patience: int = 3, min_delta: float = 0.01, mode: str | None = None
    ) -> None:
        if patience < 1:
            raise ValueError(f"patience must be at least 1, got {patience}")
        if not 0 <= min_delta < 1:
            raise ValueError(f"min_delta is relative and must be in [0, 1), got {min_delta}")
        # The sweep's metric goes the sweep's way; any other the way the registry says.
        mode = mode or (MODE if metric == METRIC else metrics.get(metric).direction)
        if mode not in metrics.DIRECTIONS:
            raise ValueError(f"mode must be one of {metrics.DIRECTIONS}, got {mode!r}")
        self.metric, self.patience, self.min_delta, self.mode = metric, patience, min_delta, mode
        # By epoch, not by report: a trial retried from its checkpoint, or given another's by PBT, reports an
        # epoch again, and a repeat must replace the value, not count as an epoch without improvement.
        self._history: dict[str, dict[int, float]] = defaultdict(dict)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if is_non_finite(result, self.metric):
            return True
        history = self._history[trial_id]
        history[int(result.get("epoch", len(history) + 1))] = float(result[self.metric])
        return is_plateau([history[e] for e in sorted(history)], self.patience, self.min_delta, self.mode)

    def restore(self, histories: dict[str, list[float]]) -> None:
        """Each trial's values by epoch, from tuner's record, when a sweep resumes: Ray pickles the stopper as
        it was at its last save, which can be epochs behind the record."""
        for trial_id, values in histories.items():
            self._history[trial_id] = dict(enumerate(values, start=1))

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A stopper pickled by an older tuner (a sweep being resumed) has no mode (its metric was the loss) and
        # its history as one list per trial.
        history = state.get("_history", {})
        state = {**state, "_history": defaultdict(dict, {k: _by_epoch(v) for k, v in history.items()})}
        self.__dict__.update({"mode": MODE, **state})

    def stop_all(self) -> bool:
        return False


def _by_epoch(values: list[float] | dict[int, float]) -> dict[int, float]:
    return dict(values) if isinstance(values, dict) else dict(enumerate(values, start=1))
