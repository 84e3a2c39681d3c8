"""How Ray's local processes start and which SIGTERM handler the driver keeps: the two places tuner changes
Ray's process handling, both private to Ray, both checked loudly (ray_adapter.missing). Used by run/cluster.py
while it starts Ray; explained in docs/design.md.

    with ray_processes_in_their_own_session(), sigterm_left_to_the_caller():
        ray.init(...)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tuner.run.ray_adapter import missing


@contextmanager
def ray_processes_in_their_own_session() -> Iterator[None]:
    """Ray's processes started meanwhile (GCS, raylet, and through the raylet every worker) get a session of
    their own, away from the driver's process group.

    Ray's children block SIGINT, so a Ctrl-C to the group reaches only the driver, which stops Ray in order;
    they do not block SIGTERM, so `kill -TERM -PGID` or `timeout` killed them under the driver, which then
    waited 60 s for its GCS and exited 1 without the resume hint. Ray's kernel fate-sharing
    (PR_SET_PDEATHSIG) does not depend on the session: they still die with the driver."""
    from ray._private import services

    original = services.__dict__.get("ConsolePopen")
    if original is None:
        missing("ray._private.services.ConsolePopen (how Ray starts its processes)")

    class OwnSessionPopen(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("start_new_session", True)
            super().__init__(*args, **kwargs)

    services.ConsolePopen = OwnSessionPopen
    try:
        yield
    finally:
        services.ConsolePopen = original


@contextmanager
def sigterm_left_to_the_caller() -> Iterator[None]:
    """ray.init leaves the SIGTERM handler the caller set (tuner's: SIGTERM as Ctrl-C).

    ray.init and the local node it starts each install their own, which exit(15) or exit(1) without a word
    wherever the signal lands: a SIGTERM during the seconds ray.init takes, or while a sweep's images are
    made, ended tuner with no message. Ray's processes still end with the driver (its atexit hook and the
    kernel's fate-sharing), and tuner's commands shut Ray down in order."""
    from ray._private import utils

    original = utils.__dict__.get("set_sigterm_handler")
    if original is None:
        missing("ray._private.utils.set_sigterm_handler (how ray.init takes over SIGTERM)")
    utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        utils.set_sigterm_handler = original
        # The driver's C++ core worker also puts its failure-signal handler in front of Python's: a SIGTERM
        # prints a native stack dump, then reaches the caller's handler. Registering the caller's again over it
        # removed the dump, but a second SIGTERM while Ray stopped then killed the process (exit -15, 2 of 4).
