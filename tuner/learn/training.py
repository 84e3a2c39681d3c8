"""The training loop, without Ray: `train(model_cfg, train_cfg, data) -> metrics`.

`Trainer` runs one epoch at a time so a caller (the Ray trainable, a test, a
notebook) can report, checkpoint or stop between epochs. Its whole state is
in `state_dict()`; the learning rate is a pure function of the step and the
shuffle a pure function of (seed, epoch), so a resumed run continues exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F

from tuner.core import metrics as registry
from tuner.core.configs import OPTIMIZER_NAMES, ModelConfig, TrainConfig
from tuner.learn.data import TeacherData
from tuner.learn.fidelity import validate
from tuner.learn.model import build_model
from tuner.learn.teacher import to_float

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
assert set(OPTIMIZERS) == set(OPTIMIZER_NAMES)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes in bfloat16 natively (AVX512-BF16 or AMX on a CPU; Ampere or newer GPUs)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(probe and probe())


def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """One-cycle: linear warm-up to cfg.lr, then cosine decay to 1% of it; or constant."""
    if cfg.schedule == "constant":
        return cfg.lr
    warmup = max(1, int(cfg.warmup_frac * total_steps))
    if step < warmup:
        return cfg.lr * (0.1 + 0.9 * step / warmup)
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


class Trainer:
    def __init__(
        self, model_cfg: ModelConfig, train_cfg: TrainConfig, data: TeacherData, device: str | torch.device = "cpu"
    ) -> None:
        self.model_cfg, self.cfg, self.device = model_cfg, train_cfg, torch.device(device)
        # The data moves to the device once per trial, not per batch (on the CPU .to() is a no-op).
        self.data = data.to(self.device)
        self.model = build_model(model_cfg, seed=train_cfg.seed)
        self.model.set_normalisation(to_float(data.train_images[:4096]))
        self.model.to(self.device)
        # NHWC weights and bf16 matmuls: on CPUs with AVX512-BF16 and on GPUs, the same steps in far less time.
        # Where bf16 is only emulated it would be slower, so it is used only where the hardware has it.
        self.memory_format = torch.channels_last if train_cfg.channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.bf16 = train_cfg.bf16 and native_bf16(self.device)
        # Fused Adam and gradients zeroed in place (not set to None) allocate nothing per step: the FC
        # layers' gradients and optimizer temporaries are otherwise freed and re-allocated every step, and
        # the page faults that causes cost a noticeable part of an epoch on a small CPU.
        kwargs = {"momentum": 0.9} if train_cfg.optimizer == "sgd" else {"fused": True}
        self.optimizer = OPTIMIZERS[train_cfg.optimizer](
            self.model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay, **kwargs
        )
        self.steps_per_epoch = math.ceil(len(data.train_images) / train_cfg.batch_size)
        self.epoch = 0  # epochs completed

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training forward pass; the loss is taken in float32 whatever the compute precision."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.model(x.contiguous(memory_format=self.memory_format)).float()

    def run_epoch(self) -> dict[str, float]:
        """Train one epoch, then validate. Returns the epoch's metrics."""
        started = time.perf_counter()
        self.model.train()
        images, targets, bs = self.data.train_images, self.data.train_targets, self.cfg.batch_size
        order = torch.randperm(
            len(images), generator=torch.Generator().manual_seed(self.cfg.seed * 100_003 + self.epoch)
        )
        order = order.to(self.device)  # same shuffle on every device: drawn on the CPU
        total_steps = self.steps_per_epoch * self.cfg.max_epochs
        loss_sum, seen = 0.0, 0
        for i in range(self.steps_per_epoch):
            idx = order[i * bs : (i + 1) * bs]
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(self.epoch * self.steps_per_epoch + i, total_steps, self.cfg)
            loss = F.mse_loss(self._forward(to_float(images[idx])), targets[idx])
            self.optimizer.zero_grad(set_to_none=False)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
            if not math.isfinite(loss_sum):
                break  # diverged: further steps only spread NaNs
        self.epoch += 1
        train_loss = loss_sum / max(1, seen)
        return {
            "epoch": self.epoch,
            "train_loss": train_loss,
            **self._validate(train_loss),
            "epoch_time_s": time.perf_counter() - started,
        }

    def _validate(self, train_loss: float) -> dict[str, Any]:
        """Every computed metric of the registry on the validation images, and whether the run diverged."""
        names = [m.name for m in registry.computed()]
        values = (
            validate(self.model, self.data.val_images, self.data.val_targets)
            if math.isfinite(train_loss)
            else dict.fromkeys(names, math.nan)
        )
        # Judged on the metrics of the images themselves: a derived one may be infinite for a perfect model
        # (the PSNR of an MSE of 0).
        diverged = not all(math.isfinite(values[m.name]) for m in registry.computed() if m.of is None)
        if diverged:
            # NaN, not inf, for every metric: ASHA's cutoff (np.nanpercentile) skips NaN, while an inf would
            # turn every later cutoff at that rung into NaN and stop ASHA from cutting.
            values = dict.fromkeys(names, math.nan)
        return {**values, "diverged": diverged}

    def epochs(self) -> Iterator[dict[str, float]]:
        while self.epoch < self.cfg.max_epochs:
            metrics = self.run_epoch()
            yield metrics
            if metrics["diverged"]:
                return

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild and resume; loads with torch.load(weights_only=True)."""
        return {
            "model_config": self.model_cfg.to_dict(),
            "train_config": asdict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Both copy into tensors already on self.device, whatever device the checkpoint came from.
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        # The optimizer's state brings the saving run's weight decay; this run's config decides it (PBT may
        # have changed it). The learning rate is set from the config at every step anyway.
        for group in self.optimizer.param_groups:
            group["weight_decay"] = self.cfg.weight_decay
        self.epoch = int(state["epoch"])


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: TeacherData,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Train to max_epochs (or divergence); returns the last epoch's metrics."""
    trainer = Trainer(model_cfg, train_cfg, data)
    metrics: dict[str, float] = {}
    for metrics in trainer.epochs():
        if on_epoch:
            on_epoch(metrics)
    return metrics
