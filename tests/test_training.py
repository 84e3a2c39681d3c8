import math

import pytest
import torch

from tuner.core import metrics as registry
from tuner.core.configs import ModelConfig, TrainConfig, split_config
from tuner.learn.training import Trainer, lr_at, train

SMALL = ModelConfig(hidden=32)


def test_training_lowers_the_loss(tiny_data):
    losses = []
    train(SMALL, TrainConfig(lr=2e-3, batch_size=16, max_epochs=3), tiny_data, on_epoch=losses.append)
    assert [m["epoch"] for m in losses] == [1, 2, 3]
    assert losses[-1]["val_loss"] < losses[0]["val_loss"]
    assert losses[-1]["val_psnr"] == pytest.approx(10 * math.log10(1 / losses[-1]["val_loss"]), rel=1e-4)
    # Every registered metric is in every epoch's report, val_ssim among them, in its range and improving.
    every_sweep = {m.name for m in registry.METRICS.values() if not m.only_pareto}
    assert every_sweep <= set(losses[-1]) and losses[-1]["val_ssim"] > losses[0]["val_ssim"]
    assert all(-1 <= m["val_ssim"] <= 1 for m in losses)


def test_resume_from_state_dict_continues_exactly(tiny_data):
    cfg = TrainConfig(lr=1e-3, batch_size=16, max_epochs=2)
    straight = Trainer(SMALL, cfg, tiny_data)
    list(straight.epochs())

    first = Trainer(SMALL, cfg, tiny_data)
    first.run_epoch()
    state = first.state_dict()
    resumed = Trainer(SMALL, cfg, tiny_data)
    resumed.load_state_dict(state)
    last = resumed.run_epoch()
    assert resumed.epoch == 2
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert last["epoch"] == 2


def test_a_diverging_run_is_marked_and_ends(tiny_data):
    metrics = []
    train(
        SMALL,
        TrainConfig(lr=1e6, optimizer="sgd", batch_size=16, max_epochs=5, schedule="constant"),
        tiny_data,
        on_epoch=metrics.append,
    )
    assert metrics[-1]["diverged"] is True
    assert all(math.isnan(metrics[-1][m.name]) for m in registry.computed())  # val_ssim too: NaN, not a number
    assert len(metrics) < 5


def test_split_config_checks_keys():
    model_cfg, train_cfg = split_config({"lr": 0.01, "negative_slope": 0.2, "init_scale": 0.5, "max_epochs": 7})
    assert model_cfg.negative_slope == 0.2 and train_cfg.max_epochs == 7
    with pytest.raises(ValueError, match="unknown config keys \\['learning_rate'\\]"):
        split_config({"learning_rate": 0.01})
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lbfgs")


def test_one_cycle_schedule_warms_up_then_decays():
    cfg = TrainConfig(lr=1.0, warmup_frac=0.1)
    values = [lr_at(s, 100, cfg) for s in range(100)]
    assert values[0] < values[9] <= 1.0
    assert values[10] == pytest.approx(1.0, rel=1e-6)
    assert values[-1] < 0.05
    assert lr_at(50, 100, TrainConfig(lr=0.3, schedule="constant")) == 0.3


def test_trials_without_a_gpu_train_on_the_cpu():
    from tuner.run.trainable import trial_device

    assert trial_device(0) == "cpu"
    if not torch.cuda.is_available():  # Ray gave a GPU that torch cannot see: say so, do not train on the CPU
        with pytest.raises(RuntimeError, match="no CUDA device"):
            trial_device(0.5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_the_gpu_matches_the_cpu_and_resumes_on_either(tiny_data, tmp_path):
    from tuner.learn.checkpoints import load_checkpoint, save_checkpoint

    cfg = TrainConfig(lr=1e-3, batch_size=16, max_epochs=2)
    on_cpu, on_gpu = Trainer(SMALL, cfg, tiny_data), Trainer(SMALL, cfg, tiny_data, device="cuda")
    cpu_metrics, gpu_metrics = on_cpu.run_epoch(), on_gpu.run_epoch()
    assert next(on_gpu.model.parameters()).is_cuda
    assert gpu_metrics["val_loss"] == pytest.approx(cpu_metrics["val_loss"], rel=0.05)
    # A checkpoint written on the GPU resumes on the CPU: load_checkpoint maps every tensor to the CPU.
    path = save_checkpoint(on_gpu.state_dict(), tmp_path)
    resumed = Trainer(SMALL, cfg, tiny_data)
    resumed.load_state_dict(load_checkpoint(path))
    assert resumed.run_epoch()["epoch"] == 2
