"""Every part of Ray Tune that tuner uses without Ray promising it, in one place, checked loudly (how Ray
starts its processes and takes SIGTERM: ray_processes.py, beside it).

Ray's public API does not cover everything a resumable sweep needs: the configs a restored Tuner came back
with, two HyperBand limits, the scheduler's metric, whether a trial is saving, the MLflow callback's client and
runs, where a restored searcher stores new trials, three environment switches,
three logger names and the files Ray writes into an experiment folder. Each is named here once, and each
accessor fails with a TunerError naming the installed Ray version and what is missing, never with a silent
default: a Ray upgrade that moves one of them stops the sweep in one line instead of changing what it does.
tests/test_ray_adapter.py checks every name against the installed Ray. One Optuna behaviour is answered
here as well (`own_optuna_study`), because Ray is what pickles the Optuna storage.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import ray

from tuner.core.constants import OPTUNA_DB
from tuner.core.errors import TunerError

# Ray's files in an experiment folder (TunerInternal._TUNER_PKL, TuneController.CKPT_FILE_TMPL,
# Searcher.CKPT_FILE_TMPL, SearchGenerator.CKPT_FILE_TMPL, StorageContext._make_checkpoint_dir_name).
TUNER_STATE = "tuner.pkl"
EXPERIMENT_STATES = "experiment_state-*.json"
SEARCHER_STATES = "searcher-state-*.pkl"
SEARCH_GENERATOR_STATES = "search_gen_state-*.json"
CHECKPOINT_DIRS = "checkpoint_[0-9]*"
CHECKPOINT_PREFIX = "checkpoint_"

# Environment switches Ray reads.
NEW_OUTPUT = "RAY_AIR_NEW_OUTPUT"  # "0": the classic reporter, silent at verbose=0
MAX_PENDING_TRIALS = "TUNE_MAX_PENDING_TRIALS_PG"  # trials Ray may start at once
SYNC_WARNING_THRESHOLD = "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"  # "0": no sync warning

# Loggers Ray writes to.
TUNE_LOGGERS = ("ray.tune", "ray.train")
AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
RUN_LOGGER = "ray.tune.tune"  # logs "Trials did not complete: [...]" (at ERROR) when fit() returns early
INCOMPLETE_MESSAGE = "Trials did not complete"
# A UserWarning Ray gives every PBT sweep: tuner's trainable is a function (no reset_config), and reused
# workers were measured slower on CPUs (fit.new_tuner), so the advice does not apply.
PBT_REUSE_WARNING = "Consider boosting PBT performance"


class RayVersionError(TunerError):
    """The installed Ray lacks something tuner reads from it."""


def missing(what: str) -> NoReturn:
    """Fail in one line: this Ray has no `what`."""
    raise RayVersionError(
        f"Ray {ray.__version__} has no {what}, which tuner relies on; install the Ray version "
        "pyproject.toml names (pip install -e .)"
    )


def _private(obj: Any, attr: str, what: str) -> Any:
    try:
        return getattr(obj, attr)
    except AttributeError:
        missing(f"{type(obj).__name__}.{attr} ({what})")


def restored_run_config(tuner: Any) -> Any:
    """The RunConfig a restored Tuner unpickled from tuner.pkl: its callbacks are the sweep's own objects."""
    local = _private(tuner, "_local_tuner", "the Tuner's driver-side state")
    return _private(local, "get_run_config", "the restored run config")()


def restored_scheduler(tuner: Any) -> Any:
    """The trial scheduler a restored Tuner unpickled from tuner.pkl."""
    local = _private(tuner, "_local_tuner", "the Tuner's driver-side state")
    return _private(_private(local, "_tune_config", "the restored tune config"), "scheduler", "its scheduler")


def hyperband_limits(scheduler: Any) -> tuple[str, float]:
    """HyperBandScheduler's time attribute and max_t, which it keeps on private attributes."""
    return _private(scheduler, "_time_attr", "HyperBand's time_attr"), _private(
        scheduler, "_max_t_attr", "HyperBand's max_t"
    )


def set_scheduler_metric(scheduler: Any, metric: str | None) -> None:
    """Set a FIFOScheduler subclass's metric (read back through its public `metric` property)."""
    _private(scheduler, "_metric", "the scheduler's metric")
    scheduler._metric = metric or scheduler._metric


def mlflow_client(callback: Any) -> Any:
    """The MlflowClient behind Ray's MLflowLoggerCallback (its MLflow helper keeps it private)."""
    return _private(_private(callback, "mlflow_util", "the MLflow callback's helper"), "_get_client", "its client")()


def mlflow_trial_runs(callback: Any) -> dict[Any, str]:
    """Ray's MLflowLoggerCallback's trial -> run id map, which a resume refills with the runs it continues."""
    return _private(callback, "_trial_runs", "the MLflow callback's runs by trial")


