"""Fused trials (tuner.learn.fused): each member learns as its plain Trainer does, members end one by one,
and the GPU training benchmark runs (tiny, on the CPU) end to end."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tuner.core.configs import ModelConfig, TrainConfig
from tuner.learn.checkpoints import model_from_state
from tuner.learn.fused import FusedTrainer, fusable_groups
from tuner.learn.model import StudentCNN
from tuner.learn.training import Trainer

# Float reordering (one grouped convolution for K, batched matmuls) stays far inside these; an lr only 1% off
# does not (docs/benchmarks.md, "GPU training throughput: routes", has both). SSIM, near 0 this early, gets
# an absolute tolerance.
RTOL, WEIGHT_ATOL, SSIM_ATOL = 1e-4, 1e-5, 1e-5
BATCH = 20  # 96 training images: four full batches and a short one, as most real epochs end

# Three trials that differ in everything a member may: lr, schedule, slope, init scale, weight decay,
# Adam against AdamW, and max_epochs (so the length of its one-cycle schedule).
ADAM_FAMILY = [
    (ModelConfig(hidden=32, negative_slope=0.1), TrainConfig(lr=2e-3, batch_size=BATCH, max_epochs=2)),
    (
        ModelConfig(hidden=32, negative_slope=0.5, init_scale=0.5),
        TrainConfig(lr=5e-4, batch_size=BATCH, max_epochs=2, optimizer="adamw", weight_decay=1e-2, schedule="constant"),
    ),
    (
        ModelConfig(hidden=32, negative_slope=0.01, init_scale=2.0),
        TrainConfig(lr=1e-3, batch_size=BATCH, max_epochs=3, weight_decay=1e-3, warmup_frac=0.3),
    ),
]
SGD_FAMILY = [
    (ModelConfig(hidden=32, negative_slope=0.2), TrainConfig(lr=1e-2, batch_size=BATCH, optimizer="sgd")),
    (
        ModelConfig(hidden=32, negative_slope=0.3, init_scale=0.7),
        TrainConfig(lr=3e-2, batch_size=BATCH, optimizer="sgd", weight_decay=1e-3, schedule="constant"),
    ),
]


def plain_runs(configs, data, epochs: int) -> list[tuple[Trainer, list[dict]]]:
    runs = []
    for model_cfg, train_cfg in configs:
        trainer = Trainer(model_cfg, train_cfg, data)
        runs.append((trainer, [trainer.run_epoch() for _ in range(epochs)]))
    return runs


def assert_same_member(fused_metrics: dict, plain_metrics: dict, fused_model: dict, plain_model: dict) -> None:
    assert set(fused_metrics) == set(plain_metrics)
    assert fused_metrics["epoch"] == plain_metrics["epoch"]
    for key in ("train_loss", "val_loss", "val_psnr"):
        assert fused_metrics[key] == pytest.approx(plain_metrics[key], rel=RTOL), key
    assert fused_metrics["val_ssim"] == pytest.approx(plain_metrics["val_ssim"], abs=SSIM_ATOL)
    for name, tensor in plain_model.items():
        assert torch.allclose(fused_model[name], tensor, atol=WEIGHT_ATOL, rtol=0), name


@pytest.mark.parametrize("configs", [ADAM_FAMILY, SGD_FAMILY], ids=["adam-adamw", "sgd"])
def test_each_member_learns_as_its_plain_trial(tiny_data, configs):
    fused = FusedTrainer(configs, tiny_data)
    history = [fused.run_epoch() for _ in range(2)]
    for i, (plain, plain_history) in enumerate(plain_runs(configs, tiny_data, epochs=2)):
        for epoch in range(2):
            assert_same_member(
                history[epoch][i], plain_history[epoch], fused.state_dict_of(i)["model"], plain.model.state_dict()
            )
    # The members really differ (else matching their plain runs would prove little).
    assert len({round(history[1][i]["val_loss"], 6) for i in range(len(configs))}) == len(configs)


def test_a_dropped_member_stops_and_the_others_run_on_unchanged(tiny_data):
    fused = FusedTrainer(ADAM_FAMILY, tiny_data)
    fused.run_epoch()
    fused.drop(1)
    second = fused.run_epoch()
    assert set(second) == {0, 2}
    assert fused.params["fc1.weight"].shape[0] == 2  # no longer computed, not merely masked
    runs = plain_runs(ADAM_FAMILY, tiny_data, epochs=2)
    for i in (0, 2):
        assert_same_member(second[i], runs[i][1][1], fused.state_dict_of(i)["model"], runs[i][0].model.state_dict())
    # The dropped member keeps what it had after its one epoch: the plain run's first epoch.
    stopped = Trainer(*ADAM_FAMILY[1], tiny_data)
    stopped.run_epoch()
    state = fused.state_dict_of(1)
    assert state["epoch"] == 1
    for name, tensor in stopped.model.state_dict().items():
        assert torch.allclose(state["model"][name], tensor, atol=WEIGHT_ATOL, rtol=0), name
    with pytest.raises(ValueError, match="member 1 is not training"):
        fused.drop(1)


def test_a_members_checkpoint_is_a_plain_trainers(tiny_data):
    fused = FusedTrainer(ADAM_FAMILY, tiny_data)
    fused.run_epoch()
    state = fused.state_dict_of(1)  # AdamW, constant lr, weight decay
    plain = Trainer(*ADAM_FAMILY[1], tiny_data)
    plain.run_epoch()
    assert state.keys() == plain.state_dict().keys()
    assert isinstance(model_from_state(state), StudentCNN)  # an exported member is an ordinary model
    # Resumed in a plain Trainer, it continues as the plain run does: weights and optimizer state carried over.
    resumed = Trainer(*ADAM_FAMILY[1], tiny_data)
    resumed.load_state_dict(state)
    assert_same_member(resumed.run_epoch(), plain.run_epoch(), resumed.model.state_dict(), plain.model.state_dict())


def test_a_diverging_member_ends_alone(tiny_data):
    configs = [
        (ModelConfig(hidden=32), TrainConfig(lr=1e6, optimizer="sgd", batch_size=BATCH, schedule="constant")),
        SGD_FAMILY[0],
    ]
    fused = FusedTrainer(configs, tiny_data)
    history = list(fused.epochs())
    assert history[0][0]["diverged"] is True and math.isnan(history[0][0]["val_loss"])
    assert [sorted(m) for m in history] == [[0, 1], [1], [1]]  # ended after its epoch; the other ran to 3
    runs = plain_runs(configs[1:], tiny_data, epochs=3)
    assert_same_member(history[2][1], runs[0][1][2], fused.state_dict_of(1)["model"], runs[0][0].model.state_dict())


def test_trials_that_cannot_share_batches_or_operators_are_refused(tiny_data):
    wide = (ModelConfig(hidden=64), ADAM_FAMILY[0][1])
    with pytest.raises(ValueError, match=r"^trials 0 and 1 differ in model shape .*; fuse only trials of one"):
        FusedTrainer([ADAM_FAMILY[0], wide], tiny_data)
    other_seed = (ADAM_FAMILY[0][0], TrainConfig(batch_size=BATCH, seed=1))
    with pytest.raises(ValueError, match="differ in seed"):
        FusedTrainer([ADAM_FAMILY[0], other_seed], tiny_data)
    with pytest.raises(ValueError, match="differ in optimizer family"):
        FusedTrainer([ADAM_FAMILY[0], SGD_FAMILY[0]], tiny_data)
    with pytest.raises(ValueError, match="cuda_graph needs a CUDA device"):
        FusedTrainer(ADAM_FAMILY, tiny_data, cuda_graph=True)
    assert fusable_groups([ADAM_FAMILY[0], wide, SGD_FAMILY[0], ADAM_FAMILY[1], other_seed]) == [[0, 3], [1], [2], [4]]


BENCHMARK = Path(__file__).parents[1] / "benchmarks" / "gpu_training.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("gpu_training", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = ["--device", "cpu", "--train-size", "48", "--val-size", "16", "--hidden", "8", "--epochs", "2"]


def test_the_gpu_training_benchmark_runs_tiny_on_the_cpu(capsys):
    rates = load_benchmark().main([*TINY, "--trials", "1,2", "--workers", "threads"])
    out = capsys.readouterr().out
    for trials in (1, 2):
        for route in ("plain", "device-epoch", "fused"):
            assert rates[route, trials] > 0
        assert rates["graph", trials] is None and rates["fused-graph", trials] is None
    assert "2 trial(s)" in out and " 1.00x)" in out and "n/a (needs CUDA)" in out


@pytest.mark.slow  # spawns worker processes, each importing torch
def test_the_gpu_training_benchmark_runs_trials_in_processes():
    # As `make benchmark-gpu` runs it: a script whose spawned workers import it again as __main__.
    args = [*TINY, "--trials", "2", "--routes", "plain,fused", "--workers", "processes"]
    done = subprocess.run([sys.executable, BENCHMARK, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = {
        line.split()[0]: line.split()[1] for line in done.stdout.splitlines() if line.startswith(("plain ", "fused "))
    }
    assert float(rows["plain"].replace(",", "")) > 0 and float(rows["fused"].replace(",", "")) > 0


@pytest.fixture
def no_tf32():
    """Plain float32 convolutions on the GPU for both sides: TF32 would hide a real difference in its noise."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = before


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cuda_graph", [False, True], ids=["fused", "fused-graph"])
def test_fused_members_on_the_gpu_learn_as_their_plain_trials(tiny_data, no_tf32, cuda_graph):
    # 96 images at batch 8: 12 steps an epoch, so the graph is captured after 3 and replayed for the rest.
    configs = [(m, dataclasses.replace(t, batch_size=8)) for m, t in ADAM_FAMILY]
    fused = FusedTrainer(configs, tiny_data, device="cuda", cuda_graph=cuda_graph)
    history = [fused.run_epoch() for _ in range(2)]
    fused.drop(0)
    third = fused.run_epoch()
    for i, (model_cfg, train_cfg) in enumerate(configs):
        plain = Trainer(model_cfg, train_cfg, tiny_data, device="cuda")
        plain_history = [plain.run_epoch() for _ in range(2 if i == 0 else 3)]
        ours = [history[0][i], history[1][i]] + ([third[i]] if i else [])
        for mine, theirs in zip(ours, plain_history, strict=True):
            # Looser than on the CPU: cuDNN picks other algorithms for a grouped convolution than for K plain ones.
            for key in ("train_loss", "val_loss"):
                assert mine[key] == pytest.approx(theirs[key], rel=1e-3), (i, key)
            assert mine["val_ssim"] == pytest.approx(theirs["val_ssim"], abs=1e-4), i
