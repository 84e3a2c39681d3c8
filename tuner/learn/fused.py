"""Several trials trained as one fused model (HFTA): `FusedTrainer(configs, data).run_epoch()`.

K trials of one model shape train on the same batches in K-times-wider operators (tuner.learn.fused_ops),
each with its own lr schedule, LeakyReLU slope, initial weights, weight decay and optimizer state, and each
learns as its plain `Trainer` does (same batches, same order, same step arithmetic: the same loss curve up
to float reordering). An epoch makes no host round trip per step (losses are summed on the device), and on
a GPU `cuda_graph=True` replays the whole step (forward, backward, optimizer) as one captured CUDA graph.

The plain Trainer's batch order is a function of (seed, epoch) and its steps of the batch size, so only
trials of one seed and batch size can share batches (a sweep gives all its trials one seed); see
`fusable_groups`. Each member is still one trial: `drop(i)` ends it (early stopping) and stops computing it,
and `state_dict_of(i)` is its checkpoint in the plain Trainer's format. Not wired into the sweep: a library
piece, measured by benchmarks/gpu_training.py.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from tuner.core.configs import ModelConfig, TrainConfig
from tuner.learn import fused_ops as ops
from tuner.learn.data import TeacherData
from tuner.learn.teacher import to_float
from tuner.learn.training import Trainer, lr_at

FAMILY = {"adam": "adam", "adamw": "adam", "sgd": "sgd"}
KEY_FIELDS = ("model shape", "seed", "batch size", "bf16", "optimizer family")
WARMUP_STEPS = 3  # eager steps before a CUDA graph capture, as torch.cuda.graphs' docs ask (lazy kernel set-up)


def fusion_key(model_cfg: ModelConfig, train_cfg: TrainConfig) -> tuple:
    """What trials must share to be fused, in KEY_FIELDS' order."""
    shape = (
        tuple(model_cfg.in_shape),
        tuple(model_cfg.out_shape),
        model_cfg.conv1_channels,
        model_cfg.conv2_channels,
        model_cfg.hidden,
    )
    return shape, train_cfg.seed, train_cfg.batch_size, train_cfg.bf16, FAMILY[train_cfg.optimizer]


def check_fusable(configs: list[tuple[ModelConfig, TrainConfig]]) -> None:
    """ValueError, in one line, unless every trial can be fused with the first."""
    if not configs:
        raise ValueError("no trials to fuse; give at least one (ModelConfig, TrainConfig) pair")
    first = fusion_key(*configs[0])
    for i, config in enumerate(configs[1:], start=1):
        for what, a, b in zip(KEY_FIELDS, first, fusion_key(*config), strict=True):
            if a != b:
                raise ValueError(
                    f"trials 0 and {i} differ in {what} ({a} against {b}); fuse only trials of one model shape, "
                    "seed, batch size, bf16 setting and optimizer family (adam/adamw, or sgd)"
                )


