"""What a resume continues from after a kill left Ray's saved state a few seconds behind (fast, no Ray cluster):
the trial's newest checkpoint where Ray's is gone, and trials Ray never saved marked lost in the record."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tuner.core.errors import ExperimentError
from tuner.learn.checkpoints import CHECKPOINT_FILE, load_checkpoint
from tuner.results import record
from tuner.results.state import experiment_lock, read_state, state_damage
from tuner.run.progress import SweepMonitor
from tuner.run.resume import recover_cut_epochs, refill_deleted_checkpoints
from tuner.run.sweep import resume_sweep


def _checkpoint(trial_dir, index: int, mtime: int):
    d = trial_dir / f"checkpoint_{index:06d}"
    d.mkdir(parents=True)
    torch.save({"index": index}, d / CHECKPOINT_FILE)
    os.utime(d / CHECKPOINT_FILE, (mtime, mtime))
    return d


def test_deleted_checkpoint_names_get_the_newest_checkpoint(tmp_path):
    trial = tmp_path / "trial_a"
    _checkpoint(trial, 3, 4_000)  # the newest: what the trial had reached when the sweep was killed
    (trial / "checkpoint_000001").mkdir()  # a half-written one is left alone
    finished = _checkpoint(tmp_path / "trial_b", 2, 1_000)  # a finished trial is never restored
    made = refill_deleted_checkpoints(tmp_path, ["a"])
    assert [d.name for d in made] == ["checkpoint_000000", "checkpoint_000002"]  # what Ray's older state may name
    for d in made:
        assert torch.load(d / CHECKPOINT_FILE)["index"] == 3
        assert (d / CHECKPOINT_FILE).stat().st_ino == (trial / "checkpoint_000003" / CHECKPOINT_FILE).stat().st_ino
    assert not (trial / "checkpoint_000001" / CHECKPOINT_FILE).exists()
    assert [p.name for p in finished.parent.iterdir()] == ["checkpoint_000002"]
    assert refill_deleted_checkpoints(tmp_path, ["a"]) == []  # nothing twice


def test_a_trial_ray_never_saved_is_lost_and_left_out(tmp_path, caplog):
    record.append(tmp_path, "start", "kept", config={"lr": 1e-3})
    record.append(tmp_path, "epoch", "kept", epoch=1, val_loss=0.1)
    record.append(tmp_path, "start", "unsaved", config={"lr": 2e-3})
    record.append(tmp_path, "epoch", "unsaved", epoch=1, val_loss=0.2)
    monitor = SweepMonitor(tmp_path, num_samples=2, max_epochs=3, parallel=1)
    monitor.resume(tmp_path)
    with caplog.at_level(logging.INFO, logger="tuner"):
        monitor.on_step_begin(0, trials=[SimpleNamespace(trial_id="kept", status="RUNNING")])
        monitor.on_step_begin(1, trials=[])  # only the first step after a resume compares
    lines = [r.getMessage() for r in caplog.records]
    assert list(record.read(tmp_path)) == ["kept"]
    assert '"outcome": "lost"' in (tmp_path / record.RECORD_FILE).read_text()  # its epochs stay in the file
    assert lines == ["trial unsaved started after Ray's last saved state; its configuration runs again"]
    assert monitor._counts() == "0 done, 1 running, 1 pending"


# A resume that cannot go on refuses in one line before it changes a file (fast: it stops before Ray starts).
LEGACY = Path(__file__).parent / "fixtures" / "legacy_experiment"
UNFINISHED = "trial_63ecffef"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _damage_checkpoints(exp: Path, how: str) -> None:
    for ckpt in (exp / UNFINISHED).glob("checkpoint_*"):
        if how == "deleted":
            shutil.rmtree(ckpt)
        else:
            data = (ckpt / CHECKPOINT_FILE).read_bytes()
            (ckpt / CHECKPOINT_FILE).write_bytes(data[: len(data) // 3])


def _stopped_before_ray_saved_or_an_epoch_ended(exp: Path) -> None:
    for state in exp.glob("experiment_state-*.json"):
        state.unlink()
    for ckpt in exp.glob("trial_*/checkpoint_*"):
        shutil.rmtree(ckpt)
    starts = [line for line in (exp / "record.jsonl").read_text().splitlines(True) if '"event": "start"' in line]
    (exp / "record.jsonl").write_text("".join(starts))


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda e: [p.unlink() for p in e.glob("experiment_state-*.json")], "experiment_state-*.json is missing"),
        (lambda e: [p.unlink() for p in e.glob("searcher-state-*.pkl")], "searcher-state-*.pkl is missing"),
        (lambda e: [p.unlink() for p in e.glob("search_gen_state-*.json")], "search_gen_state-*.json is missing"),
        (lambda e: (e / "tuner.pkl").unlink(), "tuner.pkl is missing"),
        (lambda e: [p.unlink() for p in e.glob("*[-_]state-*")] + [(e / "tuner.pkl").unlink()], "before Ray saved"),
        (lambda e: (e / "record.jsonl").unlink(), "record.jsonl is missing"),
        (_stopped_before_ray_saved_or_an_epoch_ended, "nothing to resume; delete"),
        (lambda e: [p.write_text(p.read_text()[:99]) for p in e.glob("experiment_state-*")], ".json is damaged"),
        (lambda e: [p.write_bytes(p.read_bytes()[:50]) for p in e.glob("searcher-state-*")], ".pkl is damaged"),
        (lambda e: (e / "optuna.db").unlink(), "optuna.db is missing or holds no study"),
        (lambda e: (e / "optuna.db").write_bytes(b"SQLite format 3\0" + bytes(84)), "optuna.db is missing or holds"),
        (lambda e: (e / "sweep.json").write_text("{"), "sweep.json cannot be read"),
        (lambda e: _damage_checkpoints(e, "deleted"), "trial 63ecffef's checkpoint is gone"),
        (lambda e: _damage_checkpoints(e, "truncated"), "checkpoint_000001/checkpoint.pt is damaged"),
    ],
)
def test_a_resume_that_cannot_go_on_changes_nothing(tmp_path, damage, says):
    exp = tmp_path / "legacy"
    shutil.copytree(LEGACY, exp)
    damage(exp)
    before = _files(exp)
    with pytest.raises(ExperimentError, match=re.escape(says)) as caught:
        resume_sweep(str(exp))
    assert "\n" not in str(caught.value)
    assert _files(exp) == before


def test_a_second_resume_of_one_experiment_is_refused(tmp_path):
    with experiment_lock(tmp_path):
        with pytest.raises(ExperimentError, match="is being run by another process"):
            with experiment_lock(tmp_path):
                pass
    with experiment_lock(tmp_path):  # released on leaving
        pass


def test_a_sweep_that_lost_its_state_json_reads_as_running_while_another_process_holds_it(made_experiment, tmp_path):
    copy = tmp_path / "made"
    shutil.copytree(made_experiment, copy)
    (copy / "state.json").unlink()
    with experiment_lock(copy):  # this process's own lock (a resume checking the state) does not count
        assert read_state(copy) == "finished"
    hold = "import sys, time; from tuner.results.state import experiment_lock\n"
    hold += "with experiment_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(copy)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert read_state(copy) == "running" and "state.json missing" in state_damage(copy)
        with pytest.raises(ExperimentError, match="is being run by another process"):
            resume_sweep(str(copy))  # a second driver beside the running one, were state.json trusted alone
    finally:
        holder.kill()
        holder.wait()
    assert read_state(copy) == "finished"


@pytest.mark.parametrize(
    "left, removed",
    [
        ("nothing", True),  # a Ctrl-C while the first trials started: the same command starts it again
        ("a checkpoint", False),
        ("an ended trial", False),  # an error's traceback is the user's
        ("Ray's state", False),  # then the resume works
    ],
)
def test_only_a_sweep_that_holds_nothing_is_discarded(made_experiment, tmp_path, left, removed):
    from tuner.run.resume import discard_if_nothing_ran

    copy = tmp_path / "made"
    shutil.copytree(made_experiment, copy)
    lines = (copy / "record.jsonl").read_text().splitlines(True)
    kept = [line for line in lines if '"event": "start"' in line or (left == "an ended trial" and '"end"' in line)]
    (copy / "record.jsonl").write_text("".join(kept))
    if left != "a checkpoint":
        for ckpt in copy.glob("trial_*/checkpoint_*"):
            shutil.rmtree(ckpt)
    if left == "Ray's state":
        (copy / "experiment_state-2026-12-06_00-00-00.json").write_text("{}")
    assert discard_if_nothing_ran(copy) is removed
    assert copy.exists() is not removed


def test_resuming_a_finished_sweep_writes_the_tables_its_driver_did_not(made_experiment, tmp_path):
    copy = tmp_path / "made"
    shutil.copytree(made_experiment, copy)
    for name in ("state.json", "trials.csv", "history.csv"):  # the driver died after the last trial ended
        (copy / name).unlink()
    outcome = resume_sweep(str(copy))
    assert not outcome.interrupted and len(outcome.summary.trials) == 3
    assert (copy / "trials.csv").is_file() and (copy / "history.csv").is_file()


def test_the_resume_line_counts_finished_continuing_and_unstarted_trials(made_experiment):
    from dataclasses import replace

    from tuner.run.resume import summary_line
    from tuner.search.settings import load_settings

    settings, _ = load_settings(made_experiment)
    trials = record.read(made_experiment)  # three trials, each with an end
    one_running = {**trials, "ddd44444": record.TrialRecord("ddd44444")}
    assert summary_line(made_experiment, settings, trials) == "resuming 'made': 3 of 3 trials finished, 0 to continue"
    assert summary_line(made_experiment, replace(settings, num_samples=6), one_running) == (
        "resuming 'made': 3 of 6 trials finished, 1 to continue, 2 to start"
    )


def test_a_sweep_interrupted_before_its_first_epoch_resumes_and_a_record_that_lost_trials_does_not(tmp_path):
    from tuner.run.resume import check_resumable

    exp = tmp_path / "legacy"
    shutil.copytree(LEGACY, exp)
    (exp / "record.jsonl").write_text("")  # Ctrl-C before any trial reported: folders, no checkpoints, no lines
    with pytest.raises(record.RecordError, match=r"is cut short \(trial_\w+ has checkpoints, but no line"):
        check_resumable(exp)
    for checkpoint in exp.glob("trial_*/checkpoint_*"):
        shutil.rmtree(checkpoint)
    assert check_resumable(exp)[2] == {}


def test_epochs_the_checkpoints_hold_but_the_record_lost_are_written_back_before_a_resume(tmp_path):
    """A torn last line (a kill while writing it) is dropped; the trial goes on after its checkpoint, so the
    epoch must come back from the checkpoint, or history.csv would skip it and the trial read as unfinished."""
    exp = tmp_path / "legacy"
    shutil.copytree(LEGACY, exp)
    lines = (exp / "record.jsonl").read_text().splitlines()
    cut = max(i for i, line in enumerate(lines) if '"epoch"' in line and "63ecffef" in line)
    (exp / "record.jsonl").write_text("\n".join(lines[:cut] + lines[cut + 1 :]) + "\n" + lines[cut][:30])
    saved = {
        m["epoch"]: m
        for m in (load_checkpoint(f)["metrics"] for f in (exp / UNFINISHED).glob(f"checkpoint_*/{CHECKPOINT_FILE}"))
    }
    assert recover_cut_epochs(exp, record.read(exp)) == ["63ecffef"]
    epochs = record.read(exp)["63ecffef"].epochs
    assert [e["epoch"] for e in epochs] == list(range(1, max(saved) + 1))
    assert all(e["val_loss"] == saved[e["epoch"]]["val_loss"] for e in epochs if e["epoch"] in saved)
    assert recover_cut_epochs(exp, record.read(exp)) == []  # nothing twice
