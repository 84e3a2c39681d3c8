"""The CLI answers at once: --help, `tuner list` and `tuner results` import neither torch nor Ray (nor Optuna).

Measured by what is in sys.modules after the command ran in a fresh interpreter, not by time."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

HEAVY = ("torch", "ray", "optuna", "matplotlib")
PROBE = """
import json, sys
from tuner.cli.main import main
code = main(json.loads(sys.argv[1]))
print(json.dumps({"code": code, "heavy": [m for m in json.loads(sys.argv[2]) if m in sys.modules]}))
"""


def heavy_after(argv: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)], capture_output=True, text=True, timeout=120
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "command",
    [[], ["sweep"], ["list"], ["results"], ["report"], ["export"], ["benchmark"], ["evaluate"], ["dashboard"]],
)
def test_help_loads_nothing_heavy(command):
    assert heavy_after([*command, "--help"]) == {"code": 0, "heavy": []}


def test_list_and_results_load_nothing_heavy(made_experiment):
    storage = str(made_experiment.parent)
    assert heavy_after(["list", "--storage", storage]) == {"code": 0, "heavy": []}
    assert heavy_after(["results", "made", "--storage", storage]) == {"code": 0, "heavy": []}


def test_importing_the_package_loads_nothing_heavy():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, tuner; print([m for m in ('torch', 'ray') if m in sys.modules])"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "[]"


def test_refusals_before_ray_load_nothing_heavy(made_experiment, tmp_path):
    """Flags a sweep or an evaluation refuses, and a damaged experiment in `tuner list`, cost no import of torch
    or Ray: the one line comes at once."""
    storage = tmp_path / "results"
    shutil.copytree(made_experiment, storage / "made")
    shutil.copytree(made_experiment, storage / "damaged")
    (storage / "damaged" / "sweep.json").write_text("{")
    sweep = ["sweep", "--storage", str(tmp_path / "new"), "--dataset", "synthetic"]
    assert heavy_after([*sweep, "--train-size", "100000000"]) == {"code": 2, "heavy": []}
    assert heavy_after([*sweep, "--name", "a" * 300]) == {"code": 2, "heavy": []}
    assert heavy_after([*sweep, "--seed", str(2**64)]) == {"code": 2, "heavy": []}
    assert heavy_after(["evaluate", "made", "--storage", str(storage), "--seed", "-5"]) == {"code": 2, "heavy": []}
    assert heavy_after(["list", "--storage", str(storage)]) == {"code": 0, "heavy": []}
    assert not (tmp_path / "new").exists()
