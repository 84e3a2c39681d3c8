"""Which Ray tuner runs on, and whether what it asks for can ever run there.

    info = connect(None)                  # a private local instance: "ray: local instance, 2 CPUs, 0 GPUs"
    info = connect("10.0.0.5:6379")       # an existing cluster, reached within CONNECT_TIMEOUT_S or a one-line error
    disconnect()                          # Ray ended before the interpreter's exit, signal handlers as before
    check_fits(info, cpus=4, gpus=0, what="each trial", fix="lower --cpus-per-trial")
    rows = run_on_node(measure, args, cpus=2, gpus=0, what="the CPU benchmark")

Ray waits without a word for a cluster that is not there and for a task that no
node can hold, so everything here has a bound: connecting is tried first in a
child process that is killed after the bound, every resource request is
compared with the nodes before Ray sees it, and a worker that has not started
after START_TIMEOUT_S is reported instead of waited on. With no address and no
RAY_ADDRESS, tuner starts a Ray of its own and never joins a cluster from a
record another Ray left in the temp directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray

from tuner.core.errors import ClusterError, shorten
from tuner.run import ray_adapter, ray_processes

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = float(os.environ.get("TUNER_CONNECT_TIMEOUT_S", "30"))
START_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 3600.0
# Run in a child process: a cluster that never answers makes ray.init wait forever in C++.
_PROBE = (
    "import sys, ray; ray.init(address=sys.argv[1], include_dashboard=False, "
    "logging_level='ERROR', log_to_driver=False); ray.shutdown()"
)


@dataclass(frozen=True)
class Node:
    node_id: str
    ip: str
    cpus: float
    gpus: float


@dataclass(frozen=True)
class RayInfo:
    address: str | None  # None for a local instance
    nodes: tuple[Node, ...]

    def describe(self) -> str:
        cpus, gpus = sum(n.cpus for n in self.nodes), sum(n.gpus for n in self.nodes)
        counts = f"{cpus:g} CPUs, {gpus:g} GPUs"
        if self.address is None:
            return f"ray: local instance, {counts}"
        return f"ray: cluster at {self.address}, {len(self.nodes)} node{'s' * (len(self.nodes) != 1)}, {counts}"

    @property
    def largest(self) -> Node:
        return max(self.nodes, key=lambda n: (n.gpus, n.cpus))


def _alive_nodes() -> tuple[Node, ...]:
    return tuple(
        Node(
            n["NodeID"], n.get("NodeManagerAddress", ""), n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0)
        )
        for n in ray.nodes()
        if n.get("Alive")
    )


_address: str | None = None  # the cluster connect() joined; None for a local instance
_sigterm_before: Any = None  # the SIGTERM handler ray.init replaced with its own; disconnect() puts it back
_ours = False  # connect() called ray.init: disconnect() may end it (a caller's own Ray is left alone)


def info() -> RayInfo:
    """The Ray this process is connected to, node by node."""
    return RayInfo(_address, _alive_nodes())


def connect(address: str | None = None) -> RayInfo:
    """Start a private local Ray (no address, no RAY_ADDRESS) or join the cluster at `address`
    ("auto": the one running on this machine). Prints one line saying which."""
    global _address
    # Trial output goes to each trial's files; the driver prints our own progress lines instead.
    os.environ.setdefault(ray_adapter.SYNC_WARNING_THRESHOLD, "0")
    if not ray.is_initialized():
        global _sigterm_before, _ours
        _sigterm_before, _ours = signal.getsignal(signal.SIGTERM), True
        address = address or os.environ.get("RAY_ADDRESS") or None
        # A handler the caller set (fit.term_as_interrupt) stays; without one, Ray's make SIGTERM end Ray.
        keep = ray_processes.sigterm_left_to_the_caller() if callable(_sigterm_before) else contextlib.nullcontext()
        if address is None:
            # A private instance needs no warning about how other machines would authenticate to it.
            auth_log = logging.getLogger(ray_adapter.AUTH_LOGGER)
            auth_log.setLevel(logging.ERROR)
            with ray_processes.ray_processes_in_their_own_session(), keep:
                ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
            auth_log.setLevel(logging.NOTSET)
        else:
            _probe(address)
            with keep:
                ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        _address = address
    found = info()
    log.info(found.describe())
    return found


def disconnect() -> None:
    """End the Ray that connect() started or joined, now rather than at Python's exit, and put back the SIGTERM
    handler that was there before. Ray's own handler raises SystemExit wherever the signal lands: inside
    ray.shutdown() (a second `kill` while a sweep stops) it leaves Ray's native threads running into the
    interpreter's exit, which crashes with a native stack dump; a Ctrl-C there does the same. The process is
    already stopping then, so both are ignored meanwhile. A Ray this process had before connect() stays."""
    global _ours
    if not (_ours and ray.is_initialized()):
        return
    _ours = False
    if threading.current_thread() is not threading.main_thread():
        ray.shutdown()  # signal handlers belong to the main thread
        return
    term, interrupt = signal.signal(signal.SIGTERM, signal.SIG_IGN), signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ray.shutdown()
    finally:
        signal.signal(signal.SIGTERM, _sigterm_before if _sigterm_before is not None else term)
        signal.signal(signal.SIGINT, interrupt)


def _probe(address: str) -> None:
    """Fail in one line, within CONNECT_TIMEOUT_S, when the cluster at `address` cannot be joined."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if host and port.isdigit():
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            raise ClusterError(
                f"nothing answers at {address} ({exc.strerror or exc}); check the address "
                "(`ray start --head` prints it) and that the cluster is up"
            ) from None
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, address],
            capture_output=True,
            text=True,
            timeout=CONNECT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ClusterError(
            f"no Ray cluster answered at {address} within {CONNECT_TIMEOUT_S:.0f} s; check the address "
            "and that the cluster is up (`ray status` on its head node)"
        ) from None
    if done.returncode == 0:
        return
    if "InvalidAuthToken" in done.stderr or "Unauthenticated" in done.stderr:
        raise ClusterError(
            f"the Ray cluster at {address} requires token authentication; set RAY_AUTH_MODE=token and "
            "provide the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
        )
    last = next((line for line in reversed(done.stderr.strip().splitlines()) if line.strip()), "no output")
    raise ClusterError(
        f"cannot join the Ray cluster at {address} ({shorten(last.strip(), 120)}); check the address, "
        "and that this machine runs the cluster's Ray and Python versions"
    )


