"""`tuner list/results/report/export/evaluate` and the Python API, against the session's real tiny sweep (slow)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch

import tuner
from tuner.cli import main
from tuner.export import FORMATS, load_exported
from tuner.results import HISTORY_COLUMNS, TRIAL_COLUMNS

pytestmark = pytest.mark.slow


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_shows_the_experiment(tiny_sweep, capsys):
    code, out, _ = run(capsys, "list", "--storage", tiny_sweep.parent, "--format", "csv")
    assert code == 0
    rows = [line.split(",") for line in out.strip().splitlines()]
    assert rows[0] == ["name", "date", "dataset", "trials", "best_val_psnr", "state"]
    assert rows[1][0] == "tiny" and rows[1][2] == "synthetic" and rows[1][3] == "3" and rows[1][5] == "finished"


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "markdown"])
def test_results_in_every_format(tiny_sweep, capsys, fmt):
    code, out, _ = run(capsys, "results", "tiny", "--storage", tiny_sweep.parent, "--format", fmt)
    assert code == 0
    if fmt == "json":
        assert len(json.loads(out)) == 3
    elif fmt == "csv":
        assert out.splitlines()[0].startswith("trial_id,status,epochs,val_psnr,val_loss")
    elif fmt == "markdown":
        assert out.splitlines()[1].startswith("| --- |")
    else:
        assert "trial_id" in out and "finished" in out


def test_results_sort_top_columns_and_status(tiny_sweep, capsys):
    code, out, _ = run(capsys, "results", str(tiny_sweep), "--sort", "val_psnr", "--top", "1",
                       "--columns", "trial_id,val_psnr,lr", "--status", "completed", "--format", "csv")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "trial_id,val_psnr,config/lr" and len(lines) == 2
    trials = pd.read_csv(tiny_sweep / "trials.csv")
    assert lines[1].split(",")[0] == trials.loc[trials["val_psnr"].idxmax(), "trial_id"]


def test_python_api(tiny_sweep):
    exp = tuner.load_experiment(tiny_sweep)
    assert list(exp.trials.columns[: len(TRIAL_COLUMNS)]) == TRIAL_COLUMNS
    assert list(exp.history.columns) == HISTORY_COLUMNS
    assert set(exp.best) >= {"trial_id", "config", "metrics", "checkpoint"}
    assert exp.state == "finished"
    assert exp.checkpoint().is_file()


def test_results_of_an_interrupted_experiment(tiny_sweep, tmp_path, capsys):
    copy = tmp_path / "halfway"
    shutil.copytree(tiny_sweep, copy)
    for name in ("trials.csv", "history.csv", "best.json", "best_model.pt"):
        (copy / name).unlink()
    # A sweep process that died without a word: state says running, its pid is gone.
    (copy / "state.json").write_text(json.dumps({"state": "running", "pid": 2**22 + 7, "host": __import__("socket").gethostname()}))
    exp = tuner.load_experiment(copy)
    assert exp.state == "interrupted" and len(exp.trials) == 3
    code, out, _ = run(capsys, "results", copy)
    assert code == 0 and "interrupted" in out


def test_report_writes_markdown_and_figures(tiny_sweep, capsys):
    code, out, _ = run(capsys, "report", "tiny", "--storage", tiny_sweep.parent)
    assert code == 0
    text = (tiny_sweep / "report.md").read_text()
    assert "early stopping saved" in text and "Best trial" in text
    for figure in ("val_loss.png", "params.png", "samples.png"):
        assert (tiny_sweep / figure).stat().st_size > 1000, figure
        assert f"({figure})" in text


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_export_round_trip(tiny_sweep, tmp_path, capsys, fmt):
    code, out, _ = run(capsys, "export", "tiny", "--storage", tiny_sweep.parent, "--format", fmt, "--out", tmp_path)
    assert code == 0, out
    assert "verified on 32 held-out images" in out and "PSNR against the teacher" in out  # the tiny sweep holds 32
    exported = load_exported(tmp_path / FORMATS[fmt])
    original = tuner.load_model(tiny_sweep / "best_model.pt")
    x = torch.rand(5, 3, 32, 32)  # a batch size the export never saw
    with torch.no_grad():
        assert torch.allclose(exported(x), original(x), atol=1e-4)
    if fmt == "state_dict":  # rebuilt from the file alone, config included
        assert tuner.load_model(tmp_path / "model.pt").config == original.config


def test_export_a_chosen_trial(tiny_sweep, tmp_path, capsys):
    trial = pd.read_csv(tiny_sweep / "trials.csv").query("status == 'completed'")["trial_id"].iloc[-1]
    code, out, _ = run(capsys, "export", "tiny", "--storage", tiny_sweep.parent, "--trial", trial, "--out", tmp_path)
    assert code == 0 and trial in out


def test_evaluate_experiment_and_exported_model(tiny_sweep, tmp_path, capsys):
    code, out, _ = run(capsys, "evaluate", "tiny", "--storage", tiny_sweep.parent, "--dataset", "synthetic", "--size", "64")
    assert code == 0 and "64 images" in out and "PSNR" in out
    run(capsys, "export", "tiny", "--storage", tiny_sweep.parent, "--format", "onnx", "--out", tmp_path)
    code, out, _ = run(capsys, "evaluate", tmp_path / "model.onnx", "--dataset", "synthetic", "--size", "64")
    assert code == 0 and "model.onnx" in out


def _one_line_error(code, err, pattern):
    assert code == 2
    assert err.startswith("tuner: error: ") and err.count("\n") == 1, err
    assert pattern in err


def test_bad_inputs_get_one_line_errors(tiny_sweep, tmp_path, capsys):
    storage = tiny_sweep.parent
    _one_line_error(*run(capsys, "results", "nope", "--storage", storage)[::2], "no experiment 'nope'")
    _one_line_error(*run(capsys, "export", "tiny", "--storage", storage, "--trial", "xyz", "--out", tmp_path)[::2],
                    "has no trial 'xyz'")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _one_line_error(*run(capsys, "export", "tiny", "--storage", storage, "--out", blocker / "sub")[::2], "cannot write to")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    _one_line_error(*run(capsys, "evaluate", corrupt, "--size", "8")[::2], "is corrupt")
    _one_line_error(*run(capsys, "evaluate", tmp_path / "missing.pt", "--size", "8")[::2], "neither a model file nor an experiment")
    _one_line_error(*run(capsys, "results", "tiny", "--storage", storage, "--sort", "colour")[::2], "cannot sort by 'colour'")


def test_an_experiment_without_finished_trials(tiny_sweep, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(tiny_sweep / "sweep.json", empty / "sweep.json")
    _one_line_error(*run(capsys, "export", empty, "--out", tmp_path / "out")[::2], "no trial that finished an epoch")


def test_a_missing_checkpoint(tiny_sweep, tmp_path, capsys):
    copy = tmp_path / "nockpt"
    shutil.copytree(tiny_sweep, copy)
    for ckpt in copy.glob("trial_*/checkpoint_*"):
        shutil.rmtree(ckpt)
    _one_line_error(*run(capsys, "export", copy, "--out", tmp_path / "out")[::2], "has no checkpoint on disk")
