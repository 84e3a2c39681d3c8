"""An experiment folder is the user's: a copy, and a moved and renamed copy, each resume inside itself and
touch no other folder, byte for byte (slow, real Ray through the CLI)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sweep_helpers import ctrl_c_when_one_is_done
from test_ray_bounds import env_with, ray_tmp, tuner  # noqa: F401  (ray_tmp is a fixture)

pytestmark = pytest.mark.slow

SWEEP = (
    "sweep --name rs --dataset synthetic --num-samples 2 --max-epochs 3 --grace-period 3 --patience 3 "
    "--train-size 256 --val-size 32 --concurrency 1 --no-benchmark"
).split()


def _digest(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _interrupted_sweep(env: dict, cwd: Path) -> Path:
    """A sweep stopped by Ctrl-C with one trial finished and the other one trained an epoch."""
    exp = cwd / "results" / "rs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuner", *SWEEP],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ctrl_c_when_one_is_done(proc, exp, 300)
    assert proc.wait(timeout=120) == 130
    return exp


def test_copied_and_moved_experiments_resume_inside_themselves(ray_tmp, tmp_path):  # noqa: F811
    env = env_with(ray_tmp)
    original = _interrupted_sweep(env, tmp_path)
    copy = original.parent / "rs_copy"
    shutil.copytree(original, copy)
    staging = original.parent / "rs_third"
    shutil.copytree(original, staging)
    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    staging.rename(moved)  # moved and renamed: nothing left where it was made
    folders = [original, copy, moved]

    for target, argv in ((copy, ["rs_copy"]), (moved, [str(moved)]), (original, ["rs"])):
        others = {f: _digest(f) for f in folders if f != target}
        done = tuner("sweep", "--resume", *argv, env=env, cwd=tmp_path)
        assert done.returncode == 0, f"{target}: " + done.stdout[-2000:] + done.stderr[-2000:]
        for folder, digest in others.items():
            assert _digest(folder) == digest, f"resuming {target.name} changed {folder.name}"
        trials = pd.read_csv(target / "trials.csv")
        assert len(trials) == 2 and (trials["status"] == "completed").all(), trials
        # Relative to the folder, and there: a copy's table points into the copy.
        assert all(not Path(c).is_absolute() and (target / c).is_file() for c in trials["checkpoint"])
        assert not pd.read_csv(target / "history.csv").duplicated(["trial_id", "epoch"]).any()
    assert sorted(p.name for p in original.parent.iterdir()) == ["rs", "rs_copy"]
