"""Trial schedulers by name: the one registry to extend (`--scheduler NAME`, a space file's `scheduler:`).

Each entry says how to build the scheduler (a function in the Ray layer, named as "module:function" so that
this registry loads no Ray), the status trials.csv gives a trial it ended early, and how the report marks
such a trial. Adding a scheduler: write its builder under tuner/run/schedulers/ and add one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SchedulerEntry:
    name: str
    build: str  # "module:function", called as function(settings, space) -> a Ray Tune TrialScheduler
    stops_trials: bool  # ends trials early: trials.csv then names it as their status
    marker: tuple[str, str]  # matplotlib marker and colour of a trial it ended, in the report's curves
    help: str
    pbt_like: bool = False  # proposes configurations itself: runs with Ray's own random sampling

    @property
    def status(self) -> str | None:
        """The status of a trial this scheduler ended early; None when it ends none."""
        return self.name if self.stops_trials else None


_BUILDERS = "tuner.run.schedulers.builders"

SCHEDULERS: dict[str, SchedulerEntry] = {
    s.name: s
    for s in (
        SchedulerEntry(
            "asha",
            f"{_BUILDERS}:asha",
            True,
            ("x", "tab:red"),
            "tuner's ASHA: passes a rung only in its top 1/rf",
        ),
        SchedulerEntry(
            "ray-asha",
            f"{_BUILDERS}:ray_asha",
            True,
            ("x", "tab:pink"),
            "Ray's ASHA: the first at a rung goes on",
        ),
        SchedulerEntry("hyperband", f"{_BUILDERS}:hyperband", True, ("x", "tab:purple"), "Ray's HyperBand"),
        SchedulerEntry("median", f"{_BUILDERS}:median", True, ("x", "tab:brown"), "Ray's median stopping rule"),
        SchedulerEntry(
            "pbt", f"{_BUILDERS}:pbt", False, ("", ""), "population-based training (with --searcher random)", True
        ),
        SchedulerEntry("fifo", f"{_BUILDERS}:fifo", False, ("", ""), "no early stopping by the scheduler"),
    )
}

# How a trial ended, besides being ended by a scheduler: status -> report marker.
OTHER_STATUSES: dict[str, tuple[str, str]] = {
    "completed": ("*", "tab:green"),
    "plateau": ("o", "tab:orange"),  # tuner's plateau stopper
    "diverged": ("X", "black"),
    "error": ("s", "black"),
    "unfinished": (">", "tab:gray"),
}


def statuses() -> dict[str, tuple[str, str]]:
    """Every status trials.csv can show, with its report marker, in the order tables list them."""
    stopped = {s.status: s.marker for s in SCHEDULERS.values() if s.status}
    return {"completed": OTHER_STATUSES["completed"], **stopped, **OTHER_STATUSES}


STATUSES = tuple(statuses())
