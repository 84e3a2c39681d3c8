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
from tuner.search.schedulers import SCHEDULERS
from tuner.search.searchers import SEARCHERS

if TYPE_CHECKING:
    from tuner.search.settings import SweepSettings
    from tuner.search.spaces import SearchSpace


def searcher(settings: SweepSettings, space: SearchSpace, storage_url: str | None = None) -> Any:
    """The search algorithm: an Optuna sampler through OptunaSearch (its study in `storage_url` when given),
    or Ray's own random variants for a scheduler that proposes configurations itself."""
    start = [dict(p) for p in space.start] or None
    if SCHEDULERS[settings.scheduler].pbt_like:
        return BasicVariantGenerator(points_to_evaluate=start, random_state=settings.seed)
    import optuna

    sampler = SEARCHERS[settings.searcher].sampler(settings.seed, settings.num_samples)
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
    """The trial scheduler named by settings.scheduler, built by its registered builder."""
    module, function = SCHEDULERS[settings.scheduler].build.split(":")
    return getattr(importlib.import_module(module), function)(settings, space)


def with_limit(search_alg: Any, trial_scheduler: Any, settings: SweepSettings, parallel: int) -> tuple[Any, int | None]:
    """The searcher, and Ray's max_concurrent_trials. Ray's limit counts paused trials, so tuner's ASHA (which
    pauses trials at rungs) gets a limit that does not, and only when the user set one: the nodes' resources
    bound trials at once anyway."""
    from tuner.run.schedulers.asha import PromotingASHA, RunningLimit

    if not isinstance(trial_scheduler, PromotingASHA):
        return search_alg, parallel
    if settings.concurrency is None:
        return search_alg, None
    return RunningLimit(search_alg, settings.concurrency, trial_scheduler), None


def checkpoints_to_keep(scheduler: str) -> int:
    """PBT copies another trial's recent checkpoint into a worse one, so it keeps a few; for every other
    scheduler the latest is all a resume needs."""
    return 3 if SCHEDULERS[scheduler].pbt_like else 1
