"""Our own early stopping on Ray Tune: a Stopper that ends trials whose validation loss has stopped
improving.

ASHA compares trials with each other; this stopper looks at one trial alone
and ends it when it stalls, so the two act together. The decision is
`plateau.is_plateau`, which the results code shares.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ray.tune import Stopper

from tuner.core.constants import METRIC
from tuner.search.plateau import is_non_finite, is_plateau


class PlateauStopper(Stopper):
    """Stops a trial after `patience` epochs without a relative improvement of `min_delta`,
    and at once when its metric is not finite (a diverged trial teaches nothing more)."""

    def __init__(self, metric: str = METRIC, patience: int = 3, min_delta: float = 0.01) -> None:
        if patience < 1:
            raise ValueError(f"patience must be at least 1, got {patience}")
        if not 0 <= min_delta < 1:
            raise ValueError(f"min_delta is relative and must be in [0, 1), got {min_delta}")
        self.metric, self.patience, self.min_delta = metric, patience, min_delta
        self._history: dict[str, list[float]] = defaultdict(list)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if is_non_finite(result, self.metric):
            return True
        history = self._history[trial_id]
        history.append(float(result[self.metric]))
        return is_plateau(history, self.patience, self.min_delta)

    def stop_all(self) -> bool:
        return False
