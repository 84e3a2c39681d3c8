"""Run a sweep on Ray Tune: Optuna (TPE) proposes, ASHA and the plateau stopper cut, files stay on disk.

    from tuner.settings import LOCAL_RESULTS, SweepSettings, load_settings
    from tuner.sweep import run_sweep
    outcome = run_sweep(SweepSettings.from_preset("quick", name="demo"))

The dataset and its teacher targets are made once, here in the driver, and
put in Ray's object store by `tune.with_parameters`; every trial reads them
from there. When the sweep ends (or is interrupted) the results module turns
Ray's experiment directory into trials.csv, history.csv and best.json.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from tuner import results
from tuner.checkpoints import BEST_MODEL_FILE, load_checkpoint
from tuner.data import load_images, with_targets
from tuner.experiments import ExperimentError, find_experiment, read_state, write_state
from tuner.progress import ProgressPrinter
from tuner.search_spaces import SearchSpace, load_space
from tuner.settings import LOCAL_RESULTS, SweepSettings, load_settings
from tuner.stoppers import PlateauStopper
from tuner.trainable import train_trial

log = logging.getLogger(__name__)
METRIC, MODE = "val_loss", "min"


class ExperimentExistsError(FileExistsError):
    pass


@dataclass
class SweepOutcome:
    experiment_dir: Path
    summary: results.Summary | None
    interrupted: bool


def _trial_dirname(trial: Any) -> str:
    # Short, stable directory names; Ray's default embeds every parameter value.
    return f"trial_{trial.trial_id}"


def _searcher(settings: SweepSettings, space: SearchSpace) -> OptunaSearch:
    # TPE's default of 10 random start-up trials would make a small sweep pure random search.
    startup = max(2, min(10, settings.num_samples // 3))
    sampler = optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=startup)
    return OptunaSearch(metric=METRIC, mode=MODE, sampler=sampler, points_to_evaluate=[dict(p) for p in space.start] or None)


def _concurrency(settings: SweepSettings) -> int:
    if settings.concurrency:
        return settings.concurrency
    cpus = ray.cluster_resources().get("CPU", 1)
    by_cpu = max(1, int(cpus // settings.cpus_per_trial))
    if settings.gpus_per_trial > 0:
        by_cpu = min(by_cpu, max(1, int(ray.cluster_resources().get("GPU", 0) // settings.gpus_per_trial)))
    return by_cpu


class ClusterAuthError(ConnectionError):
    pass


def ensure_ray(address: str | None) -> None:
    """Start a local Ray, or connect to the cluster at `address` (or $RAY_ADDRESS)."""
    # Trial output goes to each trial's files; the driver prints our own progress lines instead.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():
        return
    # A cluster that rejects us makes Ray's C++ client print a line per retry for 20 s straight
    # to fd 2; keep those aside and turn the known cause into one line that says what to set.
    with tempfile.TemporaryFile(mode="w+") as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        except ConnectionError as exc:
            os.dup2(saved, 2)
            captured.seek(0)
            if "InvalidAuthToken" in captured.read():
                raise ClusterAuthError(
                    f"the Ray cluster at {address or os.environ.get('RAY_ADDRESS')} requires token authentication: "
                    "set RAY_AUTH_MODE=token and provide the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
                ) from None
            raise ConnectionError(f"cannot connect to the Ray cluster at {address}: {exc}; check the address and that the cluster is up") from None
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def run_sweep(
    settings: SweepSettings,
    trainable: Callable[..., None] = train_trial,
    echo: Callable[[str], None] = print,
) -> SweepOutcome:
    """Run a new sweep to the end and summarise it. `trainable` is replaceable for tests."""
    exp_dir = settings.experiment_dir
    if exp_dir.exists():
        raise ExperimentExistsError(
            f"experiment {settings.name!r} already exists in {exp_dir.parent}; "
            f"continue it with --resume {settings.name}, or choose another --name"
        )
    space = load_space(settings.space)  # a bad file fails here, before Ray starts
    started = time.time()
    splits = load_images(settings.dataset, settings.train_size, settings.val_size, settings.seed, settings.data_dir)
    data = with_targets(splits)
    echo(f"data: {splits.source}, {len(splits.train)} train / {len(splits.val)} val images, "
         f"teacher targets ready in {time.time() - started:.1f}s")
    ensure_ray(settings.address)
    exp_dir.mkdir(parents=True)
    settings.save(exp_dir, dataset_used=splits.source, search_space=str(space.path))

    tuner = tune.Tuner(
        _with_data(trainable, data, settings),
        param_space={**space.to_tune(), "max_epochs": settings.max_epochs, "seed": settings.seed},
        tune_config=tune.TuneConfig(
            metric=METRIC, mode=MODE, num_samples=settings.num_samples,
            search_alg=_searcher(settings, space),
            scheduler=ASHAScheduler(time_attr="training_iteration", max_t=settings.max_epochs,
                                    grace_period=settings.grace_period, reduction_factor=settings.reduction_factor),
            max_concurrent_trials=_concurrency(settings),
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=settings.name,
            storage_path=settings.ray_storage_path,
            stop=PlateauStopper(METRIC, settings.patience, settings.min_delta),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            callbacks=[ProgressPrinter(settings.max_epochs, settings.num_samples, echo)],
            verbose=0,
        ),
    )
    echo(f"sweep {settings.name!r}: {settings.num_samples} trials, up to {settings.max_epochs} epochs each, "
         f"space {space.name} ({', '.join(p.name for p in space.params)})")
    return _fit_and_summarise(tuner, exp_dir, settings, splits.benchmark_images, echo)


def _copy_from_storage(uri: str, exp_dir: Path, echo: Callable[[str], None]) -> None:
    """Bring Ray's experiment from a URI storage into the local directory, for tuner's tables and tools."""
    import pyarrow.fs

    pyarrow.fs.copy_files(uri, str(exp_dir))
    echo(f"copied {uri} to {exp_dir}")


def benchmark_best(exp_dir: Path, images, echo: Callable[[str], None] = print, **options: Any) -> None:
    """Benchmark the best trial's model on `images` and write benchmark.csv/png beside the results."""
    from tuner.benchmark import format_table, run_benchmark, write_outputs

    frame = run_benchmark(load_checkpoint(exp_dir / BEST_MODEL_FILE), images, echo=echo, **options)
    csv, png = write_outputs(frame, exp_dir)
    echo(format_table(frame))
    echo(f"benchmark: {csv} and {png}")


