"""An experiment written by tuner 0.1 (flat modules pickled into Ray's state, storage "results", a space file and
an Optuna study at paths that are gone) still resumes. tests/fixtures/legacy_experiment is that experiment,
interrupted with one of its two trials finished."""

from __future__ import annotations

import hashlib
import importlib
import pickle
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_ray_bounds import env_with, ray_tmp, tuner  # noqa: F401  (ray_tmp is a fixture)

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


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


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


@pytest.mark.slow
def test_a_tuner_0_1_experiment_resumes_to_the_end(ray_tmp, tmp_path):  # noqa: F811
    before = _digest(FIXTURE)
    exp = tmp_path / "results" / "legacy"
    shutil.copytree(FIXTURE, exp)
    done = tuner("sweep", "--resume", "legacy", "--no-benchmark", env=env_with(ray_tmp), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "resuming 'legacy': 1 of 2 trials finished, 1 to continue" in done.stdout
    trials = pd.read_csv(exp / "trials.csv")
    history = pd.read_csv(exp / "history.csv")
    assert len(trials) == 2 and (trials["status"] == "completed").all() and (trials["epochs"] == 3).all()
    assert not history.duplicated(["trial_id", "epoch"]).any()
    assert all((exp / c).is_file() for c in trials["checkpoint"])  # nothing points at /tmp/legacyfx any more
    assert "legacyfx" not in (exp / "best.json").read_text()
    assert _digest(FIXTURE) == before
    assert not Path("/tmp/legacyfx").exists()
