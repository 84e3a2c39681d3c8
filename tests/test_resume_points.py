"""What a resume continues from after a kill left Ray's saved state a few seconds behind (fast, no Ray cluster):
the trial's newest checkpoint where Ray's is gone, and trials Ray never saved marked lost in the record."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch
from ray import tune

from tuner import record
from tuner.checkpoints import CHECKPOINT_FILE
from tuner.progress import SweepMonitor
from tuner.trainable import resume_point


def _checkpoint(trial_dir, index: int, mtime: int):
    d = trial_dir / f"checkpoint_{index:06d}"
    d.mkdir(parents=True)
    torch.save({"index": index}, d / CHECKPOINT_FILE)
    os.utime(d / CHECKPOINT_FILE, (mtime, mtime))
    return d


def test_ray_s_checkpoint_is_used_while_it_exists(tmp_path):
    given = _checkpoint(tmp_path / "trial_a", 0, 1_000)
    _checkpoint(tmp_path / "trial_a", 1, 2_000)
    assert resume_point(tune.Checkpoint(str(given))).path == str(given)


def test_a_deleted_checkpoint_falls_back_to_the_trial_s_newest(tmp_path):
    trial = tmp_path / "trial_a"
    _checkpoint(trial, 2, 3_000)  # written before Ray restarted its numbering from a stale state
    newest = _checkpoint(trial, 1, 4_000)
    gone = trial / "checkpoint_000000"  # what Ray's stale state names; num_to_keep deleted it
    assert resume_point(tune.Checkpoint(str(gone))).path == str(newest)


def test_no_checkpoint_at_all_is_a_clear_error(tmp_path):
    (tmp_path / "trial_a").mkdir()
    with pytest.raises(RuntimeError, match="is gone and .* holds no other"):
        resume_point(tune.Checkpoint(str(tmp_path / "trial_a" / "checkpoint_000000")))


def test_a_trial_ray_never_saved_is_lost_and_left_out(tmp_path):
    record.append(tmp_path, "start", "kept", config={"lr": 1e-3})
    record.append(tmp_path, "epoch", "kept", epoch=1, val_loss=0.1)
    record.append(tmp_path, "start", "unsaved", config={"lr": 2e-3})
    record.append(tmp_path, "epoch", "unsaved", epoch=1, val_loss=0.2)
    lines = []
    monitor = SweepMonitor(tmp_path, num_samples=2, max_epochs=3, parallel=1, echo=lines.append)
    monitor.resume(tmp_path, lines.append)
    monitor.on_step_begin(0, trials=[SimpleNamespace(trial_id="kept")])
    monitor.on_step_begin(1, trials=[])  # only the first step after a resume compares
    assert list(record.read(tmp_path)) == ["kept"]
    assert '"outcome": "lost"' in (tmp_path / record.RECORD_FILE).read_text()  # its epochs stay in the file
    assert lines == ["trial unsaved started after Ray's last saved state; its configuration runs again"]
    assert monitor._counts() == "0 done, 1 running, 1 pending"
