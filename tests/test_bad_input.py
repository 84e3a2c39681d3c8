"""Bad input of every kind ends in one line, `tuner: error: <what>; <what to do>`, exit 2, and loses nothing.

One table, ROWS: each row is argv (with {tmp}, {made} and {storage} filled in) and the files to create
first, and the fragment the one line must hold. Everything here is refused before Ray would start, so
it runs fast: a sweep that got as far as connecting to Ray fails the test instead of starting it.
"""

from __future__ import annotations

import csv
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from tuner.cli.main import main
from tuner.core.constants import OPTUNA_DB
from tuner.results.dashboard import study_url
from tuner.run.sweep import SweepOutcome

LONG = "a" * 300  # a name longer than the 255 bytes a file name may have
SWEEP = ("sweep", "--storage", "{tmp}/s", "--name", "x", "--dataset", "synthetic")
GARBAGE = bytes(range(256)) * 8  # not UTF-8, not JSON, not SQLite


def space(fixed: str = "batch_size: 32", params: str = "lr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}") -> str:
    if fixed.startswith("lr:"):  # searched and fixed at once is another error
        params = "init_scale: {type: loguniform, low: 0.1, high: 3.0}"
    return f"params:\n  {params}\nfixed:\n  {fixed}\n"


def row(argv: tuple[str, ...], fragment: str, files: dict[str, str | bytes] | None = None, id: str = ""):
    return pytest.param(argv, fragment, files or {}, id=id or fragment[:40])


