"""The searcher and the scheduler of a sweep as Ray Tune objects, built from the registries
(tuner.search.searchers, tuner.search.schedulers).

Optuna's samplers run through Ray Tune's OptunaSearch; a scheduler that proposes configurations itself
(PBT) runs with Ray's own random variants, and the Optuna study behind the dashboard is not kept for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.search.optuna import OptunaSearch

from tuner.core.constants import METRIC, MODE
from tuner.results.pareto import OBJECTIVES
from tuner.run.search_space import param_space as tune_domains
from tuner.search.schedulers import SCHEDULERS
from tuner.search.searchers import SEARCHERS

if TYPE_CHECKING:
    from tuner.search.settings import SweepSettings
    from tuner.search.spaces import SearchSpace


def searcher(settings: SweepSettings, space: SearchSpace, storage_url: str | None = None) -> Any:
    """The search algorithm: an Optuna sampler through OptunaSearch (its study in `storage_url` when given),
    or Ray's own random variants for a scheduler that proposes configurations itself.

    A --pareto sweep searches two objectives, val_loss (min) and images_per_s (max); the scheduler and the
    plateau stopper still act on val_loss alone. OptunaSearch then gets the space itself: Ray Tune hands every
    searcher the sweep's single metric, and a searcher without a space of its own would take it."""
    start = [dict(p) for p in space.start] or None
    if SCHEDULERS[settings.scheduler].pbt_like:  # Ray's limit of trials at once is this generator's own
        limit = settings.concurrency or 0
        return BasicVariantGenerator(points_to_evaluate=start, random_state=settings.seed, max_concurrent=limit)
    import optuna

    sampler = SEARCHERS[settings.searcher].sampler(settings.seed, settings.num_samples)
    storage = optuna.storages.RDBStorage(storage_url) if storage_url else None
    objectives = {"metric": METRIC, "mode": MODE}
    if settings.pareto:
        objectives = {
            "metric": [c for c, _ in OBJECTIVES],
            "mode": [m for _, m in OBJECTIVES],
            "space": {p.name: p.to_optuna() for p in space.params},
        }
    # Given a space, OptunaSearch creates its study now, and Optuna's "A new study created" line would repeat
    # tuner's own progress lines on the terminal (quiet_ray keeps it off only while fit() runs).
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return OptunaSearch(
            sampler=sampler,
            points_to_evaluate=start,
            storage=storage,
            study_name=settings.name if storage else None,
            **objectives,
        )
    finally:
        optuna.logging.set_verbosity(level)


def param_space(settings: SweepSettings, space: SearchSpace) -> dict[str, Any]:
    """Ray Tune's param_space: the space's fixed values, the sweep's own, and its domains unless the searcher
    holds them (a --pareto sweep's OptunaSearch)."""
    own = {"max_epochs": settings.max_epochs, "seed": settings.seed}
    searched = {} if settings.pareto and not SCHEDULERS[settings.scheduler].pbt_like else tune_domains(space)
    return {**space.fixed, **searched, **own}


def scheduler(settings: SweepSettings, space: SearchSpace) -> Any:
    """The trial scheduler named by settings.scheduler, built by its registered builder."""
    module, function = SCHEDULERS[settings.scheduler].build.split(":")
    return getattr(importlib.import_module(module), function)(settings, space)


def with_limit(search_alg: Any, trial_scheduler: Any, settings: SweepSettings, parallel: int) -> tuple[Any, int | None]:
    """The searcher, and Ray's max_concurrent_trials. Ray's limit counts paused trials, so tuner's ASHA (which
    pauses trials at rungs) gets a limit that does not, and only when the user set one: the nodes' resources
    bound trials at once anyway. Ray ignores max_concurrent_trials for a BasicVariantGenerator (PBT's, which
    `searcher` gives the limit itself), with a warning quiet_ray hides."""
    from tuner.run.schedulers.asha import PromotingASHA, RunningLimit

    if isinstance(search_alg, BasicVariantGenerator):
        return search_alg, None
    if not isinstance(trial_scheduler, PromotingASHA):
        return search_alg, parallel
    if settings.concurrency is None:
        return search_alg, None
    return RunningLimit(search_alg, settings.concurrency, trial_scheduler), None


def checkpoints_to_keep(scheduler: str) -> int:
    """PBT copies another trial's recent checkpoint into a worse one, so it keeps a few; for every other
    scheduler the latest is all a resume needs."""
    return 3 if SCHEDULERS[scheduler].pbt_like else 1