def _with_data(trainable: Callable[..., None], data: Any, settings: SweepSettings) -> Any:
    """The trainable as Ray runs it: data from the object store, resources per trial (fractional GPUs allowed)."""
    return tune.with_resources(tune.with_parameters(trainable, data=data),
                               {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial})


def resume_sweep(
    name_or_path: str,
    storage: str = "results",
    address: str | None = None,
    trainable: Callable[..., None] = train_trial,
    echo: Callable[[str], None] = print,
) -> SweepOutcome:
    """Continue an interrupted sweep: finished trials stay, unfinished ones continue from their last
    checkpoint, and the searcher's state and the number of trials asked for are restored."""
    # A URI storage keeps its local copy (with sweep.json and state.json) under results/.
    exp_dir = find_experiment(name_or_path, LOCAL_RESULTS if "://" in storage else storage)
    state = read_state(exp_dir)
    if state == "finished":
        echo(f"experiment {exp_dir.name!r} already finished; nothing to resume (see tuner results {exp_dir.name})")
        return SweepOutcome(exp_dir, results.collect(exp_dir, finished=True), interrupted=False)
    if state == "running":
        raise ExperimentError(f"experiment {exp_dir.name!r} is still running in another process; wait for it or stop it first")
    settings, info = load_settings(exp_dir)
    if not tune.Tuner.can_restore(settings.ray_experiment_path):
        raise ExperimentError(f"experiment {exp_dir.name!r} was interrupted before Ray saved any state; start it again under a new --name")
    splits = load_images(info.get("dataset_used", settings.dataset), settings.train_size, settings.val_size,
                         settings.seed, settings.data_dir)
    data = with_targets(splits)
    ensure_ray(address or settings.address)
    done = results.collect(exp_dir, finished=False).trials
    echo(f"resuming {exp_dir.name!r}: {len(done)} of {settings.num_samples} trials started so far")
    # Errored trials stay errors: each already had its --max-failures retries.
    tuner = tune.Tuner.restore(settings.ray_experiment_path, trainable=_with_data(trainable, data, settings),
                               resume_unfinished=True, resume_errored=False)
    return _fit_and_summarise(tuner, exp_dir, settings, splits.benchmark_images, echo)


def _fit_and_summarise(tuner: tune.Tuner, exp_dir: Path, settings: SweepSettings, benchmark_images: Any,
                       echo: Callable[[str], None]) -> SweepOutcome:
    """Run the tuner; whatever happens, write the tables of what exists and the experiment's state.
    A finished sweep then benchmarks its best model."""
    write_state(exp_dir, "running")
    interrupted = True
    try:
        grid = tuner.fit()
        # On Ctrl-C Ray saves its state and returns early: fewer trials ended than asked for.
        interrupted = len(grid) < settings.num_samples or grid.num_terminated + grid.num_errors < len(grid)
    finally:
        write_state(exp_dir, "interrupted" if interrupted else "finished")
        if settings.remote_storage:
            _copy_from_storage(settings.ray_experiment_path, exp_dir, echo)
        summary = results.summarise(exp_dir, finished=not interrupted)
    if settings.benchmark and not interrupted and (exp_dir / BEST_MODEL_FILE).is_file():
        benchmark_best(exp_dir, benchmark_images, echo=echo)
    return SweepOutcome(exp_dir, summary, interrupted)