ROWS = [
    # sweep flags
    row((*SWEEP, "--min-delta", "-1"), "--min-delta must be a relative improvement in [0, 1)"),
    row((*SWEEP, "--scheduler", "pbt", "--searcher", "random", "--concurrency", "1"), "compares trials that run at"),
    row((*SWEEP, "--cpus-per-trial", "inf"), "--cpus-per-trial must be a finite number, got inf"),
    row((*SWEEP, "--seed", "-1"), "--seed must be 0 or more, got -1; pass a whole number from 0 to 4294967295"),
    row((*SWEEP, "--seed", str(2**64 + 1)), "--seed must be at most 4294967295"),
    row((*SWEEP, "--concurrency", "-3"), "--concurrency must be at least 1"),
    row((*SWEEP, "--max-failures", "-1"), "--max-failures must be 0 or more"),
    row((*SWEEP, "--num-samples", "0"), "--num-samples must be at least 1"),
    row((*SWEEP, "--grace-period", "9"), "exceeds --max-epochs"),
    row((*SWEEP, "--train-size", "100000000"), "lower --train-size and --val-size to at most"),
    row((*SWEEP, "--dataset", "imagenet"), "unknown dataset 'imagenet'"),
    row((*SWEEP, "--pareto", "--searcher", "cmaes"), "--searcher cmaes searches one objective, and --pareto asks"),
    row((*SWEEP, "--pareto", "--scheduler", "pbt", "--searcher", "random"), "cannot search --pareto's two objectives"),
    row((*SWEEP, "--dataset", "folder:/nonexistent"), "image folder /nonexistent does not exist"),
    row((*SWEEP, "--dataset", "folder:"), "image folder (none given) does not exist"),
    row((*SWEEP, "--name", "a/b"), "must be a plain directory name"),
    row((*SWEEP, "--name", "x*"), "--name 'x*' is not a plain name; use letters, digits"),
    row((*SWEEP, "--name", ".hidden"), "--name '.hidden' is not a plain name", id="hidden name"),
    row((*SWEEP, "--name", "two words"), "--name 'two words' is not a plain name", id="name with a space"),
    row((*SWEEP, "--name", LONG), "--name is 300 bytes long, over the 255 of a file name"),
    row((*SWEEP, "--storage", f"{{tmp}}/{LONG}"), "--storage has a part 300 bytes long"),
    row((*SWEEP, "--storage", "{tmp}/a-file"), "is a file, not a directory", {"a-file": ""}),
    # search space files
    row((*SWEEP, "--space", "nope"), "unknown search space 'nope'"),
    row((*SWEEP, "--space", "{tmp}/s.yaml"), "not a text file", {"s.yaml": GARBAGE}, "binary space"),
    row((*SWEEP, "--space", "{tmp}/s.bin"), "not a text file", {"s.bin": GARBAGE}, "binary space, any name"),
    row((*SWEEP, "--space", "{tmp}/s.yaml"), "too large for a search space", {"s.yaml": "#" * 2**21}),
]
# A bad value for every field of ModelConfig and TrainConfig, fixed or as a searched range: refused before Ray.
BAD_VALUES = {
    "batch_size: -32": "batch_size is -32, out of range",
    'hidden: "many"': "hidden is 'many', not a whole number",
    "hidden: 0": "hidden is 0, out of range",
    "hidden: 1000000": "hidden is 1000000, out of range; give a whole number from 1 to 16384",
    "hidden: 64.5": "hidden is 64.5, not a whole number",
    "lr: -1.0e-3": "lr is -0.001, out of range; give a number above 0",
    "lr: .nan": "lr is nan, not a finite number",
    "negative_slope: 2": "negative_slope is 2, out of range",
    "init_scale: 0": "init_scale is 0, out of range; give a number above 0",
    "weight_decay: -1": "weight_decay is -1, out of range",
    "warmup_frac: 1.5": "warmup_frac is 1.5, out of range",
    "bf16: maybe": "bf16 is 'maybe', not true or false",
    "channels_last: 3": "channels_last is 3, not true or false",
    "optimizer: rmsprop": "optimizer 'rmsprop' is unknown",
    "schedule: cosine": "schedule 'cosine' is unknown",
}
ROWS += [
    row((*SWEEP, "--space", "{tmp}/s.yaml"), f"fixed settings: {message}", {"s.yaml": space(fixed)}, f"fixed {fixed}")
    for fixed, message in BAD_VALUES.items()
]
BAD_RANGES = {
    "batch_size: {type: int, low: -5, high: 64}": "parameter 'batch_size' (int): batch_size is -5, out of range",
    "hidden: {type: uniform, low: 8, high: 64}": "parameter 'hidden' (uniform): hidden is 8.0, not a whole number",
    "lr: {type: uniform, low: -1, high: 1}": "parameter 'lr' (uniform): lr is -1, out of range",
    "warmup_frac: {type: uniform, low: 0.1, high: 3}": "parameter 'warmup_frac' (uniform): warmup_frac is 3",
    "optimizer: {type: choice, values: [adam, rmsprop]}": "parameter 'optimizer' (choice): optimizer 'rmsprop'",
}
ROWS += [
    row((*SWEEP, "--space", "{tmp}/s.yaml"), message, {"s.yaml": space("schedule: constant", params)}, params[:30])
    for params, message in BAD_RANGES.items()
]
ROWS += [
    row(
        (*SWEEP, "--space", "{tmp}/s.yaml"),
        "start point lr: -0.5 is outside its range (0.0001 to 0.01)",
        {"s.yaml": space() + "start:\n  - {lr: -0.5}\n"},
    ),
    row(  # a valid learning rate, outside the range searched: Optuna would warn and train it anyway
        (*SWEEP, "--space", "{tmp}/s.yaml"),
        "start point lr: 9.0 is outside its range (0.0001 to 0.01); move the point inside",
        {"s.yaml": space() + "start:\n  - {lr: 9.0}\n"},
    ),
    row(  # nan compares false with everything: it was read as a range whose low is not below its high
        (*SWEEP, "--space", "{tmp}/s.yaml"),
        "parameter 'lr': low is nan, not a finite number",
        {"s.yaml": space(params="lr: {type: loguniform, low: .nan, high: 1.0e-2}")},
        "nan bound",
    ),
    row(
        (*SWEEP, "--space", "{tmp}/s.yaml"),
        "parameter 'lr': high is inf, not a finite number",
        {"s.yaml": space(params="lr: {type: uniform, low: 1.0e-4, high: .inf}")},
        "inf bound",
    ),
    row(
        (*SWEEP, "--space", "{tmp}/s.yaml"),
        "start point lr: nan is not a finite number; give a number from 0.0001 to 0.01",
        {"s.yaml": space() + "start:\n  - {lr: .nan}\n"},
        "nan start point",
    ),
    row((*SWEEP, "--space", "/dev/null"), "search space file /dev/null is not a regular file", id="space a device"),
    row((*SWEEP, "--dataset", "folder:{tmp}/a-file"), "is not a directory; pass --dataset folder:PATH", {"a-file": ""}),
    row(
        (*SWEEP, "--dataset", "cifar10", "--data-dir", "{tmp}/a-file"),
        "the CIFAR-10 directory",
        {"a-file": ""},
        "data-dir a file",
    ),
    row(("results", "x", "--storage", "{tmp}/a-file"), "--storage", {"a-file": ""}, "results --storage a file"),
    row(("sweep", "--resume", "x", "--storage", "{tmp}/a-file"), "is a file; pass the directory", {"a-file": ""}),
    row(("export", "{made}", "--out", "{tmp}/out", "--fastest-above", "nan"), "'nan' is not a finite number"),
    row(("benchmark", "{made}", "--dataset", ""), "argument --dataset: is empty", id="benchmark dataset empty"),
    row(
        ("benchmark", "{made}", "--quick", "--artifact", "{tmp}/a-file"),
        "--quick leaves out; drop --quick",
        {"a-file": ""},
        "artifact with --quick",
    ),
    row((*SWEEP, "--num-samples", str(10**30)), "--num-samples must be at most 100000", id="num-samples 10**30"),
    row(("sweep", "--storage", "", "--name", "x"), "argument --storage: is empty; pass a directory or a URI"),
    row((*SWEEP, "--address", " "), "argument --address: is empty; pass HOST:PORT or auto"),
    row(("list", "--storage", ""), "argument --storage: is empty; pass a directory", id="list --storage empty"),
    row(("export", "x", "--out", ""), "argument --out: is empty; pass a directory"),
    row((*SWEEP, "--space", ""), "argument --space: is empty; pass a search space name or a YAML file"),
    row((*SWEEP, "--space", "{tmp}"), "is a directory; pass a YAML file or one of:", id="--space a directory"),
    row((*SWEEP, "--max-epochs", "100001"), "--max-epochs must be at most 100000", id="max-epochs 100001"),
    # reading experiments: names, storage, damaged files
    row(("results", "nope", "--storage", "{storage}"), "no experiment 'nope'"),
    row(("results", LONG, "--storage", "{storage}"), "no experiment 'aaaa"),
    row(("list", "--storage", f"{{tmp}}/{LONG}"), "does not exist"),
    row(("list", "--storage", "{tmp}/a-file"), "is a file", {"a-file": ""}),
    row(("list", "--storage", "{tmp}/nowhere"), "does not exist"),
    row(("dashboard", LONG, "--storage", "{storage}"), "no experiment 'aaaa"),
    row(("results", "{made}"), "sweep.json cannot be read", {"results/made/sweep.json": '{"name": "ma'}),
    row(("results", "{made}"), "sweep.json cannot be read (a JSON list", {"results/made/sweep.json": "[]"}),
    row(("results", "{made}"), "sweep.json cannot be read", {"results/made/sweep.json": GARBAGE}, "binary json"),
    row(
        ("results", "{made}"),
        "sweep.json cannot be read (--train-size must be a whole number, got 'many')",
        {"results/made/sweep.json": json.dumps({"name": "made", "train_size": "many"})},
    ),
    row(
        ("sweep", "--resume", "made", "--storage", "{storage}"),
        "sweep.json cannot be read (--seed must be at most 4294967295",
        {"results/made/sweep.json": json.dumps({"name": "made", "seed": 2**70})},
    ),
    row(("report", "{made}"), "optuna.db is damaged (file is not a database)", {f"results/made/{OPTUNA_DB}": GARBAGE}),
    row(
        ("dashboard", "{made}"), "optuna.db is damaged (file is not a database)", {f"results/made/{OPTUNA_DB}": GARBAGE}
    ),
    row(("dashboard", "{made}", "--port", "70000"), "70000 is above 65535"),
    # models and flags of the other commands
    row(("results", "{made}", "--sort", "colour"), "cannot sort by 'colour'"),
    row(("results", "{made}", "--status", "great"), "unknown status"),
    row(("results", "{made}", "--columns", ""), "argument --columns: '' has an empty name", id="columns empty"),
    row(("results", "{made}", "--status", "completed,,error"), "has an empty name; pass comma-separated statuses"),
    row(("export", "{made}", "--trial", "xyz", "--out", "{tmp}/out"), "has no trial 'xyz'"),
    row(("export", "{made}", "--out", "{tmp}/out", "--images", "0"), "below 1"),
    row(("export", "{made}", "--out", "{tmp}/out", "--images", "-1"), "below 1"),
    row(("benchmark", "{made}", "--batch-sizes", "abc"), "'abc' is not a whole number"),
    row(("benchmark", "{made}", "--min-run-time", "-1"), "-1 is not a finite number above 0"),
    row(("benchmark", "{made}", "--min-run-time", "inf"), "inf is not a finite number above 0", id="min-run-time inf"),
    row(("sweep", "--resume", ""), "argument --resume: is empty", id="resume empty"),
    row(("export", "{made}", "--out", f"{{tmp}}/{LONG}"), "a path is too long for this system", id="long --out"),
    row((*SWEEP, "--dataset", f"folder:{{tmp}}/{LONG}"), "a path is too long", id="long image folder"),
    row(("evaluate", "{tmp}/missing.pt", "--size", "8"), "neither a model file nor an experiment"),
    row(("evaluate", LONG), "neither a model file nor an experiment"),
    row(("evaluate", "{made}", "--seed", "-5"), "--seed must be 0 or more, got -5"),
    row(("evaluate", "{made}", "--seed", str(2**64)), "--seed must be at most 4294967295"),
    row(("evaluate", "{made}", "--size", str(10**12)), "lower --size to at most"),
]


