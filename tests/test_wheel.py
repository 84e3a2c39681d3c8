"""The package as a user installs it: the wheel, installed outside the repo, sweeps from another directory (slow).

The wheel goes into a fresh target folder that comes first on PYTHONPATH; its dependencies (torch, Ray, Optuna)
come from the test's own environment, so nothing is downloaded. The checks run from a temporary directory, where
nothing of the repo (search_spaces/, results/) can be found by accident.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

import tuner

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # A copy of the tree, so the build's egg-info and build/ never land in the repo others work in.
    src = out / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "results", "*.egg-info", "build", ".gpu"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (found,) = out.glob("tuner-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def _run(installed: Path, cwd: Path, *argv: str, ray_tmp: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTHONPATH")}
    env.update(PYTHONPATH=str(installed), PYTHONUNBUFFERED="1", TUNER_DATA_DIR=str(cwd / "no-data"))
    if ray_tmp:
        env["RAY_TMPDIR"] = ray_tmp
    return subprocess.run(
        [sys.executable, *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )


def test_the_wheel_carries_the_search_spaces_and_one_version(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    spaces = sorted(Path(n).stem for n in names if n.startswith("tuner/search/space_files/") and n.endswith(".yaml"))
    assert spaces == ["default", "full", "pareto", "wide"]
    assert wheel.name.startswith(f"tuner-{tuner.__version__}-")


def test_the_installed_wheel_is_the_tuner_that_runs(installed, tmp_path):
    done = _run(installed, tmp_path, "-c", "import tuner, sys; print(tuner.__file__, tuner.__version__)")
    assert done.returncode == 0, done.stderr
    where, version = done.stdout.split()
    assert Path(where).is_relative_to(installed) and version == tuner.__version__


def test_built_in_spaces_are_listed_and_found_from_any_directory(installed, tmp_path):
    done = _run(installed, tmp_path, "-m", "tuner", "sweep", "--space", "nosuch")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "tuner: error: unknown search space 'nosuch'; use one of: default, full, pareto, wide, or a path to a YAML file"
    )


def test_a_tiny_sweep_from_a_temporary_directory(installed, tmp_path):
    ray_tmp = tempfile.mkdtemp(prefix="rw", dir="/tmp")  # short: Ray puts unix sockets under it
    try:
        done = _run(
            installed,
            tmp_path,
            *("-m tuner sweep --name w --space wide --dataset synthetic --num-samples 1 --max-epochs 1").split(),
            *("--train-size 128 --val-size 32 --no-benchmark").split(),
            ray_tmp=ray_tmp,
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "space wide" in done.stdout
    assert (tmp_path / "results" / "w" / "trials.csv").is_file()
    listed = _run(installed, tmp_path, "-m", "tuner", "list")
    assert listed.returncode == 0 and "w" in listed.stdout.split()
