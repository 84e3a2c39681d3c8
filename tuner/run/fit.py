"""How tuner builds Ray Tune's Tuner and runs its fit(): its own output off the terminal, trials started
together, SIGTERM as Ctrl-C.

    tuner = new_tuner(settings, space, trainable, parallel, callbacks)
    with term_as_interrupt():  # until the sweep's last file is written
        with quiet_ray(), started_together(parallel), ctrl_c_back_after_fit():
            tuner.fit()

Each undoes what it changes when the block ends, so a Python caller's logging,
environment and signal handlers are as they were.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import optuna
from ray import tune

from tuner.core.constants import METRIC, MODE
from tuner.results.dashboard import study_url
from tuner.run import methods as search_methods
from tuner.run import ray_adapter
from tuner.run.stoppers.plateau import PlateauStopper
from tuner.search.settings import SweepSettings


@contextmanager
def quiet_ray() -> Iterator[None]:
    """Ray Tune's own output (a configuration box, warnings on Ctrl-C and on resume) and Optuna's
    study line repeat what tuner's progress lines say; keep them off the terminal while fit() runs."""
    loggers = [logging.getLogger(name) for name in ray_adapter.TUNE_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    optuna_level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Ray's ERROR line on an interrupted or failed sweep names trial objects; tuner's table and its resume
    # hint say the same in the user's terms.
    run_log = logging.getLogger(ray_adapter.RUN_LOGGER)
    incomplete = logging.Filter()
    incomplete.filter = lambda record: not str(record.msg).startswith(ray_adapter.INCOMPLETE_MESSAGE)
    run_log.addFilter(incomplete)
    try:
        # The classic reporter prints nothing at verbose=0; the new one would print its own lines.
        with ray_adapter.env(**{ray_adapter.NEW_OUTPUT: "0"}), warnings.catch_warnings():
            # Ray's OptunaSearch reports every result to Optuna at Ray's training_iteration, which starts at 1
            # again in a trial a resume restored; Optuna keeps its first value for a step and warns. tuner's
            # record keeps each epoch, and the samplers read only a trial's final values.
            warnings.filterwarnings("ignore", message="The reported value is ignored", category=UserWarning)
            warnings.filterwarnings("ignore", message=ray_adapter.PBT_REUSE_WARNING, category=UserWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        optuna.logging.set_verbosity(optuna_level)
        run_log.removeFilter(incomplete)


@contextmanager
def started_together(parallel: int) -> Iterator[None]:
    """Ray Tune starts trials one after another unless a concurrency limit allows more. tuner's ASHA runs
    without one (paused trials would count against it), and a trial's start takes seconds (more on a GPU
    node, CUDA included), so let as many start together as run together. A value the user set stays."""
    if ray_adapter.MAX_PENDING_TRIALS in os.environ:
        yield
        return
    with ray_adapter.env(**{ray_adapter.MAX_PENDING_TRIALS: str(max(1, parallel))}):
        yield


@contextmanager
def term_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's or `kill`'s stop) does what Ctrl-C does: Ray saves its state and fit() returns.

    Without this, SIGTERM reaches the handler Ray's core worker installed, which prints a native stack and
    ends the process before anything is written. The handler is looked up when the signal comes, so it is
    Ray's Ctrl-C handler during fit() and Python's KeyboardInterrupt otherwise (e.g. a second signal)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def forward(signum: int, frame: FrameType | None) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        yield
    finally:
        # Only if still ours: a ray.init begun without a handler of ours installs Ray's own (it ends Ray's
        # processes on SIGTERM), which must stay after this block.
        if signal.getsignal(signal.SIGTERM) is forward:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def ctrl_c_back_after_fit() -> Iterator[None]:
    """Put back the SIGINT (and SIGUSR1) handlers fit() found. Ray Tune installs one that only asks the run to
    stop, and keeps it after fit() returns: a Ctrl-C or SIGTERM while the tables are written or the best model is
    benchmarked would print Ray's "ending Ray Tune run" and be ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = [s for s in (signal.SIGINT, getattr(signal, "SIGUSR1", None)) if s is not None]
    found = {s: signal.getsignal(s) for s in names}
    try:
        yield
    finally:
        for s, handler in found.items():
            if handler is not None:  # None: set outside Python, cannot be put back from here
                signal.signal(s, handler)


def trial_dirname(trial: Any) -> str:
    """trial_<id>: short, stable directory names; Ray's default embeds every parameter value."""
    return f"trial_{trial.trial_id}"


def new_tuner(settings: SweepSettings, space: Any, trainable: Any, parallel: int, callbacks: list[Any]) -> tune.Tuner:
    """Ray's Tuner for a new sweep: the searcher and scheduler the settings name, tuner's monitor among the
    callbacks, one directory per trial under the experiment's."""
    trial_scheduler = search_methods.scheduler(settings, space)
    search_alg, limit = search_methods.with_limit(
        search_methods.searcher(settings, space, study_url(settings.experiment_dir)),
        trial_scheduler,
        settings,
        parallel,
    )
    return tune.Tuner(
        trainable,
        param_space=search_methods.param_space(settings, space),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            num_samples=settings.num_samples,
            search_alg=search_alg,
            scheduler=trial_scheduler,
            max_concurrent_trials=limit,
            trial_dirname_creator=trial_dirname,
            # On a GPU a trial's start (a process, imports, data, CUDA) costs several epochs, so a new or resumed
            # trial takes over a finished one's worker. Not on CPUs: there a start is cheap, and a reused worker's
            # paused or stopped trial first trains one more epoch nobody reads (Ray's function trainables run one
            # report ahead), which slowed the quick preset's epochs (docs/benchmarks.md, quality for the CPU time).
            reuse_actors=settings.gpus_per_trial > 0,
        ),
        run_config=tune.RunConfig(
            name=settings.name,
            storage_path=settings.ray_storage_path,
            stop=PlateauStopper(METRIC, settings.patience, settings.min_delta) if settings.plateau else None,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=search_methods.checkpoints_to_keep(settings.scheduler)),
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            callbacks=callbacks,
            verbose=0,
        ),
    )