@pytest.fixture(autouse=True)
def _ray_never_starts(monkeypatch):
    """Every row is refused before Ray: one that gets as far as connecting fails here instead of starting it."""

    def refuse(*args, **kwargs):
        raise AssertionError("the sweep got as far as starting Ray; it should have been refused before")

    monkeypatch.setattr("tuner.run.sweep._connect_and_check", refuse)


def run(capsys, *argv):
    capsys.readouterr()  # what the test itself printed before (a warning) is not the command's
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(capsys, pattern: str, *argv) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    assert err.startswith("tuner: error: ") and err.count("\n") == 1, err
    assert "; " in err, err  # what is wrong; what to do
    assert pattern in err, err
    return err


@pytest.fixture
def copy(made_experiment, tmp_path) -> Path:
    target = tmp_path / "results" / "made"
    shutil.copytree(made_experiment, target)
    return target


@pytest.mark.parametrize("argv, fragment, files", ROWS)
def test_bad_input_gets_one_line(made_experiment, tmp_path, capsys, argv, fragment, files):
    made = tmp_path / "results" / "made"
    if any("{made}" in a or "{storage}" in a for a in argv) or any(f.startswith("results/made") for f in files):
        shutil.copytree(made_experiment, made)
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        getattr(tmp_path / name, "write_bytes" if isinstance(content, bytes) else "write_text")(content)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    filled = [a.format(tmp=tmp_path, made=made, storage=made.parent) for a in argv]
    one_line(capsys, fragment, *filled)
    assert not (tmp_path / "s").exists()  # a refused sweep leaves no experiment behind
    assert not (tmp_path / "out").exists()  # nothing unverified exported
    changed = [p for p, t in before.items() if not p.exists() or p.stat().st_mtime_ns != t]
    assert changed == [], changed  # nothing a user made is lost or changed


