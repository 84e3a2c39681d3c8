"""The inference benchmark on the CPU with tiny sizes, every row kind; GPU rows where a GPU exists."""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import pandas as pd
import pytest
import torch

from tuner.core.errors import CheckpointError, TunerError
from tuner.inference.benchmark import BenchmarkOptions, artifacts_of
from tuner.inference.rows import Measurement
from tuner.inference.table import COLUMNS, crossover, format_table, with_speedups, write_outputs
from tuner.inference.timing import WARMUP_CALLS, _exact_batch, flops_per_image, measure_device, time_call
from tuner.inference.variants import KINDS
from tuner.learn.checkpoints import load_checkpoint
from tuner.learn.synthetic import synthetic_images
from tuner.run.benchmark import run_benchmark

TINY = BenchmarkOptions(batch_sizes=(1, 4), min_run_time=0.01)


@pytest.fixture(scope="module")
def checkpoint():
    from tuner.core.configs import ModelConfig
    from tuner.learn.model import build_model

    model = build_model(ModelConfig(hidden=16))
    return {"model_config": model.config.to_dict(), "model": model.state_dict()}


def test_time_call_warms_up_before_it_times():
    calls = []
    median, spread = time_call(lambda: calls.append(1), min_run_time=0.01)
    assert len(calls) > WARMUP_CALLS and median > 0 and spread >= 0


def test_a_set_smaller_than_the_batch_is_repeated_to_fill_it():
    images = synthetic_images(3, 0)
    batch = _exact_batch(images, 8)
    assert len(batch) == 8 and torch.equal(batch[3:6], images) and _exact_batch(images, 2).shape[0] == 2


def test_flops_are_counted_from_the_layers(checkpoint):
    from tuner.learn.checkpoints import model_from_state

    # conv1 30x30x32x27, conv2 28x28x64x288, fc1 12544x16, fc2 16x784 multiply-adds, 2 FLOPs each
    expected = 2 * (30 * 30 * 32 * 27 + 28 * 28 * 64 * 288 + 12544 * 16 + 16 * 784)
    assert flops_per_image(model_from_state(checkpoint)) == expected


def test_cpu_eager_rows(checkpoint):
    rows, skipped = measure_device("cpu", checkpoint, synthetic_images(8, 0), TINY, threads=1)
    rows = pd.DataFrame(rows)
    assert list(rows["method"][:3]) == ["teacher per image", "teacher batched", "teacher as one matmul"]
    assert set(rows["method"][3:]) == {"model fp32"}  # the quick rows: as trained, at the worker's threads
    assert list(rows.loc[rows["method"] == "model fp32", "batch_size"]) == [1, 4]
    assert (rows["images_per_s"] > 0).all() and (rows["set_s"] > 0).all() and skipped == []
    assert rows.loc[rows["method"].str.startswith("teacher"), "psnr_db"].isna().all()


@pytest.mark.slow  # exports and compiles: tens of seconds on a 2-core machine
def test_every_row_kind_at_one_and_two_threads(made_experiment):
    """Artifacts as deployed and compiled models: positive throughput, the eager model's PSNR."""
    ckpt_path = made_experiment / "best_model.pt"
    images = synthetic_images(16, 1)
    artifacts = artifacts_of(ckpt_path, images, [])
    assert set(artifacts) == {"torchscript", "onnx"}
    options = replace(TINY, kinds=KINDS)
    rows, skipped = measure_device("cpu", load_checkpoint(ckpt_path), images, options, threads=2, artifacts=artifacts)
    rows = pd.DataFrame(rows)
    models = rows[~rows["method"].str.startswith("teacher")]
    kinds = {
        "model fp32",
        "model bf16 autocast",
        "model channels_last",
        "torchscript",
        "onnxruntime",
        "compiled",
        "compiled bf16 channels_last",
    }
    assert set(models["method"]) == kinds, skipped
    assert set(models["threads"]) == {1, 2} and len(models) == len(kinds) * 2 * 2
    assert (models["images_per_s"] > 0).all() and models["images_per_s"].map(math.isfinite).all()
    assert (models["gflop_s"] > 0).all() and (models["first_call_s"] > 0).all()
    eager = models.loc[models["method"] == "model fp32", "psnr_db"].iloc[0]
    full_precision = models[~models["method"].str.contains("bf16")]
    assert full_precision["psnr_db"].sub(eager).abs().max() < 0.01  # the same numbers, other runtimes
    assert models["psnr_db"].sub(eager).abs().max() < 0.5  # bf16 rounds; its PSNR column says by how much


def test_an_artifact_of_another_model_or_a_corrupt_file_is_refused(made_experiment, checkpoint, tmp_path):
    from tuner.learn.checkpoints import model_from_state

    other = tmp_path / "other.torchscript.pt"
    torch.jit.save(torch.jit.trace(model_from_state(checkpoint), torch.rand(2, 3, 32, 32)), str(other))
    best = made_experiment / "best_model.pt"
    with pytest.raises(TunerError, match="is not an export of this experiment's best model"):
        artifacts_of(best, synthetic_images(8, 1), [str(other)])
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="is not a loadable ONNX model"):
        artifacts_of(best, synthetic_images(8, 1), [str(corrupt)])


