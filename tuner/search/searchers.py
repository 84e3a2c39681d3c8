"""Searchers by name: the one registry to extend (`--searcher NAME`, a space file's `searcher:`).

Each is an Optuna sampler; the Ray layer wraps it in Ray Tune's OptunaSearch. Adding a searcher: one entry
here, with a function that builds its sampler. No Ray here; Optuna is imported only when a sampler is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SearcherEntry:
    name: str
    sampler: Callable[[int, int], Any]  # (seed, trials asked for) -> an optuna.samplers.BaseSampler
    numeric_only: bool  # cannot search choice parameters
    help: str
    multi_objective: bool = True  # can search --pareto's two objectives


def _startup(num_samples: int) -> int:
    # Optuna's default of 10 random start-up trials would make a small sweep pure random search.
    return max(2, min(10, num_samples // 3))


def _tpe(seed: int, num_samples: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=_startup(num_samples))


def _random(seed: int, num_samples: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _cmaes(seed: int, num_samples: int) -> Any:
    import optuna

    return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=_startup(num_samples))


def _gp(seed: int, num_samples: int) -> Any:
    import optuna

    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=_startup(num_samples))


def _nsga2(seed: int, num_samples: int) -> Any:
    import optuna

    # A generation per third of the sweep: the default of 50 would leave a small sweep one random generation.
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, num_samples // 3)))


def _qmc(seed: int, num_samples: int) -> Any:
    import optuna

    return optuna.samplers.QMCSampler(seed=seed, scramble=True)


SEARCHERS: dict[str, SearcherEntry] = {
    s.name: s
    for s in (
        SearcherEntry("tpe", _tpe, False, "Optuna's TPE (the default)"),
        SearcherEntry("random", _random, False, "random sampling"),
        SearcherEntry("cmaes", _cmaes, True, "Optuna's CMA-ES (numeric parameters only)", multi_objective=False),
        SearcherEntry("gp", _gp, False, "Optuna's Gaussian-process sampler"),
        SearcherEntry("qmc", _qmc, False, "quasi-Monte Carlo (scrambled Sobol)"),
        SearcherEntry("nsga2", _nsga2, False, "Optuna's NSGA-II, a genetic search for --pareto's two objectives"),
    )
}
