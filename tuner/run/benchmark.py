"""`tuner benchmark NAME`: is the trained model a faster way to apply the teacher, on CPU and on GPU?

    tuner benchmark demo --device all          # CPU and (where a node has one) GPU rows
    tuner benchmark demo --artifact exported/model.onnx --batch-sizes 1,64,1024

Rows: the teacher (image by image, batched, as one matmul), then the model as
trained, as its exported TorchScript and ONNX files, and compiled; on the CPU at
1 thread and at all the worker's threads. Each model row has its PSNR against
the teacher and its GFLOP/s (FLOPs per image counted once). After the table, one
sentence per device says from which batch size the model beats the teacher.

Each device's rows run in a Ray worker that holds that device on one node
(cluster.run_on_node: checked against the nodes first, bounded waits), so
the same command works on a workstation and on a cluster. Before any row is
timed, each device's batches are checked against its memory (the CPU node's
Ray memory, the GPU's free memory): a batch that does not fit is refused in
one line that says what does. The CPU worker takes
the CPUs of the largest node unless --cpus says otherwise. Writes
benchmark.csv, benchmark.json (the sentences) and benchmark.png into the
experiment directory. At the end of a sweep only the quick rows run (the
teacher and the model as trained).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import ray
import torch

from tuner.core.constants import BEST_MODEL_FILE, RESULTS_DIR
from tuner.core.errors import ClusterError
from tuner.inference.benchmark import BenchmarkOptions, artifacts_of, bytes_per_image, check_memory, free_gpu_memory
from tuner.inference.table import crossover, format_table, with_speedups, write_outputs
from tuner.inference.timing import flops_per_image, measure_device
from tuner.learn.checkpoints import load_checkpoint, model_from_state
from tuner.learn.data import evaluation_images
from tuner.results.experiments import load_experiment
from tuner.run.cluster import RayInfo, check_fits, connect, info, run_on_node

log = logging.getLogger(__name__)

# (device, worker CPUs, worker GPUs, what the worker is called, what to do when it cannot start)
Plan = list[tuple[str, int, int, str, str]]


def _plan(found: RayInfo, options: BenchmarkOptions) -> Plan:
    """The workers to run, one per device; the CPU worker takes one node's CPUs (a worker never spans nodes)."""
    plan: Plan = []
    if options.device in ("cpu", "all"):
        cpus = options.cpus or max(1, int(max(n.cpus for n in found.nodes)))
        plan.append(("cpu", cpus, 0, "the CPU benchmark worker", "pass --cpus with at most the CPUs of one node"))
    if options.device in ("gpu", "all"):
        if any(n.gpus >= 1 for n in found.nodes):
            plan.append(("cuda", 1, 1, "the GPU benchmark worker", "free a GPU"))
        elif options.device == "gpu":
            raise ClusterError(
                "--device gpu asks for a GPU, but no node of this Ray has one; use --device cpu, "
                "or --address a cluster with a GPU node"
            )
        else:
            log.info("benchmark: GPU rows skipped: no node of this Ray has a GPU")
    return plan


def _check_memory(plan: Plan, checkpoint: dict[str, Any], images: torch.Tensor, options: BenchmarkOptions) -> None:
    """Every device's batches against its memory, before any row is timed: Ray's OOM killer ends a worker
    whose batch does not fit without a word that says why."""
    per_image = bytes_per_image(model_from_state(checkpoint))
    fixed = len(images) * images[0].numel() * 4  # the image set, on the device as float32
    for dev, cpus, gpus, what, fix in plan:
        check_fits(info(), cpus, gpus, what, fix)  # a worker no node can hold is the first thing to say
        if dev == "cpu":
            # Ray's "memory" resource: what the node had for tasks when Ray started there, object store left out.
            nodes = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) >= cpus]
            available = max((n["Resources"].get("memory", 0.0) for n in nodes), default=0.0)
            where = "the CPU worker's node"
        else:
            available = run_on_node(free_gpu_memory, (), cpus=cpus, gpus=gpus, what=what, fix=fix)
            where = "the GPU worker's device"
        check_memory(options.sizes(dev), per_image, fixed, available, where)


def run_benchmark(
    checkpoint: dict[str, Any],
    images: torch.Tensor,
    options: BenchmarkOptions | None = None,
    artifacts: dict[str, bytes] | None = None,
) -> pd.DataFrame:
    """Benchmark rows for the model in `checkpoint` on `images` (uint8), one Ray worker per device.

    artifacts: exported files' bytes by format name. Ray must be connected."""
    options = options or BenchmarkOptions()
    plan = _plan(info(), options)
    _check_memory(plan, checkpoint, images, options)
    rows: list[dict[str, Any]] = []
    # One device at a time: a GPU worker launching kernels would steal cycles from the CPU rows.
    for dev, worker_cpus, gpus, what, fix in plan:
        log.info(
            f"benchmark: {dev.upper()} worker ({worker_cpus} CPUs), {len(images)} images, batch sizes "
            f"{options.sizes(dev)}, variants: {', '.join(options.kinds)}"
        )
        args = (dev, checkpoint, images, options, worker_cpus, artifacts or {})
        measured, skipped = run_on_node(measure_device, args, cpus=worker_cpus, gpus=gpus, what=what, fix=fix)
        rows += measured
        for line in skipped:
            log.info(f"benchmark: {dev} rows left out: {line}")
    return with_speedups(pd.DataFrame(rows))


def benchmark_experiment(
    exp_dir: Path,
    images: torch.Tensor,
    options: BenchmarkOptions | None = None,
    artifacts: dict[str, bytes] | None = None,
) -> pd.DataFrame:
    """Benchmark an experiment's best model on `images`; writes benchmark.csv/json/png beside its results.
    The default options are the quick benchmark at the end of a sweep."""
    state = load_checkpoint(Path(exp_dir) / BEST_MODEL_FILE)
    frame = run_benchmark(state, images, options, artifacts)
    sentences = crossover(frame)
    summary = {
        "images": len(images),
        "flops_per_image": flops_per_image(model_from_state(state)),
        "crossover": sentences,
    }
    files = write_outputs(frame, Path(exp_dir), summary)
    log.info(format_table(frame))
    for sentence in sentences.values():
        log.info(sentence)
    log.info(f"benchmark: {', '.join(map(str, files))}")
    return frame


def benchmark_named(
    experiment: str,
    options: BenchmarkOptions,
    storage: str = RESULTS_DIR,
    dataset: str | None = None,
    size: int = 10_000,
    address: str | None = None,
) -> pd.DataFrame:
    """`tuner benchmark`: an experiment's best model on CIFAR-10's test split when the sweep used CIFAR-10, on
    `dataset` when given, else on synthetic images no trial trained on."""
    exp = load_experiment(experiment, storage)
    checkpoint = exp.checkpoint()  # one-line error when there is nothing to benchmark
    spec = dataset or ("cifar10" if exp.dataset == "cifar10" else "synthetic")
    source, images = evaluation_images(spec, size, exp.settings.seed, exp.settings.data_dir)
    log.info(f"benchmark images: {len(images)} from {source}" + ("" if dataset or spec == "cifar10" else " (held out)"))
    found = artifacts_of(checkpoint, images, options.artifacts) if "artifacts" in options.kinds else {}
    connect(address)
    return benchmark_experiment(exp.path, images, options, found)
