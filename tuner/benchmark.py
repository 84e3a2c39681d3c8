"""`tuner benchmark NAME`: is the trained model a faster way to apply the teacher, on CPU and on GPU?

    tuner benchmark demo --device all          # CPU and (where a node has one) GPU rows
    tuner benchmark demo --dataset folder:~/photos --batch-sizes 1,64,1024

Each device's rows run in a Ray worker that holds that device on one node
(raycluster.run_on_node: checked against the nodes first, bounded waits), so
the same command works on a workstation and on a cluster. The CPU worker takes
the CPUs of the largest node unless --cpus says otherwise. Writes
benchmark.csv and benchmark.png into the experiment directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from tuner.checkpoints import load_checkpoint
from tuner.constants import BEST_MODEL_FILE, RESULTS_DIR
from tuner.errors import TunerError
from tuner.timing import measure_device

DEFAULT_BATCH_SIZES = (1, 32, 128, 512, 2048)
DEVICES = ("cpu", "gpu", "all")
COLUMNS = [
    "device",
    "method",
    "batch_size",
    "images_per_s",
    "set_s",
    "spread",
    "images_per_s_with_copy",
    "psnr_db",
    "x_vs_per_image",
    "x_vs_teacher_batched",
]


def run_benchmark(
    checkpoint: dict[str, Any],
    images: torch.Tensor,
    device: str = "all",
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES,
    min_run_time: float = 0.5,
    cpus: int | None = None,
    echo: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Benchmark rows for the model in `checkpoint` on `images` (uint8), one Ray worker per device.

    Ray must be connected (raycluster.connect)."""
    from tuner.raycluster import info, run_on_node

    if device not in DEVICES:
        raise TunerError(f"unknown device {device!r}; use one of: {', '.join(DEVICES)}")
    found = info()
    cpus = cpus or max(1, int(max(n.cpus for n in found.nodes)))  # one node's CPUs: a worker never spans nodes
    rows: list[dict[str, Any]] = []
    args = (checkpoint, images, list(batch_sizes), min_run_time)
    # One device at a time: a GPU task launching kernels would steal cycles from the CPU rows.
    if device in ("cpu", "all"):
        echo(f"benchmark: CPU worker ({cpus} CPUs), {len(images)} images, batch sizes {list(batch_sizes)}")
        rows += run_on_node(
            measure_device,
            ("cpu", *args, cpus),
            cpus=cpus,
            gpus=0,
            what="the CPU benchmark worker",
            fix="pass --cpus with at most the CPUs of one node",
        )
    if device in ("gpu", "all"):
        if any(n.gpus >= 1 for n in found.nodes):
            echo("benchmark: GPU worker")
            rows += run_on_node(
                measure_device, ("cuda", *args), cpus=1, gpus=1, what="the GPU benchmark worker", fix="free a GPU"
            )
        elif device == "gpu":
            raise TunerError(
                "--device gpu asks for a GPU, but no node of this Ray has one; use --device cpu, "
                "or --address a cluster with a GPU node"
            )
        else:
            echo("benchmark: GPU rows skipped: no node of this Ray has a GPU")
    return with_speedups(pd.DataFrame(rows))


def benchmark_experiment(
    exp_dir: Path, images: torch.Tensor, echo: Callable[[str], None] = print, **options: Any
) -> pd.DataFrame:
    """Benchmark an experiment's best model on `images`; writes benchmark.csv/png beside its results."""
    frame = run_benchmark(load_checkpoint(Path(exp_dir) / BEST_MODEL_FILE), images, echo=echo, **options)
    csv, png = write_outputs(frame, Path(exp_dir))
    echo(format_table(frame))
    echo(f"benchmark: {csv} and {png}")
    return frame


def benchmark_named(
    experiment: str,
    storage: str = RESULTS_DIR,
    dataset: str | None = None,
    size: int = 10_000,
    address: str | None = None,
    echo: Callable[[str], None] = print,
    **options: Any,
) -> pd.DataFrame:
    """`tuner benchmark`: an experiment's best model, on its own held-out images or on `dataset`."""
    from tuner.data import evaluation_images
    from tuner.experiments import load_experiment
    from tuner.raycluster import connect

    exp = load_experiment(experiment, storage)
    exp.checkpoint()  # one-line error when there is nothing to benchmark
    if dataset:
        source, images = evaluation_images(dataset, size, exp.settings.seed)
    else:
        splits = exp.splits()
        source, images = (
            splits.source + (" test split" if splits.test is not None else " held out"),
            splits.benchmark_images[:size],
        )
    echo(f"benchmark images: {len(images)} from {source}")
    connect(address, echo)
    return benchmark_experiment(exp.path, images, echo=echo, **options)


def with_speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """Speed-up of every row against the per-image CPU teacher and against the batched teacher on its device."""
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    per_image = frame.loc[frame["method"] == "teacher per image", "images_per_s"]
    batched = frame[frame["method"] == "teacher batched"].set_index("device")["images_per_s"]
    frame["x_vs_per_image"] = frame["images_per_s"] / per_image.iloc[0] if len(per_image) else float("nan")
    frame["x_vs_teacher_batched"] = frame["images_per_s"] / frame["device"].map(batched)
    return frame[COLUMNS]


def format_table(frame: pd.DataFrame) -> str:
    shown = frame.assign(
        images_per_s=frame["images_per_s"].map("{:,.0f}".format),
        set_s=frame["set_s"].map("{:.3f}".format),
        spread=frame["spread"].map("±{:.0%}".format),
        images_per_s_with_copy=frame["images_per_s_with_copy"].map("{:,.0f}".format),
        psnr_db=frame["psnr_db"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}"),
        x_vs_per_image=frame["x_vs_per_image"].map("{:.2f}x".format),
        x_vs_teacher_batched=frame["x_vs_teacher_batched"].map("{:.2f}x".format),
    )
    return shown.to_string(index=False)


def plot(frame: pd.DataFrame, path: Path) -> None:
    """Throughput against batch size per device and model variant; teacher rows as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    styles = iter(["-", "--", ":", "-."] * 4)
    for (device, method), rows in frame[frame["method"].str.startswith("model")].groupby(["device", "method"]):
        ax.plot(rows["batch_size"], rows["images_per_s"], marker="o", label=f"{method} ({device})")
    for _, row in frame[frame["method"].str.startswith("teacher")].iterrows():
        ax.axhline(row["images_per_s"], ls=next(styles), color="gray", lw=1)
        ax.text(
            frame["batch_size"].min(),
            row["images_per_s"],
            f"{row['method']} ({row['device']})",
            fontsize=7,
            va="bottom",
            color="dimgray",
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="batch size",
        ylabel="images / s",
        title="Inference throughput: model against the teacher pipeline",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(frame: pd.DataFrame, directory: Path) -> tuple[Path, Path]:
    csv, png = Path(directory) / "benchmark.csv", Path(directory) / "benchmark.png"
    frame.to_csv(csv, index=False)
    plot(frame, png)
    return csv, png
