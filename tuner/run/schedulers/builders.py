"""Builders of the schedulers registered in tuner.search.schedulers, each (settings, space) -> a Ray Tune
TrialScheduler. Schedulers count the epoch each report states, not Ray's training_iteration, which counts
reports: a trial resumed from a checkpoint newer than Ray's saved state, or given another trial's by PBT, is
at an epoch that count does not know."""

from __future__ import annotations

from typing import Any

from ray.tune import schedulers

from tuner.run.schedulers.asha import PromotingASHA
from tuner.run.schedulers.hyperband import FinishingHyperBand
from tuner.run.search_space import to_tune
from tuner.search.checks import PBT_MUTABLE

TIME_ATTR = "epoch"


def asha(settings: Any, space: Any) -> PromotingASHA:
    return PromotingASHA(
        max_t=settings.max_epochs,
        grace_period=settings.grace_period,
        reduction_factor=settings.reduction_factor,
        num_samples=settings.num_samples,
        max_running=settings.concurrency,
        time_attr=TIME_ATTR,
    )


def ray_asha(settings: Any, space: Any) -> schedulers.ASHAScheduler:
    return schedulers.ASHAScheduler(
        time_attr=TIME_ATTR,
        max_t=settings.max_epochs,
        grace_period=settings.grace_period,
        reduction_factor=settings.reduction_factor,
    )


def hyperband(settings: Any, space: Any) -> FinishingHyperBand:
    return FinishingHyperBand(
        time_attr=TIME_ATTR, max_t=settings.max_epochs, reduction_factor=settings.reduction_factor
    )


def median(settings: Any, space: Any) -> schedulers.MedianStoppingRule:
    return schedulers.MedianStoppingRule(
        time_attr=TIME_ATTR, grace_period=settings.grace_period, min_samples_required=2
    )


def pbt(settings: Any, space: Any) -> schedulers.PopulationBasedTraining:
    # PBT copies a better trial's checkpoint into a worse one and perturbs only what PBT_MUTABLE names.
    mutations = {p.name: to_tune(p) for p in space.params if p.name in PBT_MUTABLE}
    return schedulers.PopulationBasedTraining(
        time_attr=TIME_ATTR,
        perturbation_interval=settings.grace_period,
        hyperparam_mutations=mutations,
        log_config=False,
    )


def fifo(settings: Any, space: Any) -> schedulers.FIFOScheduler:
    return schedulers.FIFOScheduler()