def fusable_groups(configs: list[tuple[ModelConfig, TrainConfig]]) -> list[list[int]]:
    """The trials' indexes, grouped so that each group can be one FusedTrainer."""
    groups: dict[tuple, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(fusion_key(*config), []).append(i)
    return list(groups.values())


class FusedTrainer:
    def __init__(
        self,
        configs: list[tuple[ModelConfig, TrainConfig]],
        data: TeacherData,
        device: str | torch.device = "cpu",
        cuda_graph: bool = False,
    ) -> None:
        check_fusable(configs)
        self.device = torch.device(device)
        if cuda_graph and self.device.type != "cuda":
            raise ValueError(f"cuda_graph needs a CUDA device, not {self.device}; pass device='cuda' or leave it off")
        self.data, self.cuda_graph = data.to(self.device), cuda_graph
        # One plain Trainer per member: it draws the member's initial weights as the plain loop does, and holds
        # the unstacked copy that validation and checkpoints read, so both are the plain Trainer's own code.
        self.members = [Trainer(m, t, self.data, self.device) for m, t in configs]
        self.cfgs = [t.cfg for t in self.members]
        first = self.members[0]
        self.batch_size, self.steps_per_epoch, self.bf16 = first.cfg.batch_size, first.steps_per_epoch, first.bf16
        self.family, self.seed = FAMILY[first.cfg.optimizer], first.cfg.seed
        # Normalisation statistics come from the shared training images: the same for every member.
        self.mean, self.std, self.out_shape = first.model.mean, first.model.std, first.model_cfg.out_shape
        self.active = list(range(len(configs)))  # the member at each stacked position
        self.epoch = 0
        # One (K, P) tensor of every member's parameters; self.params are views of it (tuner.learn.fused_ops).
        self.layout = ops.Layout(first.model)
        self._bind(self.layout.flatten([t.model for t in self.members]), None)
        decays = [(0.0, c.weight_decay) if c.optimizer == "adamw" else (c.weight_decay, 0.0) for c in self.cfgs]
        vectors = {  # per-member (K,) tensors, sliced together when a member is dropped
            "slopes": torch.tensor([t.model_cfg.negative_slope for t in self.members]),
            "wd": torch.tensor([d[0] for d in decays], dtype=torch.float64),  # Adam's, added to the gradient
            "decoupled_wd": torch.tensor([d[1] for d in decays], dtype=torch.float64),  # AdamW's
            **{key: torch.zeros(len(decays), dtype=torch.float64) for key in ("steps", "loss_sum", "seen")},
            "running": torch.ones(len(decays), dtype=torch.bool),  # no non-finite loss yet this epoch
        }
        self.vectors = {key: t.to(self.device) for key, t in vectors.items()}

    def _bind(self, flat: torch.Tensor, opt_state: dict[str, torch.Tensor] | None) -> None:
        """Hold `flat` (K, P) as the members' parameters, with their gradient, optimizer state and scratch."""
        self.flat, self.grad = flat, torch.zeros_like(flat)
        self.params = self.layout.views(flat, self.grad)
        self.opt_state = opt_state or ops.optimizer_state(self.family, flat)
        self.scratch = torch.empty_like(flat) if self.family == "adam" else None
        # Weight decay passes are skipped where no member has any (the usual case).
        active = [self.cfgs[i] for i in self.active]
        self._decays = {"decoupled_wd" if c.optimizer == "adamw" else "wd" for c in active if c.weight_decay}
        self._graph: torch.cuda.CUDAGraph | None = None  # any graph holds the old tensors: capture again

    def _step(self, idx: torch.Tensor, lr: torch.Tensor) -> None:
        """One training step of every member on the batch `idx`; `lr` (K,) is this step's rates. Only
        tensor operations on tensors that stay put, so it can be captured in a CUDA graph."""
        v = self.vectors
        x = (to_float(self.data.train_images[idx]) - self.mean) / self.std
        # The cache is off for graph capture (torch.cuda.graphs' docs); the loss is float32 as the plain loop's.
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16, cache_enabled=False):
            out = ops.forward(self.params, x, v["slopes"], self.out_shape)
        losses = ops.member_losses(out, self.data.train_targets[idx])
        self.grad.zero_()  # in place, as the plain loop's zero_grad(set_to_none=False)
        with warnings.catch_warnings():
            # A member's row is dense, the K rows together are not (rows of P); torch warns that such a
            # .grad "may impair performance", but it accumulates in place, which is the point.
            warnings.filterwarnings("ignore", "grad and param do not obey the gradient layout contract")
            losses.sum().backward()  # into self.grad; the sum's gradient is each member's own (no shared weights)
        with torch.no_grad():
            v["steps"].add_(v["running"].double())
            hyper = {"lr": lr, **{k: v[k] if k in self._decays else None for k in ("wd", "decoupled_wd")}}
            if self.family == "adam":
                ops.adam_step(self.flat, self.grad, self.opt_state, v["steps"], hyper, self.scratch)
            else:
                ops.sgd_step(self.flat, self.grad, self.opt_state, hyper)
            # The plain loop ends an epoch after the step whose loss is not finite; a fused member counts no
            # loss after it, and steps on (a NaN member's weights stay NaN, as the plain loop's do) until the
            # epoch ends, where epochs() drops it. Masking its update would cost parameter-sized passes.
            v["loss_sum"].add_(torch.where(v["running"], losses.double() * len(idx), 0.0))
            v["seen"].add_(v["running"].double() * len(idx))
            v["running"].logical_and_(torch.isfinite(v["loss_sum"]))

    def _lr_table(self) -> torch.Tensor:
        """(steps, K) learning rates of this epoch: each member's own schedule over its own max_epochs."""
        start, cfgs = self.epoch * self.steps_per_epoch, [self.cfgs[i] for i in self.active]
        rows = [
            [lr_at(start + s, self.steps_per_epoch * c.max_epochs, c) for c in cfgs]
            for s in range(self.steps_per_epoch)
        ]
        return torch.tensor(rows, dtype=torch.float64).to(self.device)

    def _capture(self, order: torch.Tensor, lrs: torch.Tensor, step: int) -> int:
        """Run WARMUP_STEPS real steps from `step` on a side stream, then capture the step; returns the steps run."""
        bs, side = self.batch_size, torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for s in range(step, step + WARMUP_STEPS):
                self._step(order[s * bs : (s + 1) * bs], lrs[s])
        torch.cuda.current_stream().wait_stream(side)
        self._static_idx, self._static_lr = order[:bs].clone(), lrs[0].clone()
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):  # records only: capture runs nothing, so no step is taken twice
            self._step(self._static_idx, self._static_lr)
        return WARMUP_STEPS

    def train_epoch(self) -> None:
        """Train every active member one epoch; the losses stay on the device (vectors loss_sum and seen)."""
        n, bs = len(self.data.train_images), self.batch_size
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        order, lrs = order.to(self.device), self._lr_table()  # the plain Trainer's shuffle, drawn on the CPU
        for key, value in (("loss_sum", 0), ("seen", 0), ("running", True)):
            self.vectors[key].fill_(value)  # in place: a captured graph holds these tensors
        full_steps, s = n // bs, 0
        while s < self.steps_per_epoch:
            graphed = self.cuda_graph and s < full_steps  # the short last batch, if any, runs eagerly
            if graphed and self._graph is None and s + WARMUP_STEPS < full_steps:
                s += self._capture(order, lrs, s)
                continue
            if graphed and self._graph is not None:
                self._static_idx.copy_(order[s * bs : (s + 1) * bs])
                self._static_lr.copy_(lrs[s])
                self._graph.replay()
            else:
                self._step(order[s * bs : (s + 1) * bs], lrs[s])
            s += 1
        self.epoch += 1

    def run_epoch(self) -> dict[int, dict[str, Any]]:
        """Train one epoch, then validate each member: {member index: the plain Trainer's metrics}."""
        if not self.active:
            return {}
        started = time.perf_counter()
        self.train_epoch()
        train_losses = (self.vectors["loss_sum"] / self.vectors["seen"].clamp_min(1)).tolist()  # the one sync
        trained_s, metrics = time.perf_counter() - started, {}
        for pos, i in enumerate(self.active):
            began = time.perf_counter()
            member = self._unstack(pos)
            values = member._validate(train_losses[pos])
            took = trained_s + time.perf_counter() - began
            metrics[i] = {"epoch": self.epoch, "train_loss": train_losses[pos], **values, "epoch_time_s": took}
        return metrics

    def epochs(self) -> Iterator[dict[int, dict[str, Any]]]:
        """run_epoch until every member has ended; a member ends at its max_epochs, when it diverges, or when
        the caller drops it between epochs."""
        while self.active:
            metrics = self.run_epoch()
            yield metrics
            for i, m in metrics.items():
                if i in self.active and (m["diverged"] or self.epoch >= self.cfgs[i].max_epochs):
                    self.drop(i)

    @torch.no_grad()
    def _unstack(self, pos: int, with_optimizer: bool = False) -> Trainer:
        """The plain Trainer of the member at stacked position `pos`, brought up to date."""
        member = self.members[self.active[pos]]
        member.epoch = self.epoch
        for name, tensor in self.layout.row(self.flat, pos).items():
            member.model.get_parameter(name).copy_(tensor)
        steps = float(self.vectors["steps"][pos])
        if with_optimizer and steps > 0:  # torch.optim keeps no state for a parameter never stepped
            rows = {key: self.layout.row(tensor, pos) for key, tensor in self.opt_state.items()}
            for name, p in member.model.named_parameters():
                state = {key: row[name] for key, row in rows.items()}
                if self.family == "adam":  # a fused torch Adam keeps its step as float32 on the parameter's device
                    state["step"] = torch.tensor(steps, dtype=torch.float32, device=p.device)
                member.optimizer.state[p] = state
        return member

    def drop(self, i: int) -> None:
        """End member i: it is no longer computed; state_dict_of(i) keeps its last weights and optimizer state."""
        if i not in self.active:
            raise ValueError(f"member {i} is not training; members still training: {self.active}")
        pos = self.active.index(i)
        self._unstack(pos, with_optimizer=True)
        self.active.pop(pos)
        keep = torch.tensor([p for p in range(len(self.active) + 1) if p != pos], device=self.device, dtype=torch.long)
        self._bind(self.flat[keep], {key: t[keep] for key, t in self.opt_state.items()})
        self.vectors = {key: t[keep] for key, t in self.vectors.items()}

    def state_dict_of(self, i: int) -> dict[str, Any]:
        """Member i's checkpoint, exactly as its plain Trainer's state_dict(): loads into a Trainer or a model."""
        if i in self.active:
            self._unstack(self.active.index(i), with_optimizer=True)
        return self.members[i].state_dict()
