"""Run a sweep on Ray Tune: Optuna (TPE) proposes, ASHA and the plateau stopper cut, files stay on disk.

    from tuner.settings import SweepSettings
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
from tuner.experiments import write_state
from tuner.progress import ProgressPrinter
from tuner.search_spaces import SearchSpace, load_space
from tuner.settings import SweepSettings
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


def ensure_ray(address: str | None) -> None:
    # Trial output goes to each trial's files; the driver prints our own progress lines instead.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)


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
        tune.with_resources(tune.with_parameters(trainable, data=data),
                            {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}),
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
            storage_path=str(exp_dir.parent),
            stop=PlateauStopper(METRIC, settings.patience, settings.min_delta),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            callbacks=[ProgressPrinter(settings.max_epochs, settings.num_samples, echo)],
            verbose=0,
        ),
    )
    echo(f"sweep {settings.name!r}: {settings.num_samples} trials, up to {settings.max_epochs} epochs each, "
         f"space {space.name} ({', '.join(p.name for p in space.params)})")
    outcome = _fit_and_summarise(tuner, exp_dir, settings.num_samples)
    if settings.benchmark and not outcome.interrupted and (exp_dir / BEST_MODEL_FILE).is_file():
        benchmark_best(exp_dir, splits.benchmark_images, echo=echo)
    return outcome


def benchmark_best(exp_dir: Path, images, echo: Callable[[str], None] = print, **options: Any) -> None:
    """Benchmark the best trial's model on `images` and write benchmark.csv/png beside the results."""
    from tuner.benchmark import format_table, run_benchmark, write_outputs

    frame = run_benchmark(load_checkpoint(exp_dir / BEST_MODEL_FILE), images, echo=echo, **options)
    csv, png = write_outputs(frame, exp_dir)
    echo(format_table(frame))
    echo(f"benchmark: {csv} and {png}")


def _fit_and_summarise(tuner: tune.Tuner, exp_dir: Path, num_samples: int) -> SweepOutcome:
    """Run the tuner; whatever happens, write the tables of what exists and the experiment's state."""
    write_state(exp_dir, "running")
    interrupted = True
    try:
        grid = tuner.fit()
        # On Ctrl-C Ray saves its state and returns early: fewer trials ended than asked for.
        interrupted = len(grid) < num_samples or grid.num_terminated + grid.num_errors < len(grid)
    finally:
        write_state(exp_dir, "interrupted" if interrupted else "finished")
        summary = results.summarise(exp_dir, finished=not interrupted)
    return SweepOutcome(exp_dir, summary, interrupted)
