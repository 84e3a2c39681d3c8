"""When has a trial stopped improving? Pure functions of a loss history, without Ray.

The plateau stopper (stoppers.py) decides with them while a sweep runs, and the
results code uses the same ones to explain afterwards why each trial ended.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


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
    """A diverged epoch: flagged as such, or a metric that is missing, NaN or infinite."""
    value = result.get(metric)
    return bool(result.get("diverged")) or value is None or not math.isfinite(float(value))
