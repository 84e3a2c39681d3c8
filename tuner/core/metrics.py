"""Every per-epoch metric, declared once: what it is called, which way is better, how it is shown and computed.

A trial reports one dict per epoch; everything that reads those dicts reads this registry rather than a list
of its own: the training loop's validation, the record (record.EPOCH_KEYS), trials.csv and history.csv, the
leaderboard's sort direction, the best trial, the plateau rule and stopper, the sweep's progress line and
the report. A new metric is one entry here plus the function that computes it.

`compute` names that function as "module:function" inside tuner.learn (core imports nothing heavy, so it
is a string, imported by tuner.learn.fidelity when validating). The function takes the model's outputs
and the teacher's targets for a batch of validation images, (N, 1, 28, 28) each, and returns one value per
image (N,); the epoch's value is the mean over all validation images. With `of` set, the function instead
takes the epoch value of that other metric (PSNR is a function of the mean squared error, not a mean of
per-image PSNRs). None: the training loop produces the value itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DIRECTIONS = ("min", "max")


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str  # "min": lower is better; "max": higher is better
    label: str  # what a person reads on an axis or in a table
    fmt: str = ".4g"  # format spec of one value
    unit: str = ""  # printed after the value
    progress: bool = False  # on the sweep's line per epoch, the leaderboard and the report's curves
    compute: str | None = None  # "module:function" in tuner.learn; None: the training loop's own
    of: str | None = None  # compute maps this metric's epoch value, not images
    log_scale: bool = False  # plotted on a log axis
    per_trial: bool = True  # trials.csv has its last and best value
    only_pareto: bool = False  # reported by --pareto sweeps' trials alone (NaN in others' tables)

    def format(self, value: Any) -> str:
        """The value as shown: `26.40 dB`; `nan` when missing."""
        number = math.nan if value is None else float(value)
        return f"{number:{self.fmt}}" + (f" {self.unit}" if self.unit else "")


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("train_loss", "min", "training MSE", fmt=".5f", log_scale=True),
        Metric(
            "val_loss",
            "min",
            "validation MSE",
            fmt=".5f",
            progress=True,
            compute="fidelity:squared_error",
            log_scale=True,
        ),
        Metric(
            "val_psnr",
            "max",
            "validation PSNR",
            fmt=".2f",
            unit="dB",
            progress=True,
            compute="teacher:psnr",
            of="val_loss",
        ),
        Metric("val_ssim", "max", "validation SSIM", fmt=".4f", progress=True, compute="ssim:ssim"),
        Metric("epoch_time_s", "min", "epoch time", fmt=".1f", unit="s", per_trial=False),
        # A --pareto sweep's trials measure their model's inference speed where they run (tuner.run.trainable).
        Metric("images_per_s", "max", "inference images/s", fmt=",.0f", unit="images/s", only_pareto=True),
        Metric("x_vs_teacher", "max", "x the per-image teacher", fmt=".2f", unit="x", only_pareto=True),
        Metric("speed_time_s", "min", "speed measurement", fmt=".2f", unit="s", per_trial=False, only_pareto=True),
    )
}


def get(name: str) -> Metric:
    """The registered metric `name`, or a short name for one (`ssim` for `val_ssim`)."""
    found = resolve(name)
    if found is None:
        raise KeyError(f"no metric {name!r}; registered: {', '.join(METRICS)}")
    return METRICS[found]


def resolve(name: str) -> str | None:
    """The registered name that `name` means: itself, or `val_<name>` for a short name; None if neither."""
    for candidate in (name, f"val_{name}"):
        if candidate in METRICS:
            return candidate
    return None


def metric_of_column(column: str) -> Metric | None:
    """The metric a table column holds: `val_ssim` and `best_val_ssim` both hold val_ssim."""
    return METRICS.get(column) or METRICS.get(column.removeprefix("best_"))


def names() -> list[str]:
    return list(METRICS)


def shown() -> list[Metric]:
    """The metrics on the progress line, the leaderboard and the report's curves."""
    return [m for m in METRICS.values() if m.progress]


def per_trial() -> list[Metric]:
    return [m for m in METRICS.values() if m.per_trial]


def computed() -> list[Metric]:
    """The metrics validation computes, each after the one it is computed `of`."""
    return [m for m in METRICS.values() if m.compute]


def best(values: list[float], direction: str) -> float:
    """The best finite value, NaN when there is none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan
    return max(finite) if direction == "max" else min(finite)


def line(result: dict[str, Any]) -> str:
    """The progress line's metrics: `val_loss 0.00231  val_psnr 26.40 dB  val_ssim 0.9120`."""
    return "  ".join(f"{m.name} {m.format(result.get(m.name))}" for m in shown())


def check(registry: dict[str, Metric] = METRICS) -> None:
    """A registry mistake is a bug in tuner: fail at import, not in the middle of a sweep."""
    for m in registry.values():
        if m.direction not in DIRECTIONS:
            raise ValueError(f"metric {m.name}: direction {m.direction!r} is not one of {DIRECTIONS}")
        if m.compute is not None and m.compute.count(":") != 1:
            raise ValueError(f"metric {m.name}: compute {m.compute!r} is not 'module:function'")
        earlier = list(registry)[: list(registry).index(m.name)]
        if m.of is not None and (m.of not in earlier or registry[m.of].compute is None):
            raise ValueError(f"metric {m.name}: `of` {m.of!r} must be a computed metric registered before it")


check()
