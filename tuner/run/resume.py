"""What `tuner sweep --resume X` checks, repairs and reattaches around Ray's restore, all inside X.

    with experiment_lock(exp_dir):                  # (results.state) a second driver of X is refused
        settings, info, trials = check_resumable(exp_dir)   # refuses before any file changes
        tuner = restore(exp_dir, ray_path, trainable)       # Optuna's study: X's own optuna.db
        refill_deleted_checkpoints(exp_dir, unfinished)
        reattach(tuner, exp_dir, trials)              # the monitor and tuner's ASHA

An experiment folder is the user's: it may be copied, moved or renamed. Nothing here reads another
experiment, whatever X's sweep.json says its name or storage was.
"""

from __future__ import annotations

import logging
import shlex
import shutil
from contextlib import closing
from pathlib import Path
from typing import Any

from tuner.core.constants import METRIC, OPTUNA_DB, RESULTS_DIR
from tuner.core.errors import CheckpointError, ExperimentError, TunerError, first_line
from tuner.learn.checkpoints import CHECKPOINT_FILE, load_checkpoint
from tuner.results import record
from tuner.run import ray_adapter
from tuner.search.schedulers import SCHEDULERS
from tuner.search.settings import SETTINGS_FILE, SweepSettings, load_settings

log = logging.getLogger(__name__)


def _refuse(exp_dir: Path, why: str) -> ExperimentError:
    default = exp_dir.resolve().parent == Path(RESULTS_DIR).resolve()  # else its path: no --storage to repeat
    name = shlex.quote(exp_dir.name if default else str(exp_dir))
    return ExperimentError(
        f"experiment {exp_dir.name!r} cannot be resumed: {why}; its finished trials are still in "
        f"`tuner results {name}`; restore the file from a backup, or run the rest under a new --name"
    )


def check_resumable(exp_dir: Path) -> tuple[SweepSettings, dict[str, Any], dict[str, record.TrialRecord]]:
    """Everything a resume needs, read before any file is changed: readable settings and record, Ray's
    saved state, and a usable checkpoint for every unfinished trial that trained. Refuses in one line."""
    try:
        settings, info = load_settings(exp_dir)  # damaged or missing: its own line, which names the file
    except (OSError, ValueError, TypeError) as exc:
        raise _refuse(exp_dir, f"{SETTINGS_FILE} cannot be read ({first_line(exc, 80)})") from None
    trials = record.read(exp_dir)  # RecordError: missing or damaged, in one line
    has = {pattern: any(exp_dir.glob(pattern)) for pattern in ray_files(settings)}
    if not any(has.values()) or nothing_to_resume(exp_dir, settings, trials):
        raise ExperimentError(
            f"experiment {exp_dir.name!r} was stopped before Ray saved any state and before any epoch ended: "
            f"nothing to resume; delete {exp_dir} and run the sweep again, or use a new --name"
        )
    absent = [pattern for pattern, present in has.items() if not present]
    if absent:
        raise _refuse(exp_dir, f"Ray's {' and '.join(absent)} {'is' if len(absent) == 1 else 'are'} missing")
    if ray_adapter.SEARCHER_STATES in has and not _has_study(exp_dir / OPTUNA_DB):
        raise _refuse(exp_dir, f"the searcher's {OPTUNA_DB} is missing or holds no study")
    damaged = ray_adapter.damaged_experiment_state(exp_dir)
    if damaged:
        raise _refuse(exp_dir, f"Ray's {damaged} is damaged")
    for trial in trials.values():
        if trial.outcome is None and trial.epochs and not trial.epochs[-1].get("diverged"):
            _check_checkpoint(exp_dir, trial.trial_id)
    return settings, info, trials


def nothing_to_resume(exp_dir: Path, settings: SweepSettings, trials: dict[str, record.TrialRecord]) -> bool:
    """A sweep stopped before Ray first saved its experiment state (a Ctrl-C while trials start) cannot be
    resumed; when no trial had ended or saved a checkpoint either, it holds nothing worth keeping. Ray's files
    of a URI storage are not here to look at, so such a sweep is never said to hold nothing."""
    saved = any(exp_dir.glob(ray_adapter.EXPERIMENT_STATES)) or any(
        exp_dir.glob(f"trial_*/{ray_adapter.CHECKPOINT_DIRS}")
    )
    ran = any(t.epochs or t.outcome is not None for t in trials.values())  # an error's traceback is kept too
    return not settings.remote_storage and not saved and not ran


