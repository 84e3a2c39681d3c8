"""Export formats from their one registry, and bad input to export, evaluate and benchmark in one line each.

Fast, no Ray, but the benchmark's batch sizes, which are checked against the memory of the Ray node they
would run on (slow: real Ray in a child process with a RAY_TMPDIR of its own), and its workers against the
nodes (slow: the test session's Ray).
"""

from __future__ import annotations

import io
import re

import pytest
import torch
from test_bad_input import copy, one_line  # noqa: F401  (copy is a fixture)
from test_ray_bounds import env_with, last_line, ray_tmp, tuner  # noqa: F401  (ray_tmp is a fixture)

import tuner as package
from tuner.cli.main import main
from tuner.core.errors import CheckpointError, ClusterError, SettingsError
from tuner.inference.benchmark import GIB, BenchmarkOptions, bytes_per_image, check_memory
from tuner.inference.export import export_model, max_abs_diff
from tuner.inference.formats import CHECKPOINT, FORMATS, format_of, load_exported
from tuner.learn.checkpoints import load_model_file
from tuner.learn.synthetic import synthetic_images


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_registered_format_round_trips(made_experiment, tmp_path, name):
    """export -> load (from the file, picked by its suffix, and from its bytes) -> the checkpoint's outputs."""
    fmt = FORMATS[name]
    checkpoint = made_experiment / "best_model.pt"
    report = export_model(checkpoint, name, tmp_path, synthetic_images(8, 1))
    assert report.path.name == fmt.file_name() and format_of(report.path) is fmt
    model = load_model_file(checkpoint)
    images = synthetic_images(5, 2)  # a batch size the export never saw
    assert max_abs_diff(load_exported(report.path), model, images) <= fmt.tolerance
    assert max_abs_diff(fmt.load(report.path.read_bytes(), "cpu", 1).eval(), model, images) <= fmt.tolerance
    assert fmt.file_name("abc").startswith("model-abc") and fmt.file_name("abc").endswith(fmt.suffix)


def test_the_longest_suffix_names_the_format():
    assert format_of("a/model.torchscript.pt") is FORMATS["torchscript"]
    assert format_of("model.pt") is CHECKPOINT and format_of("some/checkpoint_000001") is CHECKPOINT
    assert len({f.suffix for f in FORMATS.values()}) == len(FORMATS)  # a suffix names one format


def test_a_two_byte_checkpoint_is_refused_in_one_line(copy, tmp_path, capsys):  # noqa: F811
    broken = tmp_path / "two.pt"
    broken.write_bytes(b"ab")  # torch's safe unpickler: IndexError
    with pytest.raises(CheckpointError, match="is corrupt or not a tuner checkpoint"):
        package.load_model(broken)
    one_line(capsys, "is corrupt or not a tuner checkpoint", "evaluate", broken, "--size", "8")
    (copy / "best_model.pt").write_bytes(b"ab")
    for ckpt in copy.glob("trial_aaa11111/checkpoint_*/checkpoint.pt"):
        ckpt.write_bytes(b"ab")
    one_line(capsys, "is corrupt or not a tuner checkpoint", "export", copy, "--out", tmp_path / "out")


class _NotATensor:  # a checkpoint holding it is refused by torch's safe loader
    pass


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda f: f.write_text("hello\n"), "not a file torch.save wrote"),
        (lambda f: f.write_bytes(b"\x80\x02garbage"), "a damaged or truncated pickle"),
        (lambda f: torch.save({"a": _NotATensor()}, f), "a safe load refuses"),
        (lambda f: f.write_bytes(_saved_bytes()[:300]), "a damaged or truncated PyTorch archive"),
    ],
    ids=["text", "pickle", "object", "truncated"],
)
def test_an_unreadable_model_file_says_what_it_is_in_a_short_line(tmp_path, capsys, make, why):
    broken = tmp_path / "m.pt"
    make(broken)
    err = one_line(capsys, "is corrupt or not a tuner checkpoint (", "evaluate", broken)
    assert why in err and len(err) - len(str(broken)) < 160 and "weights_only" not in err, err