def test_a_measurement_makes_every_column_but_the_speedups():
    row = Measurement("cpu", "model fp32", 2, 8, seconds=0.5, spread=0.1, copy_s=0.5, psnr_db=30.0, flops_per_image=1e9)
    assert list(row.row(n_images=32)) == COLUMNS[:-2]
    assert row.row(32)["images_per_s"] == 16 and row.row(32)["images_per_s_with_copy"] == 8
    assert row.row(32)["set_s"] == 2 and row.row(32)["gflop_s"] == 16


def _table(rows: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["device", "method", "batch_size", "images_per_s"])
    return with_speedups(frame.assign(threads=1, set_s=1.0, spread=0.0, images_per_s_with_copy=1.0, psnr_db=math.nan))


def test_the_crossover_sentence_follows_from_the_table():
    frame = _table(
        [
            ("cpu", "teacher per image", 1, 10_000.0),
            ("cpu", "teacher batched", 2048, 75_000.0),
            ("cpu", "model fp32", 1, 400.0),
            ("cpu", "model fp32", 32, 1_200.0),
            ("cpu", "onnxruntime", 32, 2_000.0),
            ("cuda", "teacher batched", 8192, 14_600_000.0),
            ("cuda", "model fp32", 1, 2_000.0),
            ("cuda", "model fp32", 4, 12_000.0),
            ("cuda", "compiled", 4, 9_000.0),
            ("cuda", "model fp32", 8192, 1_180_000.0),
        ]
    )
    assert list(frame.columns) == COLUMNS
    assert crossover(frame) == {
        "cpu": "cpu: the model never beats the teacher applied image by image (best 0.20x at batch 32)",
        "cuda": "cuda: the model beats the teacher applied image by image from batch 4, and the batched teacher "
        "never (best 0.08x at batch 8192)",
    }
    faster = _table(
        [
            ("cpu", "teacher per image", 1, 10.0),
            ("cpu", "teacher batched", 64, 20.0),
            ("cpu", "model fp32", 1, 5.0),
            ("cpu", "model fp32", 8, 15.0),
            ("cpu", "model fp32", 64, 40.0),
        ]
    )
    assert crossover(faster)["cpu"] == (
        "cpu: the model beats the teacher applied image by image from batch 8, and the batched teacher from batch 64"
    )


def test_speedups_against_the_baselines():
    out = _table(
        [("cpu", "teacher per image", 1, 100.0), ("cpu", "teacher batched", 4, 400.0), ("cpu", "model fp32", 4, 800.0)]
    )
    assert list(out["x_vs_per_image"]) == [1.0, 4.0, 8.0]
    assert list(out["x_vs_teacher_batched"]) == [0.25, 1.0, 2.0]


@pytest.mark.slow
def test_benchmark_of_the_sweeps_best_model_through_ray(tiny_sweep, ray_local, tmp_path, caplog):
    """Fidelity in the benchmark matches the model's val PSNR: same images, same model."""
    import json

    best = json.loads((tiny_sweep / "best.json").read_text())
    images = synthetic_images(32, seed=1)  # the tiny sweep's val split (seed + 1)
    with caplog.at_level(logging.INFO, logger="tuner"):
        frame = run_benchmark(load_checkpoint(tiny_sweep / "best_model.pt"), images, replace(TINY, cpus=1))
    lines = [r.getMessage() for r in caplog.records]
    model_psnr = frame.loc[frame["method"] == "model fp32", "psnr_db"]
    assert model_psnr.iloc[0] == pytest.approx(best["metrics"]["val_psnr"], abs=0.05)
    if not torch.cuda.is_available():
        assert any("GPU rows skipped" in line for line in lines)
    csv, companion, png = write_outputs(frame, tmp_path, {"crossover": crossover(frame)})
    assert pd.read_csv(csv).shape == frame.shape and png.stat().st_size > 1000
    assert json.loads(companion.read_text())["crossover"]["cpu"].startswith("cpu: the model ")
    assert "teacher per image" in format_table(frame)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_rows(checkpoint):
    options = replace(TINY, kinds=("eager", "layouts", "compiled"))
    rows, _ = measure_device("cuda", checkpoint, synthetic_images(8, 0), options)
    rows = pd.DataFrame(rows)
    assert {
        "teacher batched",
        "teacher as one matmul",
        "model fp32",
        "model bf16 autocast",
        "model channels_last",
        "compiled",
        "compiled reduce-overhead",
        "compiled bf16 channels_last",
    } == set(rows["method"])
    assert (rows["images_per_s"] > 0).all()
    assert (rows["images_per_s_with_copy"] <= rows["images_per_s"]).all()
    fp32 = rows.loc[rows["method"] == "model fp32", "psnr_db"].iloc[0]
    assert rows.loc[rows["method"] == "model channels_last", "psnr_db"].iloc[0] == pytest.approx(fp32, abs=0.01)
