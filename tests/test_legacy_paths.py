"""An experiment written by tuner 0.1 (flat modules pickled into Ray's state, storage "results", a space file and
an Optuna study at paths that are gone) still resumes. tests/fixtures/legacy_experiment is that experiment,
interrupted with one of its two trials finished."""

from __future__ import annotations

import importlib
import pickle
import shutil
from pathlib import Path

import tuner as tuner_package
from tuner.core.legacy_paths import LEGACY_MODULES
from tuner.run.ray_adapter import own_optuna_study

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_experiment"


class _Recording(pickle.Unpickler):
    """Unpickles, and notes every tuner class or function the pickle names by its module path."""

    def __init__(self, file) -> None:
        super().__init__(file)
        self.names: set[tuple[str, str]] = set()

    def find_class(self, module: str, name: str):
        if module.split(".")[0] == "tuner":
            self.names.add((module, name))
        return super().find_class(module, name)


def test_every_old_path_the_fixture_pickles_resolves(tmp_path):
    assert tuner_package.__version__  # importing tuner installs the aliases
    copy = tmp_path / "legacy"
    shutil.copytree(FIXTURE, copy)
    needed: set[tuple[str, str]] = set()
    with own_optuna_study(copy):  # its study's path is gone; the copy's own optuna.db is opened instead
        for name in ("tuner.pkl", *(p.name for p in FIXTURE.glob("searcher-state-*.pkl"))):
            with open(copy / name, "rb") as f:
                unpickler = _Recording(f)
                unpickler.load()
            needed |= unpickler.names
    old = {module for module, _ in needed if module in LEGACY_MODULES}
    assert {"tuner.asha", "tuner.progress", "tuner.stoppers", "tuner.sweep"} <= old, needed
    for module, name in needed:
        assert getattr(importlib.import_module(module), name) is not None
    for module, homes in LEGACY_MODULES.items():  # every alias imports, and names only modules that exist
        assert importlib.import_module(module).__name__ == module
        for home in homes:
            importlib.import_module(home)


# The fixture resumed to the end, copied and moved: tests/test_relocation.py.
