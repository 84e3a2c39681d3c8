"""Bad input of every kind ends in one line, `tuner: error: <what>; <what to do>`, exit 2, and loses nothing
(fast: everything here is refused before Ray would start)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from tuner.cli.main import main
from tuner.run.sweep import SweepOutcome


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(capsys, pattern: str, *argv) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    assert err.startswith("tuner: error: ") and err.count("\n") == 1, err
    assert pattern in err, err
    return err


@pytest.fixture
def copy(made_experiment, tmp_path) -> Path:
    target = tmp_path / "results" / "made"
    shutil.copytree(made_experiment, target)
    return target


def test_unknown_names(made_experiment, tmp_path, capsys):
    storage = made_experiment.parent
    one_line(capsys, "no experiment 'nope'", "results", "nope", "--storage", storage)
    one_line(capsys, "has no trial 'xyz'", "export", "made", "--storage", storage, "--trial", "xyz", "--out", tmp_path)
    one_line(capsys, "cannot sort by 'colour'", "results", "made", "--storage", storage, "--sort", "colour")
    one_line(capsys, "unknown status", "results", "made", "--storage", storage, "--status", "great")
    one_line(capsys, "neither a model file nor an experiment", "evaluate", tmp_path / "missing.pt", "--size", "8")
    one_line(capsys, "no experiment 'nope'", "sweep", "--resume", "nope", "--storage", storage)


def test_storage_that_is_a_file_or_missing(tmp_path, capsys):
    afile = tmp_path / "a-file"
    afile.write_text("")
    one_line(capsys, "is a file", "list", "--storage", afile)
    one_line(capsys, "does not exist", "list", "--storage", tmp_path / "nowhere")
    one_line(capsys, "is a file, not a directory", "sweep", "--storage", afile, "--dataset", "synthetic")


@pytest.mark.parametrize(
    "flag, value, pattern",
    [
        ("--min-delta", "-1", "--min-delta is a relative improvement"),
        ("--seed", "-1", "--seed must be 0 or more"),
        ("--concurrency", "-3", "--concurrency must be at least 1"),
        ("--max-failures", "-1", "--max-failures must be 0 or more"),
        ("--num-samples", "0", "--num-samples must be at least 1"),
        ("--grace-period", "9", "exceeds --max-epochs"),
        ("--dataset", "imagenet", "unknown dataset 'imagenet'"),
        ("--dataset", "folder:/nonexistent", "image folder /nonexistent does not exist"),  # before Ray starts
        ("--dataset", "folder:", "image folder (none given) does not exist"),
        ("--space", "nope", "unknown search space 'nope'"),
        ("--name", "a/b", "must be a plain directory name"),
    ],
)
def test_rejected_sweep_flags_leave_nothing_behind(tmp_path, capsys, flag, value, pattern):
    one_line(capsys, pattern, "sweep", "--storage", tmp_path, "--name", "x", "--dataset", "synthetic", flag, value)
    assert list(tmp_path.iterdir()) == []


def test_bad_numbers_in_flags(made_experiment, tmp_path, capsys):
    storage = made_experiment.parent
    one_line(capsys, "'abc' is not a whole number", "benchmark", "made", "--storage", storage, "--batch-sizes", "abc")
    one_line(capsys, "-1 is not above 0", "benchmark", "made", "--storage", storage, "--min-run-time", "-1")
    one_line(capsys, "below 1", "export", "made", "--storage", storage, "--out", tmp_path, "--images", "0")
    one_line(capsys, "below 1", "export", "made", "--storage", storage, "--out", tmp_path, "--images", "-1")
    assert list(tmp_path.iterdir()) == []  # nothing unverified on disk


def test_export_into_a_place_that_cannot_be_written(made_experiment, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    one_line(capsys, "cannot write to", "export", made_experiment, "--out", blocker / "sub")


def test_damaged_and_missing_checkpoints(copy, tmp_path, capsys):
    (copy / "best_model.pt").write_bytes(b"")
    one_line(capsys, "is corrupt", "evaluate", copy / "best_model.pt", "--size", "8")
    for ckpt in copy.glob("trial_aaa11111/checkpoint_*/checkpoint.pt"):
        ckpt.write_bytes(b"")  # 0 bytes: a disk that filled up
    one_line(capsys, "is corrupt", "export", copy, "--out", tmp_path / "out")
    for ckpt in copy.glob("trial_*/checkpoint_*"):
        shutil.rmtree(ckpt)
    one_line(capsys, "has no checkpoint on disk", "export", copy, "--out", tmp_path / "out")
    one_line(capsys, "has no checkpoint on disk", "benchmark", copy, "--device", "cpu")


def test_an_experiment_without_finished_trials(copy, tmp_path, capsys):
    (copy / "record.jsonl").unlink()
    one_line(capsys, "no trial that finished an epoch", "export", copy, "--out", tmp_path / "out")


def test_a_damaged_settings_file(copy, capsys):
    (copy / "sweep.json").write_text("{not json")
    one_line(capsys, "sweep.json cannot be read", "results", copy)


def test_model_files_that_are_not_what_they_claim(tmp_path, capsys):
    for name in ("junk.torchscript.pt", "junk.onnx", "junk.pt"):
        (tmp_path / name).write_bytes(bytes(range(256)) * 8)
        one_line(capsys, "junk", "evaluate", tmp_path / name, "--size", "8")
    other = torch.jit.trace(
        torch.nn.Conv2d(3, 2, 5), torch.rand(1, 3, 32, 32)
    )  # (N, 2, 28, 28): not the teacher's shape
    torch.jit.save(other, str(tmp_path / "other.torchscript.pt"))
    one_line(
        capsys,
        "returns shape (2, 28, 28), not (1, 28, 28)",
        "evaluate",
        tmp_path / "other.torchscript.pt",
        "--size",
        "8",
    )
    wide = torch.jit.trace(torch.nn.Conv2d(4, 1, 5), torch.rand(1, 4, 32, 32))  # wants 4 channels
    torch.jit.save(wide, str(tmp_path / "wide.torchscript.pt"))
    one_line(capsys, "does not take images of shape (N, 3, 32, 32)", "evaluate", tmp_path / "wide.torchscript.pt")


def test_a_folder_with_files_that_are_not_images(made_experiment, tmp_path, capsys, caplog):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"\x89PNG but not really")
    one_line(capsys, "holds 0 readable images", "evaluate", made_experiment, "--dataset", f"folder:{folder}")
    for i in range(3):
        Image.new("RGB", (40, 40), (i * 60, 90, 200)).save(folder / f"ok{i}.png")
    code, out, _ = run(capsys, "evaluate", made_experiment, "--dataset", f"folder:{folder}")
    assert code == 0 and "3 images" in out  # every good image counts; the broken one is skipped...
    assert any("broken.png" in r.getMessage() for r in caplog.records)  # ...with a warning that names it


def test_hints_are_quoted_for_the_shell(tmp_path):
    outcome = SweepOutcome(tmp_path / "my exp", None, interrupted=True)
    assert outcome.command("sweep --resume") == f"tuner sweep --resume 'my exp' --storage {tmp_path}"


def test_state_json_survives_garbage(copy, capsys):
    (copy / "state.json").write_text("")
    code, out, _ = run(capsys, "results", copy)
    assert code == 0 and "interrupted" in out
    assert json.loads((copy / "sweep.json").read_text())["name"] == "made"
