"""How tuner runs Ray Tune's fit(): its own output off the terminal, and trials started together.

    with quiet_ray(), started_together(parallel):
        tuner.fit()

Both undo what they change when fit() returns, so a Python caller's logging and
environment are as they were.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import optuna


@contextmanager
def quiet_ray() -> Iterator[None]:
    """Ray Tune's own output (a configuration box, warnings on Ctrl-C and on resume) and Optuna's
    study line repeat what tuner's progress lines say; keep them off the terminal while fit() runs."""
    loggers = [logging.getLogger(name) for name in ("ray.tune", "ray.train")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    optuna_level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    new_output = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # the classic reporter prints nothing at verbose=0
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        optuna.logging.set_verbosity(optuna_level)
        if new_output is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = new_output


@contextmanager
def started_together(parallel: int) -> Iterator[None]:
    """Ray Tune starts trials one after another unless a concurrency limit allows more. tuner's ASHA runs
    without one (paused trials would count against it), and a trial's start takes seconds (12 s on a GPU
    node, CUDA included), so let as many start together as run together. A value the user set stays."""
    key = "TUNE_MAX_PENDING_TRIALS_PG"
    if key in os.environ:
        yield
        return
    os.environ[key] = str(max(1, parallel))
    try:
        yield
    finally:
        os.environ.pop(key, None)
