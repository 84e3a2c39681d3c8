"""How fast a model, or the teacher, applies the pipeline where a trial runs: what `--pareto` searches against.

The benchmark's timing rules (tuner.inference.timing.time_call: warm-up, CUDA-synchronised, median of timed
blocks), on one batch already on the device. A model's speed depends on its shape, not on its weights, so a
trial measures it once, before its first epoch, and reports it with every epoch; a trial the scheduler stops
early still gives the searcher both objectives. When the sweep ends, `retime` times every shape again, one
at a time, for the figures a person reads.
"""

from __future__ import annotations

from copy import deepcopy as copy_module
from typing import Any

import torch

from tuner.core.configs import ModelConfig
from tuner.core.constants import IN_SHAPE
from tuner.inference.timing import time_call
from tuner.learn.teacher import PIPELINE

# The eager model's best CPU batch in the benchmark (docs/benchmarks.md, inference); on a GPU, a large batch.
BATCH = {"cpu": 128, "cuda": 8192}
TEACHER_BATCH = {"cpu": 2048, "cuda": 32768}
# Short: the measurement must stay a small part of a trial's time.
MIN_RUN_TIME_S = 0.2


def _images(device: str, batch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(batch, *IN_SHAPE, generator=generator).to(device)


@torch.no_grad()
def model_images_per_s(model: torch.nn.Module, device: str, min_run_time: float = MIN_RUN_TIME_S) -> float:
    """Images per second of `model` (a float32 copy in eval mode, channels-last) on `device` at its BATCH.

    Channels-last, as deployed: it is the layout a trial trains in by default, and the same for every model,
    so a trial's figure and the one taken again at the end measure the same thing."""
    copy = copy_module(model).eval().float().to(device, memory_format=torch.channels_last)
    batch = _images(device, BATCH[device]).contiguous(memory_format=torch.channels_last)
    seconds, _ = time_call(lambda: copy(batch), min_run_time)
    return BATCH[device] / seconds


@torch.no_grad()
def teacher_images_per_s(device: str, min_run_time: float = MIN_RUN_TIME_S) -> dict[str, float]:
    """The teacher applied image by image (as torchvision is usually called) and on a whole batch at once (the
    benchmark's "teacher per-image" and "teacher batched" rows), images per second."""
    one = _images(device, 1)
    per_image, _ = time_call(lambda: PIPELINE(one), min_run_time)
    batch = _images(device, TEACHER_BATCH[device])
    batched, _ = time_call(lambda: PIPELINE(batch), min_run_time)
    return {"per_image": 1.0 / per_image, "batched": TEACHER_BATCH[device] / batched}


def measure_teacher(device: str, threads: int) -> dict[str, float | str | int]:
    """What a `--pareto` sweep measures once, on a trial's resources: the device, its threads, the teacher's rates."""
    torch.set_num_threads(max(1, threads))
    return {"device": device, "threads": threads, **teacher_images_per_s(device)}


def retime(configs: dict[str, dict[str, Any]], device: str, threads: int) -> dict[str, Any]:
    """The teacher and every model shape again, one after another in one worker, nothing else running: the
    figures the front and its answer use. A trial's own figure was taken while other trials trained beside
    it, and the teacher's alone, so their ratio leans against the models. Random weights: speed is the
    shape's (`configs`: trial id -> ModelConfig as a dict)."""
    from tuner.learn.model import build_model

    teacher = measure_teacher(device, threads)
    models = {}
    for trial_id, config in configs.items():
        model = build_model(ModelConfig.from_dict(config), seed=0).to(device)
        models[trial_id] = model_images_per_s(model, device)
    return {"teacher": teacher, "models": models}