def discard_if_nothing_ran(exp_dir: Path) -> bool:
    """Remove a sweep's folder that holds nothing to resume (see nothing_to_resume), so the same command starts
    it again; True when removed. The caller holds the folder's lock: another process's new sweep is never seen."""
    try:
        settings, _ = load_settings(exp_dir)
    except TunerError:
        return False
    trials, damage = record.scan(exp_dir)
    if damage or not nothing_to_resume(exp_dir, settings, trials):
        return False
    shutil.rmtree(exp_dir, ignore_errors=True)
    return not exp_dir.exists()  # a file that could not be removed: the folder stays, and says interrupted


def _has_study(db: Path) -> bool:
    """The Optuna study the searcher's state refers to is there: Ray's OptunaSearch fails every trial's
    result with a KeyError without it."""
    import sqlite3

    if not db.is_file():
        return False
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as db_conn:
            return bool(db_conn.execute("SELECT COUNT(*) FROM studies").fetchone()[0])
    except sqlite3.Error:
        return False


def ray_files(settings: SweepSettings) -> list[str]:
    """Ray's files a resume of this sweep reads: a searcher's state only where a searcher keeps one."""
    files = [ray_adapter.TUNER_STATE, ray_adapter.EXPERIMENT_STATES]
    if not SCHEDULERS[settings.scheduler or "asha"].pbt_like:
        files += [ray_adapter.SEARCHER_STATES, ray_adapter.SEARCH_GENERATOR_STATES]  # both saved by SearchGenerator
    return files


def _check_checkpoint(exp_dir: Path, trial_id: str) -> None:
    """An unfinished trial that reported an epoch has a checkpoint (the trial writes it before reporting);
    Ray restores it from the newest. Gone or unreadable, Ray would fail the trial with two tracebacks."""
    trial_dir = exp_dir / f"trial_{trial_id}"
    # Newest by time, as refill_deleted_checkpoints chooses: the one every name Ray may ask for will hold.
    found = sorted(trial_dir.glob(f"{ray_adapter.CHECKPOINT_DIRS}/{CHECKPOINT_FILE}"), key=_age)
    if not found:
        raise _refuse(exp_dir, f"trial {trial_id}'s checkpoint is gone from {trial_dir}")
    try:
        load_checkpoint(found[-1])
    except CheckpointError:
        raise _refuse(exp_dir, f"trial {trial_id}'s checkpoint {found[-1]} is damaged") from None


def _age(path: Path) -> tuple[int, str]:
    return path.stat().st_mtime_ns, path.parent.name


def restore(exp_dir: Path, ray_path: str, trainable: Any) -> Any:
    """Ray's Tuner restored from `ray_path` (X itself for a local experiment), its Optuna study X's own."""
    from ray import tune

    try:
        # Errored trials stay errors: each already had its --max-failures retries.
        with ray_adapter.own_optuna_study(exp_dir):
            return tune.Tuner.restore(ray_path, trainable=trainable, resume_unfinished=True, resume_errored=False)
    except TunerError:
        raise
    except Exception as exc:  # Ray's pickled state: truncated, or from another Ray version
        raise ExperimentError(
            f"experiment {exp_dir.name!r} cannot be resumed: Ray's saved state is damaged "
            f"({first_line(exc, 80)}); its finished trials are still in `tuner results "
            f"{shlex.quote(exp_dir.name)}`; run the rest under a new --name"
        ) from None


