"""When has a trial stopped improving? Pure functions of a metric's history, without Ray.

The plateau stopper (tuner/run/stoppers/plateau.py) decides with them while a sweep runs, and the
results code uses the same ones to explain afterwards why each trial ended. Both directions work: for a
"min" metric (a loss) improving means going down, for a "max" metric (PSNR, SSIM) going up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def is_plateau(values: Sequence[float], patience: int, min_delta: float, mode: str = "min") -> bool:
    """True when none of the last `patience` values beat the best before them by `min_delta` (relative).

    With losses [1.0, 0.5, 0.499, 0.498], patience 2, min_delta 0.01 and mode "min", the best before the
    window is 0.5 and the window's best 0.498 is not below 0.5 - 0.01 * 0.5 = 0.495: a plateau. With
    mode "max" the same rule runs upward: [20.0, 25.0, 25.1, 25.2] is a plateau, as 25.2 is not above
    25.0 + 0.01 * 25.0 = 25.25.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if len(values) <= patience:
        return False
    # A max metric is a min metric negated; the margin is relative to the best's size either way.
    sign = 1.0 if mode == "min" else -1.0
    before = [sign * v for v in values[:-patience]]
    recent = [sign * v for v in values[-patience:]]
    best_before, best_recent = min(before), min(recent)
    return not best_recent < best_before - min_delta * abs(best_before)


def is_non_finite(result: dict[str, Any], metric: str) -> bool:
    """A diverged epoch: flagged as such, or a metric that is missing, NaN or infinite."""
    value = result.get(metric)
    return bool(result.get("diverged")) or value is None or not math.isfinite(float(value))