def check_fits(found: RayInfo, cpus: float, gpus: float, what: str, fix: str) -> None:
    """Refuse, in one line, a request that no single node can hold (Ray would wait for it forever)."""
    if any(n.cpus >= cpus and n.gpus >= gpus for n in found.nodes):
        return
    big = found.largest
    gpu_note = "; no node has a GPU" if gpus > 0 and not any(n.gpus for n in found.nodes) else ""
    raise ClusterError(
        f"{what} asks for {cpus:g} CPUs and {gpus:g} GPUs on one node, but the largest node has "
        f"{big.cpus:g} CPUs and {big.gpus:g} GPUs{gpu_note}; {fix}"
    )


def slots(found: RayInfo, cpus: float, gpus: float) -> int:
    """How many trials of this size fit at once, node by node (a trial never spans nodes)."""
    total = 0
    for n in found.nodes:
        fit = int(n.cpus // cpus) if cpus else 0
        if gpus:
            fit = min(fit, int(n.gpus // gpus))
        total += fit
    return max(1, total)


class _Worker:
    """Holds its resources while alive, so 'started' and 'finished' can each have a bound."""

    def ready(self) -> bool:
        return True

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


def run_on_node(
    fn: Callable[..., Any],
    args: tuple,
    cpus: float,
    gpus: float,
    what: str,
    fix: str,
    start_timeout: float = START_TIMEOUT_S,
    run_timeout: float = RUN_TIMEOUT_S,
) -> Any:
    """fn(*args) in a Ray worker holding `cpus` and `gpus` on one node, with a bound on starting and on running."""
    check_fits(info(), cpus, gpus, what, fix)
    worker = ray.remote(_Worker).options(num_cpus=cpus, num_gpus=gpus).remote()
    try:
        started, _ = ray.wait([worker.ready.remote()], timeout=start_timeout)
        if not started:
            raise ClusterError(
                f"{what} did not start within {start_timeout:.0f} s: no node has {cpus:g} CPUs and "
                f"{gpus:g} GPUs free now (free: {_free()}); wait for other work to end, or {fix}"
            )
        try:
            return ray.get(worker.run.remote(fn, *args), timeout=run_timeout)
        except ray.exceptions.GetTimeoutError:
            raise ClusterError(
                f"{what} did not finish within {run_timeout:.0f} s; time fewer images or batch sizes"
            ) from None
    finally:
        ray.kill(worker)


def _free() -> str:
    free = ray.available_resources()
    return f"{free.get('CPU', 0):g} CPUs, {free.get('GPU', 0):g} GPUs in all"
