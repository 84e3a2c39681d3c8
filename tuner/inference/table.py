"""The benchmark's table, its one-sentence answers and its chart: pandas and matplotlib only, no torch or Ray.

`crossover` answers the question the benchmark exists for: on each device, from
which batch size is the model faster than applying the teacher pipeline?
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from tuner.inference.rows import COLUMNS, DISPLAY


def with_speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """Speed-up of every row against the per-image CPU teacher and against the batched teacher on its device."""
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    per_image = frame.loc[frame["method"] == "teacher per image", "images_per_s"]
    batched = frame[frame["method"] == "teacher batched"].groupby("device")["images_per_s"].max()
    frame["x_vs_per_image"] = frame["images_per_s"] / per_image.iloc[0] if len(per_image) else float("nan")
    frame["x_vs_teacher_batched"] = frame["images_per_s"] / frame["device"].map(batched)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    return frame[COLUMNS]


def crossover(frame: pd.DataFrame) -> dict[str, str]:
    """Per device, one sentence: from which batch size the model (its fastest variant at each size) beats the
    teacher applied image by image on the CPU, and the teacher batched on that device."""
    per_image = frame.loc[frame["method"] == "teacher per image", "images_per_s"]
    sentences = {}
    for device, rows in frame.groupby("device", sort=False):
        model = rows[~rows["method"].str.startswith("teacher")]
        batched = rows.loc[rows["method"] == "teacher batched", "images_per_s"]
        if model.empty or per_image.empty or batched.empty:
            continue
        best = model.groupby("batch_size")["images_per_s"].max().sort_index()
        answers = []
        for rate in (per_image.max(), batched.max()):
            ratio = best / rate
            wins = ratio[ratio >= 1.0]
            answers.append((int(wins.index[0]) if len(wins) else None, float(ratio.max()), int(ratio.idxmax())))
        (first, best_x, at), (first_batched, best_xb, at_b) = answers
        if first is None:
            sentences[device] = (
                f"{device}: the model never beats the teacher applied image by image (best {best_x:.2f}x at batch {at})"
            )
            continue
        tail = (
            f"the batched teacher from batch {first_batched}"
            if first_batched is not None
            else f"the batched teacher never (best {best_xb:.2f}x at batch {at_b})"
        )
        sentences[device] = (
            f"{device}: the model beats the teacher applied image by image from batch {first}, and {tail}"
        )
    return sentences


def format_table(frame: pd.DataFrame) -> str:
    """The table as printed: every column in DISPLAY's format, empty where there is no value."""

    def number(fmt: str) -> Any:
        return lambda v: "" if pd.isna(v) else fmt.format(v)

    shown = frame.assign(**{column: frame[column].map(number(fmt)) for column, fmt in DISPLAY.items() if fmt})
    return shown.to_string(index=False)


def plot(frame: pd.DataFrame, path: Path, sentences: dict[str, str]) -> None:
    """Throughput against batch size per device, variant and thread count; teacher rows as horizontal lines;
    the crossover sentences underneath."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5.8))
    styles = iter(["-", "--", ":", "-."] * 4)
    models = frame[~frame["method"].str.startswith("teacher")]
    fewest = models.groupby("device")["threads"].transform("min") < models.groupby("device")["threads"].transform("max")
    models = models.assign(dashed=fewest & (models["threads"] == 1))
    for (device, method, threads, dashed), rows in models.groupby(
        ["device", "method", "threads", "dashed"], dropna=False
    ):
        label = f"{method} ({device}{'' if device != 'cpu' else f', {threads:g} thr'})"
        ax.plot(
            rows["batch_size"], rows["images_per_s"], marker="o", ms=3, lw=1, ls="--" if dashed else "-", label=label
        )
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
    ax.legend(fontsize=6, ncol=2)
    fig.text(0.01, 0.01, "\n".join(sentences.values()), fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.04 * max(1, len(sentences)), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(frame: pd.DataFrame, directory: Path, summary: dict[str, Any]) -> tuple[Path, Path, Path]:
    """benchmark.csv (the rows), benchmark.json (its companion: sentences, FLOPs, what was left out), benchmark.png."""
    csv, companion, png = (Path(directory) / f"benchmark.{ext}" for ext in ("csv", "json", "png"))
    frame.to_csv(csv, index=False)
    companion.write_text(json.dumps(summary, indent=2))
    plot(frame, png, summary.get("crossover", {}))
    return csv, companion, png