def test_a_port_in_use_gets_one_line(made_experiment, tmp_path, capsys):
    import optuna

    exp = Path(shutil.copytree(made_experiment, tmp_path / "made"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name=exp.name, storage=study_url(exp))
    with socket.socket() as taken:  # a real server socket on 127.0.0.1 holds the port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_line(capsys, f"cannot serve on 127.0.0.1:{port}", "dashboard", exp, "--port", port)


def test_list_shows_every_experiment_and_marks_the_damaged_ones(made_experiment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = Path("results")  # relative, as the default
    for name in ("good", "bad-settings", "bad-record", "no-settings"):
        shutil.copytree(made_experiment, storage / name)
    (storage / "bad-settings" / "sweep.json").write_text('{"name": "bad-sett')
    (storage / "bad-record" / "record.jsonl").write_bytes(GARBAGE)
    (storage / "no-settings" / "sweep.json").unlink()
    code, out, err = run(capsys, "list", "--storage", storage, "--format", "json")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["good"]["state"] == "finished" and rows["good"]["trials"] == 3
    assert rows["bad-settings"]["state"].startswith("damaged: sweep.json cannot be read")
    assert rows["no-settings"]["state"] == "damaged: sweep.json cannot be read (No such file or directory)"
    for argv in (("results", "no-settings"), ("sweep", "--resume", "no-settings")):  # found, and said to be damaged
        one_line(capsys, "no-settings/sweep.json cannot be read (No such file or directory)", *argv)
    assert rows["bad-record"]["state"].startswith("damaged: ")
    assert "/" not in rows["bad-settings"]["state"]  # short: the experiment's path is its row


def test_export_into_a_place_that_cannot_be_written(made_experiment, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    one_line(capsys, "cannot write to", "export", made_experiment, "--out", blocker / "sub")
    one_line(capsys, "is a file, not a directory", "export", made_experiment, "--out", blocker)
    if Path("/dev/full").exists():  # a device, not a directory: refused, not "File exists"
        one_line(capsys, "--out /dev/full is a file, not a directory", "export", made_experiment, "--out", "/dev/full")


def test_export_before_any_epoch_says_what_to_do(copy, tmp_path, capsys):
    starts = [line for line in (copy / "record.jsonl").read_text().splitlines(True) if '"event": "start"' in line]
    (copy / "record.jsonl").write_text("".join(starts))
    (copy / "state.json").write_text(json.dumps({"state": "interrupted"}))
    one_line(
        capsys,
        "no trial that finished an epoch; continue it with `tuner sweep --resume made`",
        "export",
        copy,
        "--out",
        tmp_path,
    )


def test_damaged_and_missing_checkpoints(copy, tmp_path, capsys):
    (copy / "best_model.pt").write_bytes(b"")
    one_line(capsys, "is corrupt", "evaluate", copy / "best_model.pt", "--size", "8")
    for ckpt in copy.glob("trial_aaa11111/checkpoint_*/checkpoint.pt"):
        ckpt.write_bytes(b"")  # 0 bytes: a disk that filled up
    one_line(capsys, "/checkpoint.pt is corrupt", "export", copy, "--out", tmp_path / "out" / "deeper")  # named
    assert not (tmp_path / "out").exists()  # a failed export takes away the directories it made
    for ckpt in copy.glob("trial_*/checkpoint_*"):
        shutil.rmtree(ckpt)
    one_line(capsys, "has no checkpoint on disk", "export", copy, "--out", tmp_path / "out")
    one_line(capsys, "has no checkpoint on disk", "benchmark", copy, "--device", "cpu")


def test_an_experiment_without_finished_trials(copy, tmp_path, capsys):
    starts = [line for line in (copy / "record.jsonl").read_text().splitlines() if '"event": "start"' in line]
    (copy / "record.jsonl").write_text("\n".join(starts) + "\n")  # every trial started, none reported an epoch
    one_line(capsys, "no trial that finished an epoch", "export", copy, "--out", tmp_path / "out")


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


def test_a_folder_with_files_that_are_not_images(made_experiment, tmp_path, capsys, caplog, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"\x89PNG but not really")
    Image.new("RGB", (200, 200)).save(folder / "bomb.png")  # 40,000 pixels, over the limit set below
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    one_line(capsys, "holds 0 readable images", "evaluate", made_experiment, "--dataset", f"folder:{folder}")
    for i in range(3):
        Image.new("RGB", (40, 40), (i * 60, 90, 200)).save(folder / f"ok{i}.png")
    code, out, _ = run(capsys, "evaluate", made_experiment, "--dataset", f"folder:{folder}")
    assert code == 0 and "3 images" in out  # every good image counts; the broken one and the bomb are skipped...
    warned = [r.getMessage() for r in caplog.records if "skipped 2 file(s)" in r.getMessage()]
    assert warned and "broken.png" in warned[-1] and "bomb.png" in warned[-1]  # ...with a warning naming them


def test_hints_are_quoted_for_the_shell(tmp_path):
    outcome = SweepOutcome(tmp_path / "my exp", None, interrupted=True)
    assert outcome.command("sweep --resume") == f"tuner sweep --resume 'my exp' --storage {tmp_path}"


@pytest.mark.parametrize("damage", ["deleted", "empty", "cut short", "garbage", "a folder"])
def test_a_damaged_state_json_reads_the_state_from_the_record(copy, capsys, damage):
    # A finished sweep must not read as interrupted because state.json is gone: the record says all 3 ended.
    state = copy / "state.json"
    state.unlink(missing_ok=True)
    {
        "deleted": lambda: None,
        "empty": lambda: state.write_text(""),
        "cut short": lambda: state.write_text('{"state": "fini'),
        "garbage": lambda: state.write_bytes(b"\xff\xfe[1, 2]"),
        "a folder": lambda: state.mkdir(),
    }[damage]()
    why = f"state.json {'missing' if damage == 'deleted' else 'damaged'}; state from record.jsonl"
    code, out, _ = run(capsys, "results", copy)
    assert code == 0 and f"finished ({why})" in out, out
    code, out, _ = run(capsys, "list", "--storage", copy.parent, "--format", "csv")
    assert code == 0 and f"finished ({why})" in out, out
    assert json.loads((copy / "sweep.json").read_text())["name"] == "made"
    # One trial without its end: the sweep was interrupted, whatever state.json would have said.
    lines = (copy / "record.jsonl").read_text().splitlines()
    last_end = max(i for i, line in enumerate(lines) if '"event": "end"' in line)
    (copy / "record.jsonl").write_text("\n".join(lines[:last_end] + lines[last_end + 1 :]) + "\n")
    code, out, _ = run(capsys, "results", copy)
    assert code == 0 and f"interrupted ({why})" in out, out


def test_list_keeps_counts_whole_and_cuts_reasons_at_a_word(copy, capsys):
    (copy.parent / "broken").mkdir()
    (copy.parent / "broken" / "sweep.json").write_text('{"name": "broken", "num_samples": "' + "many " * 60 + '"}')
    code, out, _ = run(capsys, "list", "--storage", copy.parent, "--format", "csv")
    rows = {row["name"]: row for row in csv.DictReader(out.strip().splitlines())}
    assert code == 0 and rows["made"]["trials"] == "3", out  # not 3.0
    assert len(rows["made"]["best_val_psnr"].split(".")[1]) <= 2, out  # dB to two places
    reason = rows["broken"]["state"]
    assert reason.startswith("damaged: ") and reason.endswith("...") and len(reason) <= 100, reason
    assert reason[:-3].split()[-1] in ("many", "cannot", "be", "read"), reason  # cut between words
    for fmt in ("table", "markdown"):  # a damaged experiment's unknown counts: one mark, not <NA> and NaN
        code, out, _ = run(capsys, "list", "--storage", copy.parent, "--format", fmt)
        assert code == 0 and "<NA>" not in out and "NaN" not in out and "nan" not in out, out


def test_sigterm_is_ctrl_c_for_any_command(monkeypatch, capsys):
    import os
    import signal

    from tuner.cli import commands

    def killed(args):
        os.kill(os.getpid(), signal.SIGTERM)  # `timeout` or `kill` while the command prints
        time.sleep(10)
        return 0

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(commands, "cmd_list", killed)
    assert main(["list"]) == 130 and capsys.readouterr().err == "tuner: interrupted\n"
    assert signal.getsignal(signal.SIGTERM) is before  # a Python caller's handler is back


def test_a_signal_while_python_exits_ends_at_once_without_a_traceback():
    # Every file written, every line printed; then Ctrl-C lands in an exit hook (torch's, Ray's).
    code = (
        "import atexit, os, signal\n"
        "from tuner.cli import main as cli\n"
        "cli.main = lambda: print('the table') or 0\n"
        "atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))\n"
        "cli.run()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130 and done.stderr == "tuner: interrupted\n", done.stderr
    assert done.stdout == "the table\n"  # printed into a pipe's buffer, written out before the exit


def test_a_closed_pipe_ends_quietly_and_an_overlong_path_in_one_line(monkeypatch, capfd):
    """Both are OSErrors caught in main(): `tuner list | head` must stay exit 141 without a word."""
    import errno
    import os

    from tuner.cli import commands

    def closed(args):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    saved = os.dup(1)  # main() points stdout at /dev/null after a broken pipe
    try:
        monkeypatch.setattr(commands, "cmd_list", closed)
        assert main(["list"]) == 141 and capfd.readouterr().err == ""
    finally:
        os.dup2(saved, 1)
        os.close(saved)

    def overlong(args):
        raise OSError(errno.ENAMETOOLONG, "File name too long")

    monkeypatch.setattr(commands, "cmd_list", overlong)
    assert main(["list"]) == 2
    assert capfd.readouterr().err.startswith("tuner: error: a path is too long for this system")


def test_a_long_message_from_another_library_is_cut_at_a_word():
    from tuner.core.errors import first_line

    line = first_line(OSError("during HeadBucket operation: " + "curlCode 7 " * 30), 60)
    assert len(line) <= 60 and line.endswith("...") and line.removesuffix("...").split()[-1] in ("curlCode", "7")
    assert first_line(ValueError("short\nsecond line")) == "short"
    assert first_line(ValueError("x" * 300), 50) == "x" * 47 + "..."  # one long word: cut where it must be
