"""Run a sweep on Ray Tune: Optuna (TPE) proposes, ASHA and the plateau stopper cut, files stay on disk.

    from tuner.search.settings import SweepSettings
    from tuner.run.sweep import run_sweep
    outcome = run_sweep(SweepSettings.from_preset("quick", name="demo"))

Everything a user can get wrong (settings, search space, dataset, the cluster and its resources) is checked
before the experiment directory is created. The dataset and its teacher targets are made once, here in the
driver, and put in Ray's object store by `tune.with_parameters`; every trial reads them from there. The
driver's SweepMonitor records every epoch as it happens; when the sweep ends or is interrupted, the results
module turns that record into trials.csv, history.csv and best.json. One process at a time runs a folder.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ray import tune

from tuner.core.constants import BEST_MODEL_FILE, RESULTS_DIR
from tuner.core.errors import ExperimentError, ExperimentExistsError, SettingsError
from tuner.learn.data import ImageSplits, TeacherData, check_spec, images_of, with_targets
from tuner.results import record
from tuner.results import tables as results
from tuner.results.experiments import SPACE_COPY, find_experiment
from tuner.results.state import all_ended, experiment_lock, read_state, running_where, write_state
from tuner.run import resume, tracking
from tuner.run.cluster import RayInfo, check_fits, connect, slots
from tuner.run.fit import ctrl_c_back_after_fit, new_tuner, quiet_ray, started_together, term_as_interrupt
from tuner.run.fit import trial_dirname as _trial_dirname  # noqa: F401  (tuner 0.1 pickled tuner.sweep.*)
from tuner.run.pareto import retime_models, teacher_speed
from tuner.run.progress import SweepMonitor
from tuner.run.ray_adapter import new_trials_follow_the_folder, own_optuna_study
from tuner.run.storage import check_storage, copy_back, pull_ray_state, where
from tuner.run.trainable import train_trial
from tuner.search.checks import check, check_new_name, check_population, check_training_memory
from tuner.search.settings import SweepSettings
from tuner.search.spaces import load_space

log = logging.getLogger(__name__)


@dataclass
class SweepOutcome:
    experiment_dir: Path
    summary: results.Summary | None
    interrupted: bool
    discarded: bool = False  # interrupted before Ray saved its state or any epoch ended: the folder is gone

    def command(self, verb: str) -> str:
        """A tuner command for this experiment, quoted for the shell (--storage added when not the default)."""
        storage = self.experiment_dir.parent
        where = "" if storage == Path(RESULTS_DIR).resolve() else f" --storage {shlex.quote(str(storage))}"
        return f"tuner {verb} {shlex.quote(self.experiment_dir.name)}{where}"


def _connect_and_check(settings: SweepSettings, address: str | None) -> RayInfo:
    found = connect(address)
    check_fits(
        found,
        settings.cpus_per_trial,
        settings.gpus_per_trial,
        "each trial",
        "lower --cpus-per-trial / --gpus-per-trial, or add a node that large",
    )
    return found


def _parallel(settings: SweepSettings, found: RayInfo) -> int:
    """Trials at a time: --concurrency, else as many as the nodes fit."""
    return settings.concurrency or min(
        settings.num_samples, slots(found, settings.cpus_per_trial, settings.gpus_per_trial)
    )


def _data(settings: SweepSettings, dataset: str | None) -> tuple[TeacherData, ImageSplits]:
    started = time.time()
    splits = images_of(settings, dataset)
    data = with_targets(splits)
    log.info(
        f"data: {splits.source}, {len(splits.train)} train / {len(splits.val)} val images, "
        f"teacher targets ready in {time.time() - started:.1f}s"
    )
    return data, splits


def _with_data(
    trainable: Callable[..., None], data: TeacherData, settings: SweepSettings, teacher: dict[str, Any] | None
) -> Any:
    """The trainable as Ray runs it: data from the object store, resources per trial (fractional GPUs allowed);
    a --pareto sweep's trials also get the teacher's speed to compare their model's with."""
    given = {"data": data, **({"teacher_speed": teacher} if teacher else {})}
    return tune.with_resources(
        tune.with_parameters(trainable, **given), {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
    )


def run_sweep(settings: SweepSettings, trainable: Callable[..., None] = train_trial) -> SweepOutcome:
    """Run a new sweep to the end and summarise it. `trainable` is replaceable for tests."""
    check_new_name(settings.name)
    exp_dir = settings.experiment_dir
    if exp_dir.exists():
        raise ExperimentExistsError(
            f"experiment {settings.name!r} already exists in {exp_dir.parent}; continue it with "
            f"`tuner sweep --resume {shlex.quote(settings.name)}`, or choose another --name"
        )
    space = load_space(settings.space)
    # A flag overrides the space file's choice; what was used is recorded in sweep.json.
    settings = replace(
        settings,
        searcher=settings.searcher or space.searcher or "tpe",
        scheduler=settings.scheduler or space.scheduler or "asha",
    )
    check(settings.searcher, settings.scheduler, space, settings.pareto)
    check_population(settings.scheduler, settings.num_samples, settings.concurrency)
    check_spec(settings.dataset, settings.data_dir)
    check_storage(settings, new=True)  # a URI storage that cannot be used fails here, before Ray
    trackers = tracking.callbacks(settings, exp_dir)  # an unreachable --mlflow fails here, before Ray
    found = _connect_and_check(settings, settings.address)
    parallel = _parallel(settings, found)
    if found.address is None and not settings.gpus_per_trial:  # trials on this machine's CPUs
        check_training_memory(space, settings.train_size, parallel)
    data, splits = _data(settings, None)
    teacher = teacher_speed(settings) if settings.pareto else None  # a Ray worker: before the folder exists
    with ExitStack() as held:
        try:
            exp_dir.mkdir(parents=True)
        except FileExistsError:  # another sweep took the name while the data was being made
            raise ExperimentExistsError(
                f"experiment {settings.name!r} was just created by another sweep; choose another --name"
            ) from None
        except OSError as exc:
            raise SettingsError(f"cannot create {exp_dir} ({exc.strerror}); choose another --storage") from None
        try:  # nothing is computed yet: a folder that fails here is removed, so the name can be used again
            held.enter_context(experiment_lock(exp_dir))  # until the sweep ends: a --resume meanwhile is refused
            write_state(exp_dir, "running")  # a --resume started now is refused, not run beside this sweep
            # The space file travels with the experiment: a copied or moved folder still knows what it searched.
            shutil.copyfile(space.path, exp_dir / SPACE_COPY)
            # From here on a missing record means a damaged folder, not a sweep whose first trial is starting.
            (exp_dir / record.RECORD_FILE).touch()
            settings.save(exp_dir, dataset_used=splits.source, search_space=SPACE_COPY, teacher_speed=teacher)
            monitor = SweepMonitor(exp_dir, settings.num_samples, settings.max_epochs, parallel)
            trainable = _with_data(trainable, data, settings, teacher)
            tuner = new_tuner(settings, space, trainable, parallel, [monitor, *trackers])
        except BaseException:
            shutil.rmtree(exp_dir, ignore_errors=True)
            raise
        stopper = ", plateau stopper" if settings.plateau else ""
        log.info(
            f"sweep {settings.name!r}: {settings.num_samples} trials, up to {settings.max_epochs} epochs each, "
            f"{parallel} at a time; space {space.name} ({', '.join(p.name for p in space.params)}); "
            f"searcher {settings.searcher}, scheduler {settings.scheduler}{stopper}"
        )
        log.info(where(settings, exp_dir))
        return _fit_and_summarise(tuner, exp_dir, settings, parallel, splits.benchmark_images)


def resume_sweep(
    name_or_path: str,
    storage: str = RESULTS_DIR,
    address: str | None = None,
    trainable: Callable[..., None] = train_trial,
) -> SweepOutcome:
    """Continue an interrupted sweep: finished trials stay, unfinished ones continue from their last
    checkpoint, and the searcher's state and the number of trials asked for are restored. Everything is
    read from and written to the experiment folder found, wherever it was made (see tuner.run.resume)."""
    exp_dir = find_experiment(name_or_path, storage)  # a URI storage: its local copy, with sweep.json
    with experiment_lock(exp_dir):
        state = read_state(exp_dir)
        if state == "finished":
            log.info(
                f"experiment {exp_dir.name!r} already finished; nothing to resume "
                f"(see tuner results {shlex.quote(exp_dir.name)})"
            )
            # Its tables, unless the driver ended between the last trial and writing them (state.json lost).
            tables = results.collect if (exp_dir / "trials.csv").is_file() else results.summarise
            return SweepOutcome(exp_dir, tables(exp_dir), interrupted=False)
        if state == "running":
            raise ExperimentError(
                f"experiment {exp_dir.name!r} is still running in another process{running_where(exp_dir)}; wait "
                "for it or stop it; if that machine lost the process, delete its state.json and resume again"
            )
        pull_ray_state(exp_dir)  # a URI experiment: Ray's files, which a killed sweep never copied back
        settings, info, trials = resume.check_resumable(exp_dir)  # before any file changes
        tracking.check(settings.mlflow)
        found = _connect_and_check(settings, address or settings.address)
        data, splits = _data(settings, info.get("dataset_used"))
        log.info(resume.summary_line(exp_dir, settings, trials))
        log.info(where(settings, exp_dir))
        # The folder found, never the path sweep.json was written at: the folder may be a copy, or moved.
        ray_path = settings.ray_experiment_path if settings.remote_storage else str(exp_dir)
        with quiet_ray():
            tuner = resume.restore(exp_dir, ray_path, _with_data(trainable, data, settings, info.get("teacher_speed")))
        if not settings.remote_storage:  # after Ray's pickle has read, before Ray looks for checkpoints in fit()
            resume.refill_deleted_checkpoints(exp_dir, [t.trial_id for t in trials.values() if t.outcome is None])
        if resume.recover_cut_epochs(exp_dir, trials):
            trials = record.read(exp_dir)
        resume.reattach(tuner, exp_dir, trials)
        return _fit_and_summarise(tuner, exp_dir, settings, _parallel(settings, found), splits.benchmark_images)


def _fit_and_summarise(
    tuner: tune.Tuner, exp_dir: Path, settings: SweepSettings, parallel: int, benchmark_images: Any
) -> SweepOutcome:
    """Run the tuner; whatever happens, write the tables of what exists and the experiment's state.
    Finished means: as many trials as asked for, each with an end in the record. A finished sweep then
    benchmarks its best model."""
    write_state(exp_dir, "running")
    # SIGTERM is Ctrl-C until the last file is written; after fit() Ray's own handler would exit(15) mid-table.
    with term_as_interrupt():
        crashed = True  # until fit() returns or is interrupted: a bug's folder is kept for its traceback
        try:
            # Ray restores the searcher inside fit(): its Optuna study must be this folder's (see ray_adapter).
            folder = new_trials_follow_the_folder()
            with quiet_ray(), started_together(parallel), own_optuna_study(exp_dir), folder, ctrl_c_back_after_fit():
                tuner.fit()  # Ctrl-C or SIGTERM: Ray saves its state and returns early
            crashed = False
        except KeyboardInterrupt:
            crashed = False  # a second Ctrl-C: Ray stops at once; the record says what ended, the state interrupted
        finally:
            if settings.remote_storage:
                log.info(copy_back(settings, exp_dir))
            trials = record.read(exp_dir)
            interrupted = not all_ended(trials, settings.num_samples)
            tracking.finish(exp_dir, interrupted)
            # Ray could not resume it, and nothing was computed: the same command starts it again.
            discard = interrupted and not crashed and resume.discard_if_nothing_ran(exp_dir)
            if not discard:
                write_state(exp_dir, "interrupted" if interrupted else "finished")
                summary = results.summarise(exp_dir)
        if discard:
            return SweepOutcome(exp_dir, None, interrupted=True, discarded=True)
        if settings.pareto and not interrupted:
            retime_models(settings, exp_dir)  # the figures a person reads, taken with nothing else running
            summary = results.summarise(exp_dir)
        if settings.benchmark and not interrupted and (exp_dir / BEST_MODEL_FILE).is_file():
            from tuner.run.benchmark import benchmark_experiment

            benchmark_experiment(exp_dir, benchmark_images)
    return SweepOutcome(exp_dir, summary, interrupted)
