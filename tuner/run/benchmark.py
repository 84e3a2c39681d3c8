"""`tuner benchmark NAME`: is the trained model a faster way to apply the teacher, on CPU and on GPU?

    tuner benchmark demo --device all          # CPU and (where a node has one) GPU rows
    tuner benchmark demo --artifact exported/model.onnx --batch-sizes 1,64,1024

Rows: the teacher (image by image, batched, as one matmul), then the model as
trained, as its exported TorchScript and ONNX files, and compiled; on the CPU at
1 thread and at all the worker's threads. Each model row has its PSNR against
the teacher and its GFLOP/s (FLOPs per image counted once). After the table, one
sentence per device says from which batch size the model beats the teacher.

Each device's rows run in a Ray worker that holds that device on one node
(raycluster.run_on_node: checked against the nodes first, bounded waits), so
the same command works on a workstation and on a cluster. The CPU worker takes
the CPUs of the largest node unless --cpus says otherwise. Writes
benchmark.csv, benchmark.json (the sentences) and benchmark.png into the
experiment directory. At the end of a sweep only the quick rows run (the
teacher and the model as trained).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from tuner.core.constants import BEST_MODEL_FILE, RESULTS_DIR
from tuner.core.errors import TunerError
from tuner.inference.benchmark import BATCH_SIZES, DEVICES, artifacts_of
from tuner.inference.table import crossover, format_table, with_speedups, write_outputs
from tuner.inference.timing import flops_per_image, measure_device
from tuner.inference.variants import KINDS
from tuner.learn.checkpoints import load_checkpoint, model_from_state
from tuner.learn.data import evaluation_images
from tuner.results.experiments import load_experiment
from tuner.run.cluster import connect, info, run_on_node


def run_benchmark(
    checkpoint: dict[str, Any],
    images: torch.Tensor,
    device: str = "all",
    batch_sizes: tuple[int, ...] | None = None,
    min_run_time: float = 0.5,
    cpus: int | None = None,
    kinds: tuple[str, ...] = ("eager",),
    artifacts: dict[str, bytes] | None = None,
    echo: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Benchmark rows for the model in `checkpoint` on `images` (uint8), one Ray worker per device.

    kinds: any of variants.KINDS; artifacts: exported files' bytes by kind. Ray must be connected."""
    if device not in DEVICES:
        raise TunerError(f"unknown device {device!r}; use one of: {', '.join(DEVICES)}")
    found = info()
    cpus = cpus or max(1, int(max(n.cpus for n in found.nodes)))  # one node's CPUs: a worker never spans nodes
    plan = []
    if device in ("cpu", "all"):
        plan.append(("cpu", cpus, 0, "the CPU benchmark worker", "pass --cpus with at most the CPUs of one node"))
    if device in ("gpu", "all"):
        if any(n.gpus >= 1 for n in found.nodes):
            plan.append(("cuda", 1, 1, "the GPU benchmark worker", "free a GPU"))
        elif device == "gpu":
            raise TunerError(
                "--device gpu asks for a GPU, but no node of this Ray has one; use --device cpu, "
                "or --address a cluster with a GPU node"
            )
        else:
            echo("benchmark: GPU rows skipped: no node of this Ray has a GPU")
    rows: list[dict[str, Any]] = []
    # One device at a time: a GPU worker launching kernels would steal cycles from the CPU rows.
    for dev, worker_cpus, gpus, what, fix in plan:
        sizes = list(batch_sizes or BATCH_SIZES[dev])
        echo(
            f"benchmark: {dev.upper()} worker ({worker_cpus} CPUs), {len(images)} images, batch sizes {sizes}, "
            f"variants: {', '.join(kinds)}"
        )
        args = (dev, checkpoint, images, sizes, min_run_time, worker_cpus, kinds, artifacts or {})
        measured, skipped = run_on_node(measure_device, args, cpus=worker_cpus, gpus=gpus, what=what, fix=fix)
        rows += measured
        for line in skipped:
            echo(f"benchmark: {dev} rows left out: {line}")
    return with_speedups(pd.DataFrame(rows))


def benchmark_experiment(
    exp_dir: Path, images: torch.Tensor, echo: Callable[[str], None] = print, **options: Any
) -> pd.DataFrame:
    """Benchmark an experiment's best model on `images`; writes benchmark.csv/json/png beside its results."""
    state = load_checkpoint(Path(exp_dir) / BEST_MODEL_FILE)
    frame = run_benchmark(state, images, echo=echo, **options)
    sentences = crossover(frame)
    summary = {
        "images": len(images),
        "flops_per_image": flops_per_image(model_from_state(state)),
        "crossover": sentences,
    }
    files = write_outputs(frame, Path(exp_dir), summary)
    echo(format_table(frame))
    for sentence in sentences.values():
        echo(sentence)
    echo(f"benchmark: {', '.join(map(str, files))}")
    return frame


def benchmark_named(
    experiment: str,
    storage: str = RESULTS_DIR,
    dataset: str | None = None,
    size: int = 10_000,
    address: str | None = None,
    quick: bool = False,
    artifacts: list[str] | None = None,
    echo: Callable[[str], None] = print,
    **options: Any,
) -> pd.DataFrame:
    """`tuner benchmark`: an experiment's best model, every variant unless `quick`, on CIFAR-10's test split when
    the sweep used CIFAR-10, on `dataset` when given, else on synthetic images no trial trained on."""
    exp = load_experiment(experiment, storage)
    checkpoint = exp.checkpoint()  # one-line error when there is nothing to benchmark
    spec = dataset or ("cifar10" if exp.dataset == "cifar10" else "synthetic")
    source, images = evaluation_images(spec, size, exp.settings.seed, exp.settings.data_dir)
    echo(f"benchmark images: {len(images)} from {source}" + ("" if dataset or spec == "cifar10" else " (held out)"))
    kinds = ("eager",) if quick else KINDS
    found = artifacts_of(checkpoint, images, artifacts or [], echo) if "artifacts" in kinds else {}
    connect(address, echo)
    return benchmark_experiment(exp.path, images, echo=echo, kinds=kinds, artifacts=found, **options)
