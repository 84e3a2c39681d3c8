"""Inference timing on one device, without Ray: the teacher, its matrix form, and the model's variants.

Each measurement uses torch.utils.benchmark.Timer (it synchronises CUDA around
every timed block) after explicit warm-up calls, and reports the median time per
call with the interquartile range as its spread. The first call of every row is
timed on its own (`first_call_s`): for a compiled variant that is its
compilation, kept apart from throughput. Inputs already sit on the device; the
host-to-device copy of a batch is timed on its own and shown beside. On the CPU
every model row is measured at 1 thread and at all of the worker's threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from tuner.core.constants import IN_SHAPE
from tuner.inference import variants
from tuner.inference.benchmark import QUICK, BenchmarkOptions
from tuner.inference.rows import Measurement
from tuner.learn.checkpoints import model_from_state
from tuner.learn.fidelity import fidelity
from tuner.learn.teacher import PIPELINE, teacher_matrix, to_float

WARMUP_CALLS, WARMUP_SECONDS = 3, 1.0
PSNR_IMAGES = 4096  # each variant's PSNR against the teacher, on the first images of the set


def time_call(fn: Callable[[], Any], min_run_time: float) -> tuple[float, float]:
    """(median seconds per call, IQR / median) of fn, after warm-up (3 calls, or 1 s if those are slow)."""
    started = time.perf_counter()
    for _ in range(WARMUP_CALLS):
        fn()
        if time.perf_counter() - started > WARMUP_SECONDS:
            break
    m = _timer()(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time)
    return m.median, (m.iqr / m.median if m.median > 0 else 0.0)


def _timer() -> Any:
    # torch.utils.benchmark imports cpp_extension, which warns on a machine with a CUDA toolkit but no GPU.
    quiet = logging.getLogger("torch.utils.cpp_extension")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        from torch.utils.benchmark import Timer
    finally:
        quiet.setLevel(level)
    return Timer


def _copy_time(images: torch.Tensor, device: str, batch: int, min_run_time: float) -> float:
    if device == "cpu":
        return 0.0
    host = to_float(images[:batch]).pin_memory()
    return time_call(lambda: host.to(device, non_blocking=False), min_run_time)[0]


def _exact_batch(images: torch.Tensor, batch: int) -> torch.Tensor:
    """A batch of exactly `batch` images, repeating the set when it is smaller."""
    reps = -(-batch // len(images))
    return images.repeat(reps, 1, 1, 1)[:batch] if reps > 1 else images[:batch]


def _first_call(fn: Callable[[], Any], device: str) -> float:
    started = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def flops_per_image(model: torch.nn.Module) -> float:
    """Floating-point operations of one forward pass on one image, counted once by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *IN_SHAPE, device=next(model.parameters()).device))
    return float(counter.get_total_flops())


def measure_device(
    device: str,
    checkpoint: dict[str, Any],
    images: torch.Tensor,
    options: BenchmarkOptions,
    threads: int | None = None,
    artifacts: dict[str, bytes] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every benchmark row for one device ("cpu" or "cuda"), and a line for each variant left out.

    images: uint8 (N, 3, 32, 32) on the host; artifacts: exported files' bytes by format name."""
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    model = model_from_state(checkpoint).to(device)
    on_device = to_float(images).to(device)
    measured = _teacher_rows(device, images, on_device, max(options.sizes(device)), threads, options.min_run_time)
    flops = flops_per_image(model)
    skipped: list[str] = []
    psnr_of: dict[str, float] = {}  # a variant computes the same numbers at any thread count
    # Serving often pins one thread per process, so the CPU rows come at 1 thread too.
    one_thread_too = device == "cpu" and options.kinds != QUICK
    for count in sorted({1, threads}) if one_thread_too else [threads]:
        torch.set_num_threads(count)
        built, skipped = variants.build(model, device, count, options.kinds, artifacts or {})
        for variant in built:
            if variant.name not in psnr_of:
                with torch.inference_mode():
                    psnr_of[variant.name] = _psnr_of(variant.run, images[:PSNR_IMAGES], device)
            row = partial(
                Measurement, device, variant.name, count, psnr_db=psnr_of[variant.name], flops_per_image=flops
            )
            measured += _variant_rows(row, variant.run, images, on_device, options)
    torch.set_num_threads(threads)
    return [m.row(len(images)) for m in measured], skipped


def _teacher_rows(
    device: str, images: torch.Tensor, on_device: torch.Tensor, largest: int, threads: int, min_run_time: float
) -> list[Measurement]:
    """The baselines: the pipeline image by image (CPU only), batched, and as one matrix product."""
    rows = []
    with torch.inference_mode():
        if device == "cpu":  # the assignment's baseline: the pipeline applied image by image
            one = on_device[0]
            rows.append(
                Measurement(device, "teacher per image", threads, 1, *time_call(lambda: PIPELINE(one), min_run_time))
            )
        x = _exact_batch(on_device, largest)
        copy_s = _copy_time(images, device, largest, min_run_time)
        t, spread = time_call(lambda: PIPELINE(x), min_run_time)
        rows.append(Measurement(device, "teacher batched", threads, largest, t, spread, copy_s))
        matrix, flat = teacher_matrix().to(device), x.flatten(1)
        t, spread = time_call(lambda: flat @ matrix, min_run_time)
        rows.append(
            Measurement(
                device,
                "teacher as one matmul",
                threads,
                largest,
                t,
                spread,
                copy_s,
                flops_per_image=2.0 * matrix.numel(),
            )
        )
    return rows


def _variant_rows(
    row: Callable[..., Measurement],
    run: Callable[[torch.Tensor], Any],
    images: torch.Tensor,
    on_device: torch.Tensor,
    options: BenchmarkOptions,
) -> list[Measurement]:
    """One variant at every batch size; `row` makes its Measurement from (batch size, seconds, spread, copy
    seconds, first call seconds)."""
    device = on_device.device.type
    rows = []
    with torch.inference_mode():
        for bs in options.sizes(device):
            xb = _exact_batch(on_device, bs)
            first = _first_call(lambda xb=xb: run(xb), device)
            t, spread = time_call(lambda xb=xb: run(xb), options.min_run_time)
            rows.append(row(bs, t, spread, _copy_time(images, device, bs, options.min_run_time), first))
    return rows


def _psnr_of(run: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, device: str) -> float:
    """Fidelity of this exact variant (bf16 changes the numbers) against the teacher, on the CPU."""

    class OnDevice(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return run(x.to(device)).float().cpu()

    return fidelity(OnDevice(), images).psnr
