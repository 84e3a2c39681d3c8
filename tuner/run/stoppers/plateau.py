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
        self._history: dict[str, list[float]] = defaultdict(list)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if is_non_finite(result, self.metric):
            return True
        history = self._history[trial_id]
        history.append(float(result[self.metric]))
        return is_plateau(history, self.patience, self.min_delta, self.mode)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A stopper pickled by an older tuner (a sweep being resumed) has no mode: its metric was the loss.
        self.__dict__.update({"mode": MODE, **state})

    def stop_all(self) -> bool:
        return False
