"""`tuner report NAME`: report.md with figures, for a person deciding what the sweep found.

Figures (PNG, beside report.md):
- <metric>.png for every metric of the registry's progress line (val_loss.png,
  val_psnr.png, val_ssim.png): its value per epoch of every trial, with a
  marker where and why each trial ended (ASHA, plateau, completed, diverged);
- params.png: each searched parameter against the trial's final METRIC;
- samples.png: held-out images: input, teacher, best model, |difference|.
Plus Optuna's parameter importance (enough trials needed) and the compute that
early stopping saved.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from tuner.core import metrics
from tuner.core.constants import METRIC
from tuner.core.errors import DatasetError, SearchSpaceError
from tuner.core.metrics import Metric
from tuner.learn.checkpoints import load_model_file
from tuner.learn.teacher import teach, to_float
from tuner.results import pareto
from tuner.results.dashboard import load_study
from tuner.results.experiments import Experiment
from tuner.search.schedulers import statuses
from tuner.search.spaces import SearchSpace, load_space

MARKERS = statuses()  # status -> (marker, colour), from the scheduler registry
MIN_TRIALS_FOR_IMPORTANCE = 4


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def _plot_curves(exp: Experiment, metric: Metric, path: Path) -> bool:
    """One metric per epoch of every trial, marked where and why each ended; False when nothing to draw."""
    from matplotlib.ticker import MaxNLocator

    if metric.name not in exp.history or not exp.history[metric.name].notna().any():
        return False  # e.g. val_ssim in an experiment recorded before it existed
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for _, trial in exp.trials.iterrows():
        h = exp.history[exp.history["trial_id"].astype(str) == str(trial["trial_id"])]
        h = h[h[metric.name].notna()]
        if h.empty:
            continue
        ax.plot(h["epoch"], h[metric.name], alpha=0.7, lw=1)
        marker, colour = MARKERS.get(trial["status"], ("?", "gray"))
        ax.scatter(h["epoch"].iloc[-1], h[metric.name].iloc[-1], marker=marker, color=colour, s=60, zorder=3)
    for status, (marker, colour) in MARKERS.items():
        if status in set(exp.trials["status"]):
            ax.scatter([], [], marker=marker, color=colour, label=status)
    better = "lower" if metric.direction == "min" else "higher"
    ax.set(
        yscale="log" if metric.log_scale else "linear",
        xlabel="epoch",
        ylabel=f"{metric.label}{f' ({metric.unit})' if metric.unit else ''}, {better} is better",
        title=f"{exp.name}: every trial, and why it ended",
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ax.get_legend_handles_labels()[0]:  # none while every trial still runs
        ax.legend(title="ended by", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_params(exp: Experiment, space: SearchSpace | None, path: Path) -> bool:
    names = [p.name for p in space.params] if space else [c[7:] for c in exp.trials.columns if c.startswith("config/")]
    ok = exp.trials[exp.trials[METRIC].notna()]
    names = [n for n in names if f"config/{n}" in ok.columns and pd.api.types.is_numeric_dtype(ok[f"config/{n}"])]
    if ok.empty or not names:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
    optimised = metrics.get(METRIC)
    for ax, name in zip(axes[0], names, strict=True):
        ax.scatter(ok[f"config/{name}"], ok[METRIC], c="tab:blue")
        log = space and any(p.name == name and p.type == "loguniform" for p in space.params)
        ax.set(
            xlabel=name,
            ylabel=f"final {optimised.label}",
            yscale="log" if optimised.log_scale else "linear",
            xscale="log" if log else "linear",
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _shown(metric: Metric, value: Any) -> str:
    """A value for the report; "not recorded" for one an older tuner did not record."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return "not recorded" if missing else metric.format(value)


