"""What `tuner results` and `tuner list` show: the trials to show, in which order and columns, and how a
table is written out (aligned text, CSV, JSON or Markdown). No Ray, no torch.

    shown = leaderboard(exp.trials, sort="ssim", top=5)
    print(render(shown, "markdown"))
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tuner.core import metrics
from tuner.core.constants import METRIC, TABLE_FORMATS
from tuner.core.errors import TunerError
from tuner.search.schedulers import STATUSES

# The metrics the progress line shows, the optimised one last.
LEADERBOARD_COLUMNS = ["trial_id", "status", "epochs", *(m.name for m in metrics.shown() if m.name != METRIC), METRIC]


def _column(name: str, columns: pd.Index) -> str | None:
    """The column `name` means: itself, a metric's short name (`ssim`, `best_ssim`), or a parameter."""
    bare = name.removeprefix("best_")
    prefix = "best_" if bare != name else ""
    for candidate in (name, f"{prefix}val_{bare}", f"config/{name}"):
        if candidate in columns:
            return candidate
    return None


def leaderboard(
    trials: pd.DataFrame,
    sort: str = METRIC,
    descending: bool = False,
    top: int = 5,
    columns: list[str] | None = None,
    statuses: list[str] | None = None,
) -> pd.DataFrame:
    """The trials to show: filtered by status, sorted, the first `top`, in `columns` (names or parameters).

    A metric sorts best first, in its registered direction; anything else low to high, unless `descending`."""
    if statuses:
        unknown = set(statuses) - set(STATUSES)
        if unknown:
            raise TunerError(f"unknown status {sorted(unknown)}; use some of: {', '.join(STATUSES)}")
        trials = trials[trials["status"].isin(statuses)]
    key = _column(sort, trials.columns)
    if key is None:
        raise TunerError(f"cannot sort by {sort!r}; use one of: {', '.join(trials.columns)}")
    metric = metrics.metric_of_column(key)
    ascending = metric.direction == "min" if metric is not None else not descending  # a metric: best first
    trials = trials.sort_values(key, ascending=ascending, na_position="last", kind="stable")
    wanted = columns or LEADERBOARD_COLUMNS + [c for c in trials.columns if c.startswith("config/")]
    found = [_column(c, trials.columns) for c in wanted]
    missing = [c for c, f in zip(wanted, found, strict=True) if f is None]
    if missing:
        raise TunerError(f"unknown columns {missing}; use some of: {', '.join(trials.columns)}")
    return trials[found].head(top)


def render(frame: pd.DataFrame, fmt: str) -> str:
    """A DataFrame as text: an aligned table, CSV, JSON records or a Markdown table (parameters without `config/`)."""
    if fmt in ("table", "markdown"):
        frame = frame.rename(columns=lambda c: c.removeprefix("config/"))
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        return frame.to_json(orient="records", indent=2)
    cells = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    if fmt == "markdown":
        rows = [list(frame.columns), ["---"] * len(frame.columns), *cells]
        return "\n".join("| " + " | ".join(r) + " |" for r in rows)
    if fmt == "table":
        if not len(frame):
            return "(none)"
        # na_rep reaches float columns only; a nullable integer's <NA> is marked here.
        frame = frame.apply(lambda c: c if c.dtype.kind == "f" else c.astype(object).where(c.notna(), "-"))
        return frame.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")
    raise TunerError(f"unknown format {fmt!r}; use one of: {', '.join(TABLE_FORMATS)}")


def _cell(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):  # NaN, <NA>: unknown
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
