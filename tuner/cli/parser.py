"""The `tuner` command line's parser: one function per group of commands; each flag's help ends with its
default in brackets."""

from __future__ import annotations

import argparse

from tuner.cli import commands
from tuner.cli.args import (
    Parser,
    batch_sizes,
    experiment_arg,
    finite_float,
    names,
    port,
    positive_float,
    positive_int,
    storage_flag,
    text,
)
from tuner.cli.sweep_args import add_sweep
from tuner.core.constants import DATASETS, METRIC, TABLE_FORMATS
from tuner.inference.formats import FORMATS, VERIFY_IMAGES
from tuner.search.schedulers import STATUSES

DESCRIPTION = (
    "The `tuner` command line: hyperparameter sweeps on Ray Tune of a CNN that imitates a torchvision pipeline."
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tuner", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_sweep(sub, commands.cmd_sweep)
    for add in (_reading, _export, _benchmark, _serving):
        add(sub)
    return parser


def _reading(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="experiments under --storage")
    storage_flag(p)
    p.add_argument("--format", choices=TABLE_FORMATS, default="table")
    p.set_defaults(func=commands.cmd_list)

    p = sub.add_parser("results", help="leaderboard of an experiment's trials")
    experiment_arg(p)
    p.add_argument(
        "--sort",
        default=METRIC,
        help=f"column, metric (ssim for val_ssim) or parameter to sort by; metrics sort best first [{METRIC}]",
    )
    p.add_argument("--descending", action="store_true", help="sort high to low (metrics: always best first)")
    p.add_argument("--top", type=positive_int, default=20, help="rows to show [20]")
    p.add_argument(
        "--columns",
        type=names("columns or parameter names"),
        help="comma-separated columns or parameter names [leaderboard + parameters]",
    )
    p.add_argument("--status", type=names("statuses"), help=f"comma-separated statuses to keep ({', '.join(STATUSES)})")
    p.add_argument(
        "--pareto",
        action="store_true",
        help="only the trials on the fidelity-speed front of a --pareto sweep: those no other trial matches in "
        "both val_loss and images/s while beating in one; then one sentence per device",
    )
    p.add_argument("--format", choices=TABLE_FORMATS, default="table")
    p.set_defaults(func=commands.cmd_results)

    p = sub.add_parser("report", help="write report.md with figures into the experiment directory")
    experiment_arg(p)
    p.set_defaults(func=commands.cmd_report)


def _export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the best (or a chosen) trial's model, verified")
    experiment_arg(p)
    p.add_argument("--format", choices=sorted(FORMATS), default="state_dict")
    p.add_argument("--out", required=True, type=text("a directory"), help="output directory")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--trial", help="trial id; its file is named model-TRIAL.* [the best trial, model.*]")
    which.add_argument(
        "--fastest-above",
        type=finite_float,
        metavar="DB",
        help="the fastest trial of a --pareto sweep whose val PSNR is at least DB dB; named model-TRIAL.*",
    )
    p.add_argument(
        "--images",
        type=positive_int,
        help=f"held-out images to verify the export on [{VERIFY_IMAGES}, or all there are when fewer]",
    )
    p.add_argument("--force", action="store_true", help="replace an existing file of the same name")
    p.set_defaults(func=commands.cmd_export)


def _benchmark(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark", help="inference time of the best model against the teacher, on CPU and GPU Ray workers"
    )
    experiment_arg(p)
    p.add_argument("--device", choices=["cpu", "gpu", "all"], default="all", help="which workers to time [all]")
    p.add_argument(
        "--dataset",
        type=text("a dataset, e.g. folder:PATH, or leave it out"),
        help="benchmark on other images, e.g. folder:PATH [the experiment's: CIFAR-10 test split or held-out images]",
    )
    p.add_argument("--size", type=positive_int, default=10_000, help="images at most [10000]")
    p.add_argument(
        "--batch-sizes",
        type=batch_sizes,
        help="comma-separated model batch sizes [CPU 1,32,128,512,2048; GPU also 8192]",
    )
    p.add_argument(
        "--artifact",
        action="append",
        metavar="PATH",
        help="time this exported .torchscript.pt or .onnx file of the experiment's best model (repeatable) "
        "[the experiment's own exports, made for the benchmark]",
    )
    p.add_argument("--quick", action="store_true", help="only the teacher and the model as trained, as after a sweep")
    p.add_argument(
        "--min-run-time", type=positive_float, default=0.5, help="seconds of timing per row, after warm-up [0.5]"
    )
    p.add_argument(
        "--cpus", type=positive_int, help="CPUs of the CPU worker (torch threads follow) [all of the largest node's]"
    )
    p.add_argument(
        "--address",
        type=text("HOST:PORT or auto"),
        help="Ray cluster HOST:PORT or auto [$RAY_ADDRESS, else a private local Ray]",
    )
    p.set_defaults(func=commands.cmd_benchmark)


def _serving(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="the sweep's Optuna study in optuna-dashboard, live or afterwards")
    experiment_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to serve on [127.0.0.1]")
    p.add_argument("--port", type=port, default=8080, help="port, 1 to 65535 [8080]")
    # A server with open connections would wait for them at exit after a Ctrl-C; `kill` ends it at once.
    p.set_defaults(func=commands.cmd_dashboard, sigterm_ends_it=True)

    p = sub.add_parser("evaluate", help="MSE and PSNR against the teacher of a model on any dataset")
    p.add_argument(
        "model", help="experiment name or path (its best model), or a model file (.pt, .torchscript.pt, .onnx)"
    )
    storage_flag(p)
    p.add_argument("--dataset", default="synthetic", help=f"{' | '.join(DATASETS)} [synthetic]")
    p.add_argument(
        "--size", type=positive_int, default=10_000, help="images at most (CIFAR-10: its test split) [10000]"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic images [0]")
    p.set_defaults(func=commands.cmd_evaluate)
