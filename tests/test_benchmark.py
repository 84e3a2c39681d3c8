"""The inference benchmark's plumbing on CPU with tiny sizes; GPU rows where a GPU exists."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from tuner.benchmark import COLUMNS, format_table, run_benchmark, with_speedups, write_outputs
from tuner.checkpoints import load_checkpoint
from tuner.synthetic import synthetic_images
from tuner.timing import WARMUP_CALLS, _exact_batch, measure_device, time_call

TINY = dict(batch_sizes=[1, 4], min_run_time=0.01)


@pytest.fixture(scope="module")
def checkpoint():
    from tuner.configs import ModelConfig
    from tuner.model import build_model

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


def test_cpu_rows_are_present_and_positive(checkpoint):
    rows = pd.DataFrame(measure_device("cpu", checkpoint, synthetic_images(8, 0), threads=1, **TINY))
    assert list(rows["method"]) == [
        "teacher per image",
        "teacher batched",
        "teacher as one matmul",
        "model fp32",
        "model fp32",
    ]
    assert list(rows.loc[rows["method"] == "model fp32", "batch_size"]) == [1, 4]
    assert (rows["images_per_s"] > 0).all() and (rows["set_s"] > 0).all()
    assert rows.loc[rows["method"].str.startswith("teacher"), "psnr_db"].isna().all()


def test_speedups_against_the_baselines():
    frame = pd.DataFrame(
        [
            {"device": "cpu", "method": "teacher per image", "batch_size": 1, "images_per_s": 100.0},
            {"device": "cpu", "method": "teacher batched", "batch_size": 4, "images_per_s": 400.0},
            {"device": "cpu", "method": "model fp32", "batch_size": 4, "images_per_s": 800.0},
        ]
    ).assign(set_s=1.0, spread=0.0, images_per_s_with_copy=1.0, psnr_db=math.nan)
    out = with_speedups(frame)
    assert list(out.columns) == COLUMNS
    assert list(out["x_vs_per_image"]) == [1.0, 4.0, 8.0]
    assert list(out["x_vs_teacher_batched"]) == [0.25, 1.0, 2.0]


@pytest.mark.slow
def test_benchmark_of_the_sweeps_best_model_through_ray(tiny_sweep, ray_local, tmp_path):
    """Fidelity in the benchmark matches the model's val PSNR: same images, same model."""
    import json

    best = json.loads((tiny_sweep / "best.json").read_text())
    images = synthetic_images(32, seed=1)  # the tiny sweep's val split (seed + 1)
    lines = []
    frame = run_benchmark(
        load_checkpoint(tiny_sweep / "best_model.pt"),
        images,
        device="all",
        cpus=1,
        echo=lines.append,
        **{k: tuple(v) if isinstance(v, list) else v for k, v in TINY.items()},
    )
    model_psnr = frame.loc[frame["method"] == "model fp32", "psnr_db"]
    assert model_psnr.iloc[0] == pytest.approx(best["metrics"]["val_psnr"], abs=0.05)
    if not torch.cuda.is_available():
        assert any("GPU rows skipped" in line for line in lines)
    csv, png = write_outputs(frame, tmp_path)
    assert pd.read_csv(csv).shape == frame.shape and png.stat().st_size > 1000
    assert "teacher per image" in format_table(frame)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_rows(checkpoint):
    rows = pd.DataFrame(measure_device("cuda", checkpoint, synthetic_images(8, 0), **TINY))
    assert {
        "teacher batched",
        "teacher as one matmul",
        "model fp32",
        "model bf16 autocast",
        "model channels_last",
    } == set(rows["method"])
    assert (rows["images_per_s"] > 0).all()
    assert (rows["images_per_s_with_copy"] <= rows["images_per_s"]).all()
    fp32 = rows.loc[rows["method"] == "model fp32", "psnr_db"].iloc[0]
    assert rows.loc[rows["method"] == "model channels_last", "psnr_db"].iloc[0] == pytest.approx(fp32, abs=0.01)