def reattach(tuner: Any, exp_dir: Path, trials: dict[str, record.TrialRecord]) -> None:
    """Point what Ray unpickled at this run: the monitor writes X's record and prints here, and tuner's ASHA,
    whose rungs Ray does not save, is rebuilt from the record."""
    from tuner.run.progress import SweepMonitor
    from tuner.run.schedulers.asha import PromotingASHA
    from tuner.run.stoppers.plateau import PlateauStopper
    from tuner.run.tracking import SweepMLflowCallback

    run_config = ray_adapter.restored_run_config(tuner)
    for callback in run_config.callbacks or []:
        if isinstance(callback, SweepMonitor):
            callback.resume(exp_dir, trials)
        if isinstance(callback, SweepMLflowCallback):
            callback.exp_dir = Path(exp_dir)  # its run ids live in this folder's mlflow.json
    histories = {
        t.trial_id: [float("nan") if e[METRIC] is None else e[METRIC] for e in t.epochs] for t in trials.values()
    }
    if isinstance(run_config.stop, PlateauStopper):
        run_config.stop.restore(histories)
    trial_scheduler = ray_adapter.restored_scheduler(tuner)
    if isinstance(trial_scheduler, PromotingASHA):
        trial_scheduler.restore(histories, {t.trial_id for t in trials.values() if t.outcome is None})


def refill_deleted_checkpoints(exp_dir: Path, trial_ids: list[str]) -> list[Path]:
    """Before a resume: give each unfinished trial's deleted checkpoint names its newest checkpoint.

    Ray saves its experiment state every 10 s or more; a sweep killed between two saves is restored from
    the older state, which can name a checkpoint that keeping only the newest has deleted since, and Ray
    then refuses to restore the trial. Checkpoints are numbered upwards, so the names it can ask for are
    the missing ones below the newest; each becomes a copy made of hard links (no extra disk) of the newest.
    The trial then continues from its newest epoch, which the checkpoint itself records. Ray writes its
    next checkpoints into the names after the one it restored, in place, so every linked name keeps holding
    the newest; they are left for later resumes. Returns the directories made.
    """
    made = []
    for trial_id in trial_ids:
        trial_dir = Path(exp_dir) / f"trial_{trial_id}"
        present = {ray_adapter.checkpoint_index(d): d for d in trial_dir.glob(ray_adapter.CHECKPOINT_DIRS)}
        present.pop(None, None)
        complete = [d for d in present.values() if (d / CHECKPOINT_FILE).is_file()]
        if not complete:
            continue
        newest = max(complete, key=lambda d: (d / CHECKPOINT_FILE).stat().st_mtime_ns)
        for index in range(max(present)):
            if index not in present:
                target = trial_dir / ray_adapter.checkpoint_dir_name(index)
                target.mkdir()
                for f in newest.iterdir():
                    if f.is_file():
                        (target / f.name).hardlink_to(f)
                made.append(target)
    return made


def summary_line(exp_dir: Path, settings: SweepSettings, trials: dict[str, record.TrialRecord]) -> str:
    finished = sum(t.outcome is not None for t in trials.values())
    unstarted = settings.num_samples - len(trials)
    return (
        f"resuming {exp_dir.name!r}: {finished} of {settings.num_samples} trials finished, "
        f"{len(trials) - finished} to continue" + (f", {unstarted} to start" if unstarted > 0 else "")
    )


def recover_cut_epochs(exp_dir: Path, trials: dict[str, record.TrialRecord]) -> list[str]:
    """Before a resume: epochs of an unfinished trial that its checkpoints hold but the record lacks get their
    lines back from the checkpoints, which save their epoch's metrics. A sweep killed while writing a line
    loses it (the torn line is dropped), or before writing it; the resumed trial goes on from the checkpoint
    Ray saved last, so nothing would write those epochs again. An epoch Ray trains again is written again,
    and the later line is the one read. Returns the trials mended."""
    mended = []
    for trial_id, trial in trials.items():
        if trial.outcome is not None:
            continue
        recorded = max((int(e.get("epoch") or 0) for e in trial.epochs), default=0)
        found = (exp_dir / f"trial_{trial_id}").glob(f"{ray_adapter.CHECKPOINT_DIRS}/{CHECKPOINT_FILE}")
        saved = {int(m.get("epoch") or 0): m for m in (load_checkpoint(f).get("metrics", {}) for f in found)}
        lost = sorted(e for e in saved if e > recorded)  # readable: check_resumable said so
        for epoch in lost:
            record.append(exp_dir, "epoch", trial_id, **{k: saved[epoch].get(k) for k in record.EPOCH_KEYS})
        mended += [trial_id] if lost else []
    return mended
