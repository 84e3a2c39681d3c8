"""Run a sweep on Ray Tune: Optuna (TPE) proposes, ASHA and the plateau stopper cut, files stay on disk.

    from tuner.search.settings import SweepSettings
    from tuner.run.sweep import run_sweep
    outcome = run_sweep(SweepSettings.from_preset("quick", name="demo"))

Everything a user can get wrong (settings, search space, dataset, the cluster
and its resources) is checked before the experiment directory is created. The
dataset and its teacher targets are made once, here in the driver, and put in
Ray's object store by `tune.with_parameters`; every trial reads them from
there. The driver's SweepMonitor records every epoch as it happens; when the
sweep ends or is interrupted, the results module turns that record into
trials.csv, history.csv and best.json.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ray import tune

from tuner.core.constants import BEST_MODEL_FILE, METRIC, MODE, RESULTS_DIR
from tuner.core.errors import ExperimentError, ExperimentExistsError, SettingsError, first_line
from tuner.learn.data import ImageSplits, TeacherData, check_spec, images_of, with_targets
from tuner.results import record
from tuner.results import tables as results
from tuner.results.dashboard import study_url
from tuner.results.experiments import find_experiment, read_state, write_state
from tuner.run import methods as search_methods
from tuner.run.cluster import RayInfo, check_fits, connect, slots
from tuner.run.fit import quiet_ray, started_together
from tuner.run.progress import SweepMonitor
from tuner.run.resume import refill_deleted_checkpoints
from tuner.run.schedulers.asha import PromotingASHA
from tuner.run.search_space import param_space
from tuner.run.stoppers.plateau import PlateauStopper
from tuner.run.trainable import train_trial
from tuner.search.checks import check
from tuner.search.settings import SweepSettings, load_settings
from tuner.search.spaces import load_space


@dataclass
class SweepOutcome:
    experiment_dir: Path
    summary: results.Summary | None
    interrupted: bool

    def command(self, verb: str) -> str:
        """A tuner command for this experiment, quoted for the shell (--storage added when not the default)."""
        storage = self.experiment_dir.parent
        where = "" if storage == Path(RESULTS_DIR).resolve() else f" --storage {shlex.quote(str(storage))}"
        return f"tuner {verb} {shlex.quote(self.experiment_dir.name)}{where}"


def _trial_dirname(trial: Any) -> str:
    # Short, stable directory names; Ray's default embeds every parameter value.
    return f"trial_{trial.trial_id}"


def _connect_and_check(settings: SweepSettings, address: str | None, echo: Callable[[str], None]) -> RayInfo:
    found = connect(address, echo)
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


def _data(settings: SweepSettings, dataset: str | None, echo: Callable[[str], None]) -> tuple[TeacherData, ImageSplits]:
    started = time.time()
    splits = images_of(settings, dataset)
    data = with_targets(splits)
    echo(
        f"data: {splits.source}, {len(splits.train)} train / {len(splits.val)} val images, "
        f"teacher targets ready in {time.time() - started:.1f}s"
    )
    return data, splits


def _with_data(trainable: Callable[..., None], data: TeacherData, settings: SweepSettings) -> Any:
    """The trainable as Ray runs it: data from the object store, resources per trial (fractional GPUs allowed)."""
    return tune.with_resources(
        tune.with_parameters(trainable, data=data), {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
    )


def run_sweep(
    settings: SweepSettings,
    trainable: Callable[..., None] = train_trial,
    echo: Callable[[str], None] = print,
) -> SweepOutcome:
    """Run a new sweep to the end and summarise it. `trainable` is replaceable for tests."""
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
    check(settings.searcher, settings.scheduler, space)
    check_spec(settings.dataset)
    found = _connect_and_check(settings, settings.address, echo)
    data, splits = _data(settings, None, echo)
    try:
        exp_dir.mkdir(parents=True)
    except FileExistsError:  # another sweep took the name while the data was being made
        raise ExperimentExistsError(
            f"experiment {settings.name!r} was just created by another sweep; choose another --name"
        ) from None
    except OSError as exc:
        raise SettingsError(f"cannot create {exp_dir} ({exc.strerror}); choose another --storage") from None
    settings.save(exp_dir, dataset_used=splits.source, search_space=str(space.path))
    parallel = _parallel(settings, found)
    monitor = SweepMonitor(exp_dir, settings.num_samples, settings.max_epochs, parallel, echo)
    trial_scheduler = search_methods.scheduler(settings, space)
    search_alg, limit = search_methods.with_limit(
        search_methods.searcher(settings, space, study_url(exp_dir)), trial_scheduler, settings, parallel
    )
    tuner = tune.Tuner(
        _with_data(trainable, data, settings),
        param_space={**param_space(space), "max_epochs": settings.max_epochs, "seed": settings.seed},
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            num_samples=settings.num_samples,
            search_alg=search_alg,
            scheduler=trial_scheduler,
            max_concurrent_trials=limit,
            trial_dirname_creator=_trial_dirname,
            # On a GPU a trial's start (a process, imports, data, CUDA) costs several epochs, so a new or resumed
            # trial takes over a finished one's worker. Not on CPUs: there a start costs ~2 s, and a reused
            # worker's paused or stopped trial first trains one more epoch nobody reads (Ray's function
            # trainables run one report ahead), which slowed the quick preset's epochs from 13 s to 16-20 s.
            reuse_actors=settings.gpus_per_trial > 0,
        ),
        run_config=tune.RunConfig(
            name=settings.name,
            storage_path=settings.ray_storage_path,
            stop=PlateauStopper(METRIC, settings.patience, settings.min_delta) if settings.plateau else None,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=search_methods.checkpoints_to_keep(settings.scheduler)),
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            callbacks=[monitor],
            verbose=0,
        ),
    )
    echo(
        f"sweep {settings.name!r}: {settings.num_samples} trials, up to {settings.max_epochs} epochs each, "
        f"{parallel} at a time; space {space.name} ({', '.join(p.name for p in space.params)}); "
        f"searcher {settings.searcher}, scheduler {settings.scheduler}{', plateau stopper' if settings.plateau else ''}"
    )
    return _fit_and_summarise(tuner, exp_dir, settings, parallel, splits.benchmark_images, echo)


def resume_sweep(
    name_or_path: str,
    storage: str = RESULTS_DIR,
    address: str | None = None,
    trainable: Callable[..., None] = train_trial,
    echo: Callable[[str], None] = print,
) -> SweepOutcome:
    """Continue an interrupted sweep: finished trials stay, unfinished ones continue from their last
    checkpoint, and the searcher's state and the number of trials asked for are restored."""
    # A URI storage keeps its local copy (with sweep.json and state.json) under results/.
    exp_dir = find_experiment(name_or_path, RESULTS_DIR if "://" in storage else storage)
    state = read_state(exp_dir)
    if state == "finished":
        echo(
            f"experiment {exp_dir.name!r} already finished; nothing to resume "
            f"(see tuner results {shlex.quote(exp_dir.name)})"
        )
        return SweepOutcome(exp_dir, results.collect(exp_dir), interrupted=False)
    if state == "running":
        raise ExperimentError(
            f"experiment {exp_dir.name!r} is still running in another process; wait for it or stop it first"
        )
    settings, info = load_settings(exp_dir)
    if not tune.Tuner.can_restore(settings.ray_experiment_path):
        raise ExperimentError(
            f"experiment {exp_dir.name!r} was interrupted before Ray saved any state; start it again under a new --name"
        )
    found = _connect_and_check(settings, address or settings.address, echo)
    data, splits = _data(settings, info.get("dataset_used"), echo)
    trials = record.read(exp_dir).values()
    finished = sum(t.outcome is not None for t in trials)
    echo(
        f"resuming {exp_dir.name!r}: {finished} of {settings.num_samples} trials finished, "
        f"{len(trials) - finished} to continue"
    )
    if "://" not in storage:
        refill_deleted_checkpoints(exp_dir, record.unfinished(exp_dir))
    try:
        # Errored trials stay errors: each already had its --max-failures retries.
        with quiet_ray():
            tuner = tune.Tuner.restore(
                settings.ray_experiment_path,
                trainable=_with_data(trainable, data, settings),
                resume_unfinished=True,
                resume_errored=False,
            )
    except Exception as exc:  # Ray's pickled state: truncated, or from another Ray version
        raise ExperimentError(
            f"experiment {exp_dir.name!r} cannot be resumed: Ray's saved state is damaged "
            f"({first_line(exc, 80)}); its finished trials are still in `tuner results "
            f"{shlex.quote(exp_dir.name)}`; run the rest under a new --name"
        ) from None
    # The monitor comes back from Ray's pickled run config: point it at this run's output (Ray keeps that
    # config on a private attribute; without it the monitor keeps its pickled directory, the same one).
    local = getattr(tuner, "_local_tuner", None)
    run_config = local.get_run_config() if hasattr(local, "get_run_config") else None
    for callback in getattr(run_config, "callbacks", None) or []:
        if isinstance(callback, SweepMonitor):
            callback.resume(exp_dir, echo)
    # Likewise tuner's ASHA, whose rungs Ray does not save: rebuilt from the record.
    trial_scheduler = getattr(getattr(local, "_tune_config", None), "scheduler", None)
    if isinstance(trial_scheduler, PromotingASHA):
        histories = {t.trial_id: [float("nan") if e[METRIC] is None else e[METRIC] for e in t.epochs] for t in trials}
        trial_scheduler.restore(histories, {t.trial_id for t in trials if t.outcome is None})
    return _fit_and_summarise(tuner, exp_dir, settings, _parallel(settings, found), splits.benchmark_images, echo)


