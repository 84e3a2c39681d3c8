"""Searchers and schedulers by name: the one file to touch to add either.

    --searcher tpe | random | cmaes | gp | qmc      Optuna samplers, through Ray Tune's OptunaSearch
    --scheduler asha | ray-asha | hyperband | median | pbt | fifo

`check` refuses, before Ray starts, a combination that cannot work; `searcher`
and `scheduler` build the Ray Tune objects. `asha` is tuner's PromotingASHA
(asha.py: a trial passes a rung only in the top 1/rf of it, else it pauses);
`ray-asha` is Ray's ASHAScheduler, which lets the first trials at a rung go
on. PBT copies a better trial's checkpoint into a worse one and perturbs its lr and weight_decay (never a
model-shape parameter, whose weights come with the checkpoint); it proposes
configurations itself, so it runs with Ray's own random sampling (`random`),
and the Optuna study behind the dashboard is not kept for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuner.constants import METRIC, MODE
from tuner.errors import SettingsError

if TYPE_CHECKING:
    from tuner.search_spaces import SearchSpace
    from tuner.settings import SweepSettings

SEARCHERS = ("tpe", "random", "cmaes", "gp", "qmc")
SCHEDULERS = ("asha", "ray-asha", "hyperband", "median", "pbt", "fifo")
# Schedulers that end trials early: trials.csv names the one that ended each trial.
STOPPING_SCHEDULERS = ("asha", "ray-asha", "hyperband", "median")
PBT_MUTABLE = ("lr", "weight_decay")
NUMERIC_ONLY = ("cmaes",)  # CMA-ES has no notion of a categorical parameter


def check(searcher: str, scheduler: str, space: SearchSpace) -> None:
    """One line, before anything starts, for a searcher or scheduler that cannot run this space."""
    # The names themselves were checked with the flags (settings) or the space file (search_spaces).
    choices = [p.name for p in space.params if p.type == "choice"]
    if searcher in NUMERIC_ONLY and choices:
        raise SettingsError(
            f"--searcher {searcher} cannot search choice parameters ({', '.join(choices)}); "
            "fix them in the space's 'fixed:', or use --searcher tpe"
        )
    if scheduler == "pbt":
        if searcher != "random":
            raise SettingsError(
                f"--scheduler pbt proposes configurations itself and cannot be combined with "
                f"--searcher {searcher}; use --searcher random"
            )
        if not any(p.name in PBT_MUTABLE for p in space.params):
            raise SettingsError(
                f"--scheduler pbt mutates {' and '.join(PBT_MUTABLE)}, and the space searches neither; "
                "search lr, or use --scheduler asha"
            )


def searcher(settings: SweepSettings, space: SearchSpace, storage_url: str | None = None) -> Any:
    """The search algorithm: an Optuna sampler through OptunaSearch (its study in `storage_url` when given),
    or Ray's own random variants for PBT."""
    start = [dict(p) for p in space.start] or None
    if settings.scheduler == "pbt":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(points_to_evaluate=start, random_state=settings.seed)
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    seed = settings.seed
    # TPE's default of 10 random start-up trials would make a small sweep pure random search.
    startup = max(2, min(10, settings.num_samples // 3))
    sampler = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup),
        "qmc": lambda: optuna.samplers.QMCSampler(seed=seed, scramble=True),
    }[settings.searcher]()
    storage = optuna.storages.RDBStorage(storage_url) if storage_url else None
    return OptunaSearch(
        metric=METRIC,
        mode=MODE,
        sampler=sampler,
        points_to_evaluate=start,
        storage=storage,
        study_name=settings.name if storage else None,
    )


def scheduler(settings: SweepSettings, space: SearchSpace) -> Any:
    """The trial scheduler, on the epoch each report states. Not Ray's training_iteration, which counts
    reports: a trial resumed from a checkpoint newer than Ray's saved state, or given another trial's by
    PBT, is at an epoch that count does not know."""
    from ray.tune import schedulers

    common = {"time_attr": "epoch"}
    if settings.scheduler == "asha":
        from tuner.asha import PromotingASHA

        return PromotingASHA(
            max_t=settings.max_epochs,
            grace_period=settings.grace_period,
            reduction_factor=settings.reduction_factor,
            num_samples=settings.num_samples,
            max_running=settings.concurrency,
            **common,
        )
    if settings.scheduler == "ray-asha":
        return schedulers.ASHAScheduler(
            **common,
            max_t=settings.max_epochs,
            grace_period=settings.grace_period,
            reduction_factor=settings.reduction_factor,
        )
    if settings.scheduler == "hyperband":
        from tuner.stoppers import FinishingHyperBand

        return FinishingHyperBand(**common, max_t=settings.max_epochs, reduction_factor=settings.reduction_factor)
    if settings.scheduler == "median":
        return schedulers.MedianStoppingRule(**common, grace_period=settings.grace_period, min_samples_required=2)
    if settings.scheduler == "pbt":
        mutations = {p.name: p.to_tune() for p in space.params if p.name in PBT_MUTABLE}
        return schedulers.PopulationBasedTraining(
            **common, perturbation_interval=settings.grace_period, hyperparam_mutations=mutations, log_config=False
        )
    return schedulers.FIFOScheduler()


def with_limit(search_alg: Any, trial_scheduler: Any, settings: SweepSettings, parallel: int) -> tuple[Any, int | None]:
    """The searcher, and Ray's max_concurrent_trials. Ray's limit counts paused trials, so tuner's ASHA (which
    pauses trials at rungs) gets a limit that does not, and only when the user set one: the nodes' resources
    bound trials at once anyway."""
    if settings.scheduler != "asha":
        return search_alg, parallel
    if settings.concurrency is None:
        return search_alg, None
    from tuner.asha import RunningLimit

    return RunningLimit(search_alg, settings.concurrency, trial_scheduler), None


def checkpoints_to_keep(scheduler: str) -> int:
    """PBT copies another trial's recent checkpoint into a worse one, so it keeps a few; for every other
    scheduler the latest is all a resume needs."""
    return 3 if scheduler == "pbt" else 1