def is_saving(trial: Any) -> bool:
    """A trial whose checkpoint is being saved before a pause: it may still report."""
    return bool(_private(trial, "is_saving", "whether a trial is saving"))


def damaged_experiment_state(exp_dir: Path) -> str | None:
    """The name of the Ray file a restore would read first and fail on: the experiment state (the newest by
    name, as Ray chooses) if it is not JSON, or the searcher's state (likewise) if it does not unpickle, e.g.
    either cut short by a full disk. Ray logs such a failure and goes on with an empty run, which then ends
    every trial. None when both read, or when there are none."""
    import json

    import ray.cloudpickle

    found = sorted(Path(exp_dir).glob(EXPERIMENT_STATES))
    try:
        if found:
            json.loads(found[-1].read_text())
    except (OSError, ValueError):
        return found[-1].name
    searcher = sorted(Path(exp_dir).glob(SEARCHER_STATES))
    try:
        if searcher:  # its Optuna storage connects as it unpickles: to exp_dir's own optuna.db, as on restore
            with own_optuna_study(exp_dir), open(searcher[-1], "rb") as f:
                ray.cloudpickle.load(f)
    except Exception:  # a truncated pickle raises whatever it stops in
        return searcher[-1].name
    return None


def checkpoint_index(path: Path) -> int | None:
    """The number in a Ray checkpoint directory's name (checkpoint_000003 -> 3); None for anything else."""
    digits = Path(path).name.removeprefix(CHECKPOINT_PREFIX)
    return int(digits) if Path(path).name.startswith(CHECKPOINT_PREFIX) and digits.isdigit() else None


def checkpoint_dir_name(index: int) -> str:
    return f"{CHECKPOINT_PREFIX}{index:06d}"


@contextmanager
def env(**values: str) -> Iterator[None]:
    """Set Ray's environment switches for a block; on leaving, each is as it was (unset stays unset)."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def own_optuna_study(exp_dir: Path) -> Iterator[None]:
    """While restoring a sweep and during its fit, an unpickled Optuna RDBStorage whose file is named
    optuna.db opens `exp_dir`'s own optuna.db instead of the one named in the pickle.

    Ray pickles OptunaSearch, storage included, into tuner.pkl and searcher-state-*.pkl, and Optuna's
    RDBStorage.__setstate__ reconnects to the URL it was pickled with (and creates the tables there): a
    copied experiment would write its study into the original's optuna.db, a moved one into a file that is
    gone. Ray restores the searcher inside Tuner.fit() (TuneController.resume), so both need this. Only
    RDBStorage is patched, only inside the block, and only URLs of a file named optuna.db are changed.
    """
    from optuna.storages import RDBStorage

    from tuner.results.dashboard import study_url

    original = RDBStorage.__dict__.get("__setstate__")
    if original is None:
        raise RayVersionError(
            "optuna's RDBStorage has no __setstate__ to repoint; install the Optuna version pyproject.toml names"
        )
    own = study_url(exp_dir)

    def setstate(self: Any, state: dict[str, Any]) -> None:
        url = str(state.get("url", ""))
        if url.startswith("sqlite:") and url.rsplit("/", 1)[-1] == OPTUNA_DB:
            state = {**state, "url": own}
        original(self, state)

    RDBStorage.__setstate__ = setstate
    try:
        yield
    finally:
        RDBStorage.__setstate__ = original


@contextmanager
def new_trials_follow_the_folder() -> Iterator[None]:
    """During fit(), a restored searcher creates its new trials where the resumed experiment now is.

    Ray's SearchGenerator saves its Experiment, whose spec holds the storage (path and name) the sweep was
    made with, in search_gen_state-*, and restores it as it was. TuneController.resume() repoints the trials
    it restores (_restore_trials) but not this spec, so the new trials of a copied or moved experiment would
    checkpoint into the original's folder. After resume() the spec is repointed the way Ray repoints a trial."""
    from ray.tune.execution.tune_controller import TuneController

    original = TuneController.__dict__.get("resume")
    if original is None:
        missing("TuneController.resume (restoring a sweep)")

    def resume(self: Any, resume_config: Any) -> None:
        original(self, resume_config)
        experiment = getattr(_private(self, "_search_alg", "the controller's searcher"), "_experiment", None)
        storage = experiment.spec.get("storage") if experiment is not None else None
        if storage is not None:
            current = _private(self, "_storage", "the controller's storage")
            storage.storage_filesystem = current.storage_filesystem
            storage.storage_fs_path = current.storage_fs_path
            storage.experiment_dir_name = current.experiment_dir_name

    TuneController.resume = resume
    try:
        yield
    finally:
        TuneController.resume = original