def _fit_and_summarise(
    tuner: tune.Tuner,
    exp_dir: Path,
    settings: SweepSettings,
    parallel: int,
    benchmark_images: Any,
    echo: Callable[[str], None],
) -> SweepOutcome:
    """Run the tuner; whatever happens, write the tables of what exists and the experiment's state.
    Finished means: as many trials as asked for, each with an end in the record. A finished sweep then
    benchmarks its best model."""
    write_state(exp_dir, "running")
    try:
        with quiet_ray(), started_together(parallel):
            tuner.fit()  # Ctrl-C: Ray saves its state and returns early
    finally:
        if settings.remote_storage:
            import pyarrow.fs

            pyarrow.fs.copy_files(settings.ray_experiment_path, str(exp_dir))
            echo(f"copied {settings.ray_experiment_path} to {exp_dir}")
        trials = record.read(exp_dir)
        ended = sum(t.outcome is not None for t in trials.values())
        interrupted = ended < settings.num_samples
        write_state(exp_dir, "interrupted" if interrupted else "finished")
        summary = results.summarise(exp_dir)
    if settings.benchmark and not interrupted and (exp_dir / BEST_MODEL_FILE).is_file():
        from tuner.run.benchmark import benchmark_experiment

        benchmark_experiment(exp_dir, benchmark_images, echo=echo)
    return SweepOutcome(exp_dir, summary, interrupted)
