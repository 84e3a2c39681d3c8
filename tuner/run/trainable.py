"""The Ray Tune function trainable: one trial = one `Trainer`, reporting every epoch.

Each report carries a checkpoint (model config + weights + optimizer state),
so Ray can resume a restarted trial and `tuner export` can rebuild the model
from the checkpoint alone. Data arrives through `tune.with_parameters`, i.e.
Ray's object store: the teacher targets are computed once per sweep.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import ray
import torch
from ray import tune

from tuner.core.configs import split_config
from tuner.inference.speed import model_images_per_s
from tuner.learn.checkpoints import load_checkpoint, save_checkpoint
from tuner.learn.data import TeacherData
from tuner.learn.training import Trainer


def trial_device(gpus: float) -> str:
    """cuda for a trial that Ray gave (a share of) a GPU; Ray sets CUDA_VISIBLE_DEVICES to it."""
    if gpus and gpus > 0:
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"this trial was given {gpus} GPU but torch sees no CUDA device on node "
                f"{ray.get_runtime_context().get_node_id()}; install a CUDA build of torch there"
            )
        return "cuda"
    return "cpu"


SPEED_KEYS = ("images_per_s", "x_vs_teacher", "speed_time_s")


def _speed(trainer: Trainer, device: str, teacher: dict[str, Any]) -> dict[str, float]:
    """What a --pareto trial reports besides its losses: its model's inference speed on this trial's device and
    threads, against the teacher applied image by image there (measured once per sweep, `teacher`)."""
    started = time.perf_counter()
    rate = model_images_per_s(trainer.model, device)
    return {
        "images_per_s": rate,
        "x_vs_teacher": rate / teacher["per_image"],
        "speed_time_s": time.perf_counter() - started,  # what measuring cost, to keep it small
    }


def train_trial(config: dict[str, Any], data: TeacherData, teacher_speed: dict[str, Any] | None = None) -> None:
    """Ray Tune function trainable (wrapped by tune.with_parameters in the sweep). With `teacher_speed`
    (a --pareto sweep), every epoch also reports the model's images_per_s and x_vs_teacher."""
    resources = tune.get_context().get_trial_resources().required_resources
    # Use exactly the CPUs Ray gave this trial; torch's default (all cores) oversubscribes.
    torch.set_num_threads(max(1, int(resources.get("CPU", 1) or 1)))
    model_cfg, train_cfg = split_config(config)
    trainer = Trainer(model_cfg, train_cfg, data, device=trial_device(resources.get("GPU", 0)))

    checkpoint, saved = tune.get_checkpoint(), {}
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            saved = load_checkpoint(d)
        trainer.load_state_dict(saved)

    node_id = ray.get_runtime_context().get_node_id()  # which cluster node ran it, for trials.csv
    # A model's speed depends on its shape, not its weights: measured once, before training, so that a trial
    # the scheduler stops after any epoch still gives the searcher both objectives. A trial restarted from its
    # checkpoint (after a pause at a rung, a retry, a resume) keeps the figure it measured first.
    speed = {}
    if teacher_speed:
        last = saved.get("metrics", {})
        kept = {k: last[k] for k in SPEED_KEYS if k in last}
        speed = kept if len(kept) == len(SPEED_KEYS) else _speed(trainer, trainer.device.type, teacher_speed)
    for metrics in trainer.epochs():
        metrics.update(node_id=node_id, **speed)
        if metrics["diverged"]:
            tune.report(metrics)  # no checkpoint: NaN weights are worth nothing; the trial ends here
            return
        with tempfile.TemporaryDirectory() as d:
            save_checkpoint({**trainer.state_dict(), "metrics": metrics}, d)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
