"""`tuner list/results/report/export/evaluate` and the Python API, on the fixture experiment (fast, no Ray)."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pandas as pd
import pytest
import torch

import tuner
from tuner.cli.main import main
from tuner.core.errors import ExperimentError
from tuner.inference.formats import FORMATS, load_exported
from tuner.results import record, tables
from tuner.results.tables import HISTORY_COLUMNS, TRIAL_COLUMNS

FIXTURES = Path(__file__).parent / "fixtures"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_trials_and_history_come_from_the_record(made_experiment):
    trials = pd.read_csv(made_experiment / "trials.csv", dtype={"trial_id": str}).set_index("trial_id")
    assert trials.loc["aaa11111", "status"] == "completed" and trials.loc["aaa11111", "epochs"] == 2
    assert trials.loc["bbb22222", "status"] == "asha" and trials.loc["ccc33333", "status"] == "error"
    history = pd.read_csv(made_experiment / "history.csv", dtype={"trial_id": str})
    assert list(history.columns) == HISTORY_COLUMNS and len(history) == 4
    best = json.loads((made_experiment / "best.json").read_text())
    assert best["trial_id"] == "aaa11111"  # the error trial is never the best, whatever its loss


def test_list_shows_the_experiment(made_experiment, capsys):
    code, out, _ = run(capsys, "list", "--storage", made_experiment.parent, "--format", "csv")
    assert code == 0
    rows = [line.split(",") for line in out.strip().splitlines()]
    assert rows[0] == ["name", "date", "dataset", "trials", "best_val_psnr", "state"]
    assert rows[1][0] == "made" and rows[1][2] == "synthetic" and rows[1][3] == "3" and rows[1][5] == "finished"


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "markdown"])
def test_results_in_every_format(made_experiment, capsys, fmt):
    code, out, _ = run(capsys, "results", "made", "--storage", made_experiment.parent, "--format", fmt)
    assert code == 0
    if fmt == "json":
        assert len(json.loads(out)) == 3
    elif fmt == "csv":
        assert out.splitlines()[0].startswith("trial_id,status,epochs,val_psnr,val_ssim,val_loss")
    elif fmt == "markdown":
        assert out.splitlines()[1].startswith("| --- |") and "| lr |" in out.splitlines()[0] + " |"
    else:
        assert "trial_id" in out and "finished" in out


def test_results_sort_top_columns_and_status(made_experiment, capsys):
    code, out, _ = run(
        capsys,
        "results",
        made_experiment,
        "--sort",
        "val_psnr",
        "--top",
        "1",
        "--columns",
        "trial_id,val_psnr,lr",
        "--status",
        "completed,asha",
        "--format",
        "csv",
    )
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "trial_id,val_psnr,config/lr" and lines[1].startswith("aaa11111,")


def test_python_api_takes_names_paths_and_trials(made_experiment):
    exp = tuner.load_experiment(made_experiment)
    assert list(exp.trials.columns[: len(TRIAL_COLUMNS)]) == TRIAL_COLUMNS
    assert exp.state == "finished" and exp.checkpoint().is_file()
    by_name = tuner.load_model("made", storage=made_experiment.parent)
    by_file = tuner.load_model(made_experiment / "best_model.pt")
    other = tuner.load_model(made_experiment, trial="bbb22222")
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(by_name(x), by_file(x)) and not torch.equal(by_name(x), other(x))


def test_load_model_names_an_export_it_does_not_read(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(ExperimentError, match="model.onnx is an ONNX export, not a checkpoint; load_model reads"):
        tuner.load_model(tmp_path / "model.onnx")


def test_an_interrupted_experiment_reads_as_such(made_experiment, tmp_path, capsys):
    copy = tmp_path / "halfway"
    shutil.copytree(made_experiment, copy)
    for name in ("trials.csv", "history.csv", "best.json", "best_model.pt"):
        (copy / name).unlink()
    lines = (copy / "record.jsonl").read_text().splitlines()
    (copy / "record.jsonl").write_text("\n".join(lines[:-5]) + "\n")  # aaa's end and all of ccc never happened
    shutil.rmtree(copy / "trial_ccc33333")  # nor its checkpoints (else the record would read as cut short)
    # A sweep process that died without a word: state says running, its pid is gone.
    (copy / "state.json").write_text(json.dumps({"state": "running", "pid": 2**22 + 7, "host": socket.gethostname()}))
    exp = tuner.load_experiment(copy)
    assert exp.state == "interrupted" and len(exp.trials) == 2
    assert exp.trials.set_index("trial_id").loc["aaa11111", "status"] == "completed"  # all its epochs are in
    code, out, _ = run(capsys, "results", copy)
    assert code == 0 and "interrupted" in out


def test_report_writes_markdown_and_figures(made_experiment, tmp_path, capsys):
    copy = tmp_path / "made"
    shutil.copytree(made_experiment, copy)
    code, out, _ = run(capsys, "report", copy)
    assert code == 0
    text = (copy / "report.md").read_text()
    assert "early stopping saved" in text and "Best trial aaa11111" in text and "| validation SSIM |" in text
    for figure in ("val_loss.png", "val_psnr.png", "val_ssim.png", "params.png", "samples.png"):
        assert (copy / figure).stat().st_size > 1000, figure
        assert f"({figure})" in text


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_export_round_trip(made_experiment, tmp_path, capsys, fmt):
    code, out, err = run(capsys, "export", made_experiment, "--format", fmt, "--out", tmp_path)
    assert code == 0, err
    assert "verified on 32 held-out images" in out and "PSNR against the teacher" in out
    exported = load_exported(tmp_path / FORMATS[fmt].file_name())
    original = tuner.load_model(made_experiment / "best_model.pt")
    x = torch.rand(5, 3, 32, 32)  # a batch size the export never saw
    with torch.no_grad():
        assert torch.allclose(exported(x), original(x), atol=1e-4)
    assert [p.name for p in tmp_path.iterdir()] == [FORMATS[fmt].file_name()]  # nothing half-written left beside it


def test_export_never_overwrites_without_force(made_experiment, tmp_path, capsys):
    assert run(capsys, "export", made_experiment, "--out", tmp_path)[0] == 0
    first = (tmp_path / "model.pt").read_bytes()
    code, _, err = run(capsys, "export", made_experiment, "--out", tmp_path)
    assert code == 2 and "already exists; pass --force" in err
    code, out, _ = run(capsys, "export", made_experiment, "--out", tmp_path, "--trial", "bbb22222")
    assert code == 0 and "model-bbb22222.pt" in out  # another trial gets a name of its own
    assert (tmp_path / "model.pt").read_bytes() == first
    assert run(capsys, "export", made_experiment, "--out", tmp_path, "--force")[0] == 0


def test_evaluate_experiment_and_exported_model(made_experiment, tmp_path, capsys):
    code, out, _ = run(capsys, "evaluate", made_experiment, "--dataset", "synthetic", "--size", "64")
    assert code == 0 and "64 images" in out and "PSNR" in out
    run(capsys, "export", made_experiment, "--format", "onnx", "--out", tmp_path)
    code, out, _ = run(capsys, "evaluate", tmp_path / "model.onnx", "--dataset", "synthetic", "--size", "64")
    assert code == 0 and "model.onnx" in out


def test_evaluate_says_how_far_it_got(made_experiment, capsys, monkeypatch):
    from tuner.inference import evaluate

    monkeypatch.setattr(evaluate, "PROGRESS_SECONDS", 0.0)  # every batch of 1024, not every 5 s
    code, out, _ = run(capsys, "evaluate", made_experiment, "--dataset", "synthetic", "--size", "2100")
    assert code == 0 and "2100 images of synthetic" in out, out
    assert "scored 1024/2100 images" in out and "scored 2048/2100 images" in out, out


def test_the_best_trial_may_be_one_any_scheduler_cut(made_experiment):
    from tuner.results.tables import _best

    trials = tuner.load_experiment(made_experiment).trials.copy()
    trials["status"] = ["hyperband", "median", "error"]  # sorted by val_loss: the first is the best
    assert _best(trials)["trial_id"] == trials.iloc[0]["trial_id"]
    trials["status"] = ["error", "median", "completed"]
    assert _best(trials)["trial_id"] == trials.iloc[1]["trial_id"]


def damaged_copy(made_experiment, tmp_path, edit) -> tuple:
    """A copy of the made experiment whose record lines went through `edit`; returns (copy, its lines)."""
    copy = tmp_path / "made"
    shutil.copytree(made_experiment, copy)
    lines = edit((copy / "record.jsonl").read_text().splitlines(keepends=True))
    (copy / "record.jsonl").write_text("".join(lines))
    return copy, lines


def without_epoch(lines):
    doc = json.loads(lines[1])  # aaa's first epoch
    del doc["epoch"]
    return [lines[0], json.dumps(doc) + "\n", *lines[2:]]


@pytest.mark.parametrize(
    "edit, line, what",
    [
        (without_epoch, 2, "an epoch line without `epoch`"),
        (lambda lines: [*lines[:3], "{not json\n", *lines[3:]], 4, "not JSON"),
        (lambda lines: [*lines[:3], '{"event": "epoch"}\n', *lines[3:]], 4, "no trial_id"),
    ],
)
def test_a_damaged_record_says_where_in_one_line(made_experiment, tmp_path, capsys, edit, line, what):
    copy, _ = damaged_copy(made_experiment, tmp_path, edit)
    trials, damage = record.scan(copy)
    assert damage == [record.Damage(line, what)] and set(trials) == {"aaa11111", "bbb22222", "ccc33333"}
    with pytest.raises(record.RecordError, match=f"record.jsonl is damaged at line {line} "):
        record.read(copy)
    code, out, err = run(capsys, "results", copy)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("tuner: error: ") and f"damaged at line {line}" in err


@pytest.mark.parametrize("ending", ["", "\n"])  # cut short, or its newline flushed first
def test_a_last_line_cut_short_is_skipped_and_the_next_line_starts_clean(made_experiment, tmp_path, ending):
    copy, lines = damaged_copy(made_experiment, tmp_path, lambda lines: [*lines[:-1], lines[-1][:25] + ending])
    trials, damage = record.scan(copy)
    assert damage == [] and trials["ccc33333"].outcome is None  # its end was being written when the driver died
    record.append(copy, "end", "ccc33333", outcome="terminated")  # a resumed sweep goes on writing
    assert record.read(copy)["ccc33333"].outcome == "terminated"
    assert (copy / "record.jsonl").read_text().splitlines()[-2] == lines[-2].rstrip("\n")


def test_a_missing_record_is_damage_only_where_trials_ran(made_experiment, tmp_path):
    copy, _ = damaged_copy(made_experiment, tmp_path, lambda lines: lines)
    (copy / "record.jsonl").unlink()
    with pytest.raises(record.RecordError, match="record.jsonl is missing .*3 trial folders"):
        record.read(copy)
    for folder in copy.glob("trial_*"):
        shutil.rmtree(folder)
    assert record.scan(copy) == ({}, [])  # a sweep that had not started a trial yet


def test_results_sort_by_a_metrics_short_name(made_experiment, capsys):
    code, out, _ = run(
        capsys, "results", made_experiment, "--sort", "ssim", "--columns", "trial_id,ssim", "--format", "csv"
    )
    rows = [line.split(",") for line in out.strip().splitlines()]
    assert code == 0 and rows[0] == ["trial_id", "val_ssim"]
    scores = [float(r[1]) for r in rows[1:]]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 3 and -1 <= scores[-1] < scores[0] <= 1


def test_an_experiment_recorded_before_ssim_still_reads(tmp_path, capsys):
    legacy = tmp_path / "legacy"
    shutil.copytree(FIXTURES / "legacy_experiment", legacy)
    exp = tuner.load_experiment(legacy)
    assert exp.best["trial_id"] == "30510a54" and exp.best["metrics"]["val_psnr"] == pytest.approx(6.1096, abs=1e-4)
    assert exp.trials["val_ssim"].isna().all() and exp.history["val_ssim"].isna().all() and len(exp.history) == 4
    code, out, _ = run(capsys, "results", legacy, "--sort", "ssim", "--format", "csv")
    assert code == 0 and out.splitlines()[0].startswith("trial_id,status,epochs,val_psnr,val_ssim,val_loss")


def test_a_table_write_that_is_interrupted_leaves_the_file_as_it_was(tmp_path):
    from tuner.core.files import replaced

    path = tmp_path / "trials.csv"
    path.write_text("trial_id\nold\n")
    with pytest.raises(KeyboardInterrupt), replaced(path) as temp:
        temp.write_text("trial_id\nha")
        raise KeyboardInterrupt  # a second Ctrl-C while the tables are written
    assert path.read_text() == "trial_id\nold\n" and list(tmp_path.iterdir()) == [path]
    with replaced(path) as temp:
        temp.write_text("trial_id\nnew\n")
    assert path.read_text() == "trial_id\nnew\n" and list(tmp_path.iterdir()) == [path]


def test_best_json_is_strict_json_with_null_for_what_was_not_measured(made_experiment, tmp_path):
    copy = tmp_path / "made"
    shutil.copytree(made_experiment, copy)
    with open(copy / "record.jsonl") as f:
        lines = f.read().splitlines()
    epoch = next(i for i, line in enumerate(lines) if '"aaa11111"' in line and '"epoch": 2' in line)
    doc = json.loads(lines[epoch])
    lines[epoch] = json.dumps({**doc, "images_per_s": float("nan")})  # what a trial that was not timed reports
    (copy / "record.jsonl").write_text("\n".join(lines) + "\n")
    tables.summarise(copy)
    text = (copy / "best.json").read_text()
    best = json.loads(text, parse_constant=lambda name: pytest.fail(f"best.json holds a bare {name}"))
    assert best["trial_id"] == "aaa11111" and best["metrics"]["images_per_s"] is None


def test_a_record_cut_at_a_line_boundary_is_damage_when_a_trial_it_lost_has_checkpoints(made_experiment, tmp_path):
    """Lines gone from the end are not a killed driver's cut line: the trials they named still have folders."""
    copy, _ = damaged_copy(made_experiment, tmp_path, lambda lines: lines[:3])  # aaa's start and two epochs
    with pytest.raises(record.RecordError, match=r"is cut short \(trial_bbb22222 has checkpoints, but no line"):
        record.read(copy)
    assert main(["results", str(copy)]) == 2