def _saved_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(64)}, buffer)
    return buffer.getvalue()


def test_a_directory_in_place_of_the_export_is_refused_even_with_force(made_experiment, tmp_path, capsys):
    (tmp_path / "model.pt" / "inside").mkdir(parents=True)
    one_line(capsys, "is a directory", "export", made_experiment, "--out", tmp_path, "--force")
    assert [p.name for p in (tmp_path / "model.pt").iterdir()] == ["inside"]  # nothing of it touched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # and nothing half-written beside it


def test_more_images_than_are_held_out(made_experiment, tmp_path, capsys):
    err = one_line(
        capsys,
        "--images 100 asks for more held-out images",
        "export",
        made_experiment,
        "--out",
        tmp_path,
        "--images",
        "100",
    )
    assert "(32)" in err and "pass --images 32 or fewer" in err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
    assert main(["export", str(made_experiment), "--out", str(tmp_path), "--images", "32"]) == 0


def test_a_batch_that_does_not_fit_says_what_does(made_experiment):
    per_image = bytes_per_image(load_model_file(made_experiment / "best_model.pt"))
    assert per_image > 3 * 32 * 32 * 4 + 28 * 28 * 4  # activations besides input and output
    check_memory([1, 512], per_image, fixed=0, available=GIB, where="the node")  # fits: no error
    with pytest.raises(SettingsError) as refused:
        check_memory([1, 65_536], per_image, fixed=GIB // 2, available=GIB, where="the CPU worker's node")
    fits = (GIB - GIB // 2) // per_image
    assert "batch size 65,536 needs" in str(refused.value) and f"at most {fits:,}" in str(refused.value)
    with pytest.raises(SettingsError, match="free memory there"):
        check_memory([1], per_image, fixed=GIB, available=GIB, where="the node")


@pytest.mark.slow
def test_benchmark_batches_larger_than_the_node_are_refused_before_timing(made_experiment, ray_tmp, tmp_path):  # noqa: F811
    # 65,536 reached Ray's OOM killer on 24 GB; 100,000,000 fits nowhere (the arithmetic: the fast tests above).
    done = tuner(
        "benchmark", made_experiment, "--device", "cpu", "--quick", "--size", "64",
        "--batch-sizes", "1,65536,100000000", env=env_with(ray_tmp), cwd=tmp_path, timeout=240,
    )  # fmt: skip
    line = last_line(done)
    assert line.startswith("tuner: error: batch size ") and "on the CPU worker's node" in line, line
    most = int(line.rsplit("pass --batch-sizes of at most ", 1)[1].replace(",", ""))
    assert 1 <= most < 100_000_000, line  # what fits here (65,536 does not on 24 GiB: the fast tests above)
    assert "pass --batch-sizes of at most" in line and "Traceback" not in done.stderr
    assert not (made_experiment / "benchmark.csv").exists()  # nothing was timed, nothing written


@pytest.mark.slow
@pytest.mark.parametrize(
    "options, says",
    [
        (BenchmarkOptions(device="cpu", cpus=64), "the CPU benchmark worker asks for 64 CPUs"),
        pytest.param(
            BenchmarkOptions(device="gpu"),
            "--device gpu asks for a GPU, but no node of this Ray has one",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine's Ray has a GPU"),
        ),
    ],
)
def test_benchmark_workers_no_node_can_hold_are_refused_at_once(made_experiment, ray_local, options, says):
    """Ray would wait forever for them. (The sweep's trials: tests/test_cluster.py, on two nodes.)"""
    from tuner.run.benchmark import benchmark_named

    with pytest.raises(ClusterError, match=re.escape(says)):
        benchmark_named(str(made_experiment), options, size=64)
    assert not (made_experiment / "benchmark.csv").exists()