def _best_lines(best: dict[str, Any]) -> list[str]:
    """The best trial: its metrics (last epoch and best epoch) and its configuration, as Markdown."""
    m = best["metrics"]
    head = ", ".join(f"{x.name} {_shown(x, m.get(x.name))}" for x in metrics.shown())
    lines = [f"**Best trial {best['trial_id']}** (by {METRIC}): {head}, after {m['epochs']} epochs.", ""]
    lines += ["| metric | last epoch | best epoch |", "|---|---|---|"]
    lines += [
        f"| {x.label} | {_shown(x, m.get(x.name))} | {_shown(x, m.get('best_' + x.name))} |"
        for x in metrics.per_trial()
    ]
    lines += ["", "| parameter | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in best["config"].items()]
    return [*lines, ""]


@torch.no_grad()
def _plot_samples(exp: Experiment, path: Path, count: int = 6) -> str | None:
    """Grid of held-out images; returns why not, when the images cannot be had."""
    try:
        images = exp.heldout_images(count)
    except DatasetError as exc:
        return str(exc)
    model = load_model_file(exp.checkpoint())
    x = to_float(images)
    teacher, student = teach(images), model(x)
    plt = _pyplot()
    columns = [
        ("input", x.permute(0, 2, 3, 1)),
        ("teacher", teacher[:, 0]),
        ("model", student[:, 0]),
        ("|difference| x5", (student - teacher).abs()[:, 0] * 5),
    ]
    fig, axes = plt.subplots(len(images), 4, figsize=(6, 1.6 * len(images)), squeeze=False)
    for row in range(len(images)):
        for col, (title, data) in enumerate(columns):
            ax = axes[row][col]
            ax.imshow(data[row].clamp(0, 1).numpy(), cmap=None if col == 0 else "gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def importance(study: Any) -> dict[str, float] | None:
    """Optuna's parameter importance over the study's finished trials, or None if too few."""
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < MIN_TRIALS_FOR_IMPORTANCE:
        return None
    # A --pareto study has two objectives; importance is for the first, METRIC.
    target = (lambda trial: trial.values[0]) if len(study.directions) > 1 else None
    return optuna.importance.get_param_importances(study, target=target)


def _plot_history(study: Any, path: Path) -> None:
    """Optuna's optimisation history: every trial's value and the best so far, in the order proposed."""
    import optuna
    from optuna.visualization.matplotlib import plot_optimization_history

    plt = _pyplot()
    two = len(study.directions) > 1  # a --pareto study: its history of the first objective, METRIC
    with warnings.catch_warnings():  # "experimental" since Optuna 2.2, said on every call; the figure is fine
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = plot_optimization_history(study, target=(lambda t: t.values[0]) if two else None, target_name=METRIC)
    ax.set_yscale("log" if metrics.get(METRIC).log_scale else "linear")  # the study's values are METRIC's
    ax.figure.set_size_inches(7, 4)
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=110)
    plt.close(ax.figure)


def compute_saved(exp: Experiment) -> tuple[int, int]:
    """(epochs actually run, epochs had every trial run to max_epochs)."""
    return int(exp.trials["epochs"].sum()), len(exp.trials) * exp.settings.max_epochs


def write_report(exp: Experiment) -> Path:
    out = exp.path
    try:
        space = load_space(str(exp.space_file))
    except SearchSpaceError:
        space = None
    curves = [m for m in metrics.shown() if _plot_curves(exp, m, out / f"{m.name}.png")]
    has_params = _plot_params(exp, space, out / "params.png")
    samples_missing = _plot_samples(exp, out / "samples.png") if exp.best else "no trial finished an epoch"
    run, full = compute_saved(exp)
    lines = [
        f"# Sweep report: {exp.name}",
        "",
        f"Dataset: {exp.dataset}; {len(exp.trials)} trials; state: {exp.state_text}; "
        f"search space: {exp.settings.space}.",
        "",
    ]
    if exp.best:
        lines += _best_lines(exp.best)
    counts = exp.trials["status"].value_counts().to_dict()
    lines += [
        "## Early stopping",
        "",
        f"Trials by how they ended: {', '.join(f'{k} {v}' for k, v in counts.items())}.",
        "",
        f"Epochs run: {run} of {full} had every trial run to {exp.settings.max_epochs} epochs: "
        f"early stopping saved {1 - run / full:.0%} of the training compute."
        if full
        else "",
        "",
    ]
    lines += [f"![{m.label} per epoch]({m.name}.png)\n" for m in curves]
    if exp.info.get("teacher_speed"):  # a --pareto sweep
        lines += pareto.report_lines(exp.trials, exp.info["teacher_speed"], out)
    if has_params:
        lines += [f"## Parameters against the final {metrics.get(METRIC).label}", "", "![parameters](params.png)", ""]
    study = load_study(exp.path)
    imp = importance(study) if study is not None else None
    lines += ["## Parameter importance (Optuna, fANOVA)", ""]
    if study is None:
        lines += ["No Optuna study kept for this sweep (PBT, or a sweep by an older tuner)."]
    elif imp:
        lines += ["| parameter | importance |\n|---|---|"] + [f"| {k} | {v:.2f} |" for k, v in imp.items()]
    else:
        lines += [f"Needs at least {MIN_TRIALS_FOR_IMPORTANCE} finished trials in the study."]
    if study is not None and any(t.state.name == "COMPLETE" for t in study.trials):  # else Optuna warns, draws none
        _plot_history(study, out / "history.png")
        lines += ["", "## Optimisation history (Optuna study)", "", "![optimisation history](history.png)"]
    lines += ["", "## Held-out images: input, teacher, model, difference", ""]
    lines += ["![samples](samples.png)"] if not samples_missing else [f"Not drawn: {samples_missing}."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
