"""`tuner benchmark NAME`: is the trained model a faster way to apply the teacher, on CPU and on GPU?

    tuner benchmark demo --device all          # CPU and (where the cluster has one) GPU rows
    tuner benchmark demo --dataset folder:~/photos --batch-sizes 1,64,1024

Each device's rows run inside a Ray task that asks for that device (num_gpus=1
for the GPU rows), so the same command works on a workstation and on a cluster.
Writes benchmark.csv and benchmark.png into the experiment directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402

from tuner.timing import measure_device  # noqa: E402

DEFAULT_BATCH_SIZES = (1, 32, 128, 512, 2048)
DEVICES = ("cpu", "gpu", "all")
COLUMNS = ["device", "method", "batch_size", "images_per_s", "set_s", "spread", "images_per_s_with_copy",
           "psnr_db", "x_vs_per_image", "x_vs_teacher_batched"]


def run_benchmark(
    checkpoint: dict[str, Any],
    images: torch.Tensor,
    device: str = "all",
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES,
    min_run_time: float = 0.5,
    cpus: int | None = None,
    echo: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Benchmark rows for the model in `checkpoint` on `images` (uint8), one Ray task per device.

    Ray must be initialised (a local instance or a cluster)."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; use one of: {', '.join(DEVICES)}")
    cpus = cpus or max(1, int(ray.cluster_resources().get("CPU", 1)))
    measure = ray.remote(measure_device)
    rows: list[dict[str, Any]] = []
    # One device at a time: a GPU task launching kernels would steal cycles from the CPU rows.
    if device in ("cpu", "all"):
        echo(f"benchmark: CPU worker ({cpus} CPUs), {len(images)} images, batch sizes {list(batch_sizes)}")
        task = measure.options(num_cpus=cpus).remote("cpu", checkpoint, images, list(batch_sizes), min_run_time, cpus)
        rows += ray.get(task)
    if device in ("gpu", "all"):
        if ray.cluster_resources().get("GPU", 0) >= 1:
            echo("benchmark: GPU worker")
            task = measure.options(num_cpus=1, num_gpus=1).remote("cuda", checkpoint, images, list(batch_sizes), min_run_time)
            rows += ray.get(task)
        else:
            echo("benchmark: GPU rows skipped: the Ray cluster has no GPU")
    return with_speedups(pd.DataFrame(rows))


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
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    styles = iter(["-", "--", ":", "-."] * 4)
    for (device, method), rows in frame[frame["method"].str.startswith("model")].groupby(["device", "method"]):
        ax.plot(rows["batch_size"], rows["images_per_s"], marker="o", label=f"{method} ({device})")
    for _, row in frame[frame["method"].str.startswith("teacher")].iterrows():
        ax.axhline(row["images_per_s"], ls=next(styles), color="gray", lw=1)
        ax.text(frame["batch_size"].min(), row["images_per_s"], f"{row['method']} ({row['device']})", fontsize=7,
                va="bottom", color="dimgray")
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="images / s",
           title="Inference throughput: model against the teacher pipeline")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(frame: pd.DataFrame, directory: Path) -> tuple[Path, Path]:
    csv, png = Path(directory) / "benchmark.csv", Path(directory) / "benchmark.png"
    frame.to_csv(csv, index=False)
    plot(frame, png)
    return csv, png
