"""The fidelity-versus-speed front of a `--pareto` sweep, read from its trials table (no Ray, no torch).

A trial is on the front when no other trial is at least as good in both objectives and better in one: lower
val_loss (the searcher's first objective) and more images_per_s (its second: measured by the trial on its own
device, then again when the sweep ends, one model at a time, which is the figure shown). The answer to the
project's question is then one sentence per quality threshold on the sweep's device:

    on cpu (2 threads) the fastest model at >= 30 dB runs 9,100 images/s, 0.49x the per-image teacher
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from tuner.core.errors import TunerError

# The two objectives, in the order the searcher is given them: (column, mode).
OBJECTIVES = (("val_loss", "min"), ("images_per_s", "max"))
SPEED, RATIO = "images_per_s", "x_vs_teacher"
# Every model and the teacher timed again when the sweep ended, one at a time (tuner.run.pareto.retime_models).
SPEED_FILE = "speed.json"
IN_TRIAL = "images_per_s_in_trial"  # what the trial measured beside other trials: what the searcher saw


def retimed(exp_dir: Path) -> dict[str, Any] | None:
    """speed.json, or None when the sweep has none (not --pareto, interrupted, or made by an older tuner)."""
    try:
        found = json.loads((Path(exp_dir) / SPEED_FILE).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and {"teacher", "models"} <= set(found) else None


def with_retimed(trials: pd.DataFrame, exp_dir: Path) -> pd.DataFrame:
    """The trials with the end-of-sweep figures in images_per_s and x_vs_teacher; the trial's own figure
    moves to images_per_s_in_trial. Unchanged without speed.json."""
    found = retimed(exp_dir)
    if found is None or SPEED not in trials.columns or trials.empty:
        return trials
    trials = trials.copy()
    trials.insert(list(trials.columns).index(SPEED) + 1, IN_TRIAL, trials[SPEED])
    trials[SPEED] = trials["trial_id"].astype(str).map(found["models"]).astype(float)
    trials[RATIO] = trials[SPEED] / float(found["teacher"]["per_image"])
    return trials


def _usable(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials with both objectives measured and finite (a trial that failed before its first epoch has none);
    a one-line error for an experiment that measured no speed."""
    # Every trials.csv has the columns (the metric registry's); a sweep without --pareto leaves them empty.
    missing = [c for c, _ in OBJECTIVES if c not in trials.columns or not trials[c].notna().any()]
    if missing:
        raise TunerError(
            f"this experiment has no {', '.join(missing)} column: it was not a --pareto sweep; "
            "run one with `tuner sweep --pareto`"
        )
    finite = trials[[c for c, _ in OBJECTIVES]].apply(pd.to_numeric, errors="coerce")
    keep = finite.notna().all(axis=1) & finite.map(math.isfinite).all(axis=1)
    return trials[keep]


def non_dominated(trials: pd.DataFrame) -> pd.DataFrame:
    """Exactly the trials no other trial dominates, fastest first."""
    usable = _usable(trials)
    signs = [1.0 if mode == "min" else -1.0 for _, mode in OBJECTIVES]
    points = [[s * float(row[c]) for (c, _), s in zip(OBJECTIVES, signs, strict=True)] for _, row in usable.iterrows()]

    def dominated(i: int) -> bool:
        return any(
            all(o <= p for o, p in zip(other, points[i], strict=True)) and other != points[i]
            for j, other in enumerate(points)
            if j != i
        )

    front = usable[[not dominated(i) for i in range(len(points))]]
    return front.sort_values(SPEED, ascending=False, kind="stable")


def fastest_above(trials: pd.DataFrame, min_psnr: float) -> pd.Series:
    """The fastest trial whose val PSNR is at least `min_psnr` dB; a one-line error when none reaches it."""
    usable = _usable(trials)
    good = usable[pd.to_numeric(usable["val_psnr"], errors="coerce") >= min_psnr]
    if good.empty:
        best = pd.to_numeric(usable["val_psnr"], errors="coerce").max()
        raise TunerError(
            f"no trial reaches {min_psnr:g} dB val PSNR (the best reaches {best:.2f} dB); lower --fastest-above"
        )
    return good.sort_values(SPEED, ascending=False, kind="stable").iloc[0]


def answer(trials: pd.DataFrame, teacher: dict[str, Any], thresholds: tuple[float, ...] = (25.0, 30.0)) -> list[str]:
    """One sentence per threshold for the sweep's device: is a small CNN a faster way to apply the pipeline?

    `teacher` holds what the sweep measured once: device, threads, per_image and batched images/s."""
    where = f"on {teacher['device']} ({teacher['threads']} thread{'s' * (teacher['threads'] != 1)})"
    sentences = []
    for db in thresholds:
        try:
            row = fastest_above(trials, db)
        except TunerError:
            sentences.append(f"{where} no model reaches {db:g} dB")
            continue
        ratio = float(row[SPEED]) / float(teacher["per_image"])
        verdict = "faster than" if ratio > 1 else "slower than"
        sentences.append(
            f"{where} the fastest model at >= {db:g} dB runs {float(row[SPEED]):,.0f} images/s, "
            f"{ratio:.2f}x the per-image teacher ({verdict} it; trial {row['trial_id']}, "
            f"{float(row['val_psnr']):.1f} dB)"
        )
    return sentences


def plot(trials: pd.DataFrame, teacher: dict[str, Any], path: Any) -> None:
    """val PSNR against images/s for every trial, the front joined and marked, the teacher's rates as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    usable, front = _usable(trials), non_dominated(trials)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(usable[SPEED], usable["val_psnr"], color="tab:gray", alpha=0.6, s=25, label="trial")
    ax.plot(front[SPEED], front["val_psnr"], "o-", color="tab:red", ms=7, label="front (non-dominated)")
    for key, style, label in (("per_image", "--", "teacher, image by image"), ("batched", ":", "teacher, batched")):
        ax.axvline(float(teacher[key]), color="black", ls=style, lw=1, label=f"{label}: {float(teacher[key]):,.0f}/s")
    ax.set(
        xscale="log",
        xlabel=f"inference images/s on {teacher['device']} ({teacher['threads']} thread"
        f"{'s' * (teacher['threads'] != 1)})",
        ylabel="validation PSNR (dB)",
        title="fidelity against speed: every trial, and the front",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report_lines(trials: pd.DataFrame, teacher: dict[str, Any], out: Any) -> list[str]:
    """The report's section on the front: the answer sentences, the figure and the front as a table."""
    plot(trials, teacher, out / "pareto.png")
    front = non_dominated(trials)
    searched = [c for c in trials.columns if c.startswith("config/") and trials[c].nunique(dropna=False) > 1]
    # Epochs and status: a small model the scheduler cut early sits on the front with fewer epochs trained.
    columns = ["trial_id", SPEED, RATIO, "val_psnr", "val_loss", "epochs", "status", *searched]
    rows = front[[c for c in columns if c in front.columns]].rename(columns=lambda c: c.removeprefix("config/"))
    table = ["| " + " | ".join(rows.columns) + " |", "|" + "---|" * len(rows.columns)]
    table += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows.itertuples(index=False)]
    return [
        "## Fidelity against speed (--pareto)",
        "",
        *[f"- {sentence}." for sentence in answer(trials, teacher)],
        "",
        "![fidelity against speed](pareto.png)",
        "",
        *table,
        "",
    ]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)
