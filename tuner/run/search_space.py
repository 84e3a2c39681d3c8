"""A search space (tuner.search.spaces) as Ray Tune's param_space."""

from __future__ import annotations

from typing import Any

from ray import tune

from tuner.search.spaces import Param, SearchSpace


def to_tune(param: Param) -> Any:
    """The Ray Tune domain; OptunaSearch turns it into the matching Optuna distribution."""
    if param.type == "uniform":
        return tune.uniform(param.low, param.high)
    if param.type == "loguniform":
        return tune.loguniform(param.low, param.high)
    if param.type == "int":
        return tune.randint(int(param.low), int(param.high) + 1)  # randint's upper bound is exclusive
    return tune.choice(list(param.values))


def param_space(space: SearchSpace) -> dict[str, Any]:
    """param_space for ray.tune.Tuner: searched domains plus fixed values."""
    return {**space.fixed, **{p.name: to_tune(p) for p in space.params}}
