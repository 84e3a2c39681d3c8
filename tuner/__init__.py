"""tuner: hyperparameter sweeps, on Ray Tune, of a CNN that imitates a fixed torchvision pipeline.

Python API (no Ray needed to read results):

    import tuner
    exp = tuner.load_experiment("demo")            # a name under results/, or a path
    exp.trials, exp.history, exp.best              # pandas DataFrames and a dict
    model = tuner.load_model("demo")               # its best model; trial="ID" for another
    model = tuner.load_model("exported/model.pt")  # or any checkpoint file, rebuilt from the file alone

Importing tuner loads nothing heavy: each name is imported on first use.

Layers, each importing only those before it: core, learn, search, results, inference, run (the only one that
imports Ray), cli. tests/test_layers.py enforces the order.
"""

from __future__ import annotations

from typing import Any

from tuner.core import legacy_paths

__all__ = ["Experiment", "load_experiment", "load_model", "__version__"]
__version__ = "0.2.0"  # the one place: pyproject.toml reads it

_HOMES = {
    "Experiment": "tuner.results.experiments",
    "load_experiment": "tuner.results.experiments",
    "load_model": "tuner.results.experiments",
}

legacy_paths.install()


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'tuner' has no attribute {name!r}")
