"""An experiment folder is the user's: a copy, and a moved and renamed copy, each resume inside itself and
touch no other folder, byte for byte (slow, real Ray through the CLI).

The experiment is tests/fixtures/legacy_experiment, an interrupted sweep written by tuner 0.1 (its classes
pickled under the old flat module paths, its space file and Optuna study at paths that no longer exist): the
same resumes show that such an experiment still runs to the end. A last test makes its own sweep, so that the
resume of a same-name copy creates new trials.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sweep_helpers import wait_for_one_done_and_one_running
from test_ray_bounds import env_with, ray_tmp, tuner  # noqa: F401  (ray_tmp is a fixture)

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_experiment"


def _digest(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_copied_and_moved_experiments_resume_inside_themselves(ray_tmp, tmp_path):  # noqa: F811
    env, before = env_with(ray_tmp), _digest(FIXTURE)
    original = tmp_path / "results" / "legacy"
    shutil.copytree(FIXTURE, original)
    copy = original.parent / "legacy_copy"
    shutil.copytree(original, copy)
    staging = original.parent / "legacy_third"
    shutil.copytree(original, staging)
    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    staging.rename(moved)  # moved and renamed: nothing left where it was made
    folders = [original, copy, moved]

    for target, argv in ((copy, ["legacy_copy"]), (moved, [str(moved)])):
        others = {f: _digest(f) for f in folders if f != target}
        done = tuner("sweep", "--resume", *argv, "--no-benchmark", env=env, cwd=tmp_path)
        assert done.returncode == 0, f"{target}: " + done.stdout[-2000:] + done.stderr[-2000:]
        assert f"resuming {target.name!r}: 1 of 2 trials finished, 1 to continue" in done.stdout
        for folder, digest in others.items():
            assert _digest(folder) == digest, f"resuming {target.name} changed {folder.name}"
        trials = pd.read_csv(target / "trials.csv", dtype={"trial_id": str})
        assert len(trials) == 2 and (trials["status"] == "completed").all() and (trials["epochs"] == 3).all()
        # Relative to the folder, and there: a copy's table points into the copy, none at /tmp/legacyfx.
        assert all(not Path(c).is_absolute() and (target / c).is_file() for c in trials["checkpoint"])
        assert "legacyfx" not in (target / "best.json").read_text()
        assert not pd.read_csv(target / "history.csv", dtype={"trial_id": str}).duplicated(["trial_id", "epoch"]).any()
    assert sorted(p.name for p in original.parent.iterdir()) == ["legacy", "legacy_copy"]
    assert _digest(FIXTURE) == before and not Path("/tmp/legacyfx").exists()


def test_trials_a_resume_creates_are_stored_in_the_copy_not_the_original(ray_tmp, tmp_path):  # noqa: F811
    """A sweep stopped by SIGTERM to its process group, then copied under the same name to another directory and
    resumed while the original is still there: the trials the restored searcher creates must checkpoint into
    the copy (Ray's saved searcher names the original)."""
    env = env_with(ray_tmp)
    original = tmp_path / "A" / "ib"
    argv = [sys.executable, "-m", "tuner", "sweep", "--name", "ib", "--storage", str(original.parent)]
    argv += "--dataset synthetic --num-samples 4 --max-epochs 2 --grace-period 2 --train-size 512 --val-size 32".split()
    argv += ["--concurrency", "1", "--no-benchmark"]
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=stdout, stderr=stderr, start_new_session=True)
    try:
        wait_for_one_done_and_one_running(proc, original)
    finally:
        # SIGTERM to the whole process group, as `timeout` or `kill -TERM -PGID` send it: Ray's processes,
        # in a session of their own, must not die under the driver before it has stopped the sweep.
        os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == 130, err.read_text()[-2000:]
    assert "tuner sweep --resume ib" in out.read_text() and "GCS" not in err.read_text()
    copy = tmp_path / "B" / "ib"
    shutil.copytree(original, copy)
    before = _digest(original)
    done = tuner("sweep", "--resume", "ib", "--storage", copy.parent, "--no-benchmark", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "to start" in done.stdout  # the searcher created trials after the restore
    assert _digest(original) == before
    trials = pd.read_csv(copy / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == 4 and all((copy / c).is_file() for c in trials["checkpoint"])
