"""Our own early stopping: end trials whose validation loss has stopped improving.

ASHA compares trials with each other; this stopper looks at one trial alone
and ends it when it stalls, so the two act together. The decision itself is a
pure function of a loss history (`is_plateau`), shared by the stopper and by
the results code that explains after the fact why each trial ended.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Sequence

from ray.tune import Stopper


def is_plateau(losses: Sequence[float], patience: int, min_delta: float) -> bool:
    """True when none of the last `patience` losses beat the best before them by `min_delta` (relative).

    With losses [1.0, 0.5, 0.499, 0.498], patience 2 and min_delta 0.01, the best
    before the window is 0.5 and the window's best 0.498 is not below
    0.5 * (1 - 0.01) = 0.495, so the trial has plateaued.
    """
    if len(losses) <= patience:
        return False
    best_before = min(losses[:-patience])
    best_recent = min(losses[-patience:])
    return not best_recent < best_before * (1.0 - min_delta)


def is_non_finite(result: dict[str, Any], metric: str) -> bool:
    value = result.get(metric)
    return bool(result.get("diverged")) or value is None or not math.isfinite(float(value))


class PlateauStopper(Stopper):
    """Stops a trial after `patience` epochs without a relative improvement of `min_delta`,
    and at once when its metric is not finite (a diverged trial teaches nothing more)."""

    def __init__(self, metric: str = "val_loss", patience: int = 3, min_delta: float = 0.01) -> None:
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
