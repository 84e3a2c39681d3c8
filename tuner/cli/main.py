"""The `tuner` command line: it parses and prints; the package does the work.

    tuner sweep --preset quick --name demo     # run a sweep, write results/demo/
    tuner list                                 # experiments under results/
    tuner results demo --top 5 --format markdown
    tuner report demo                          # results/demo/report.md with figures
    tuner export demo --format onnx --out exported/
    tuner evaluate demo --dataset folder:~/photos
    tuner COMMAND --help                       # every option, with its default

Errors a user can fix (tuner.errors.TunerError, and bad flags) print one line,
`tuner: error: ...`, with exit status 2; anything else is a bug and keeps its
traceback. Only the commands that need torch or Ray import them, so --help,
`tuner list` and `tuner results` answer at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from tuner.core.constants import DATASETS, METRIC, RESULTS_DIR, TABLE_FORMATS
from tuner.core.errors import TunerError
from tuner.inference.formats import FORMATS, VERIFY_IMAGES
from tuner.search.schedulers import SCHEDULERS, STATUSES
from tuner.search.searchers import SEARCHERS
from tuner.search.settings import PRESETS, SweepSettings, check_seed
from tuner.search.spaces import available_spaces


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag gets tuner's one line instead of a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"tuner: error: {message}; see `{self.prog} --help`\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1; pass 1 or more")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is above 65535, the highest port; pass 1 to 65535")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value:g} is not above 0; pass a positive number of seconds")
    return value


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(_positive_int(b) for b in text.split(","))
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (give comma-separated whole numbers, e.g. 1,32,512)") from None


def _storage(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default=RESULTS_DIR, help=f"directory that holds experiments [{RESULTS_DIR}]")


def _experiment_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment name under --storage, or its path")
    _storage(p)


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a hyperparameter sweep",
        description="Run a sweep on Ray Tune. Flags override the preset; the preset's values are shown in brackets.",
    )
    q, d = PRESETS["quick"], SweepSettings()
    p.add_argument(
        "--preset", choices=sorted(PRESETS), default="quick", help="starting values for every option [quick]"
    )
    p.add_argument("--name", default="default", help="experiment name: results go to STORAGE/NAME [default]")
    p.add_argument(
        "--resume",
        metavar="NAME",
        help="continue the interrupted experiment NAME (its own settings; "
        "other flags but --storage/--address are ignored)",
    )
    p.add_argument(
        "--dataset", help=f"{' | '.join(DATASETS)}; auto uses CIFAR-10 if available, else synthetic [{q['dataset']}]"
    )
    p.add_argument(
        "--space",
        help=f"search space: a name ({', '.join(available_spaces())}) or a YAML path "
        "[the preset's: default for quick, full for full]",
    )
    p.add_argument("--num-samples", type=int, help=f"trials to run [{q['num_samples']}]")
    p.add_argument("--max-epochs", type=int, help=f"epochs per trial at most (ASHA's max_t) [{q['max_epochs']}]")
    p.add_argument("--grace-period", type=int, help=f"epochs before ASHA may stop a trial [{q['grace_period']}]")
    p.add_argument(
        "--reduction-factor", type=int, help=f"ASHA keeps 1/N of trials at each rung [{q['reduction_factor']}]"
    )
    p.add_argument("--patience", type=int, help=f"plateau stopper: epochs without improvement [{d.patience}]")
    p.add_argument("--min-delta", type=float, help=f"plateau stopper: relative improvement that counts [{d.min_delta}]")
    p.add_argument("--train-size", type=int, help=f"training images [{q['train_size']}]")
    p.add_argument("--val-size", type=int, help=f"validation images held out from training [{q['val_size']}]")
    p.add_argument(
        "--cpus-per-trial",
        type=float,
        help=f"CPUs each trial asks Ray for (torch threads follow) [{q['cpus_per_trial']}]",
    )
    p.add_argument(
        "--gpus-per-trial", type=float, help="GPUs each trial asks for; 0.25 shares one GPU between four trials [0]"
    )
    p.add_argument("--concurrency", type=int, help="trials at once [as many as fit on the nodes]")
    p.add_argument(
        "--max-failures", type=int, help=f"retries of a trial that raises, from its checkpoint [{d.max_failures}]"
    )
    p.add_argument(
        "--storage",
        help="directory or URI (s3://, gs://, file://) that holds experiments; on a multi-node "
        f"cluster it must be shared by every node; a URI's experiment is also copied to {RESULTS_DIR}/NAME "
        f"[{RESULTS_DIR}]",
    )
    p.add_argument(
        "--data-dir", help="where CIFAR-10 is looked for and downloaded [$TUNER_DATA_DIR or ~/.cache/tuner/data]"
    )
    p.add_argument(
        "--address",
        help="Ray cluster HOST:PORT, or auto for the one running on this machine "
        "[$RAY_ADDRESS, else a private local Ray]",
    )
    p.add_argument("--seed", type=int, help=f"seed for data, searcher and training [{d.seed}]")
    p.add_argument(
        "--searcher", choices=SEARCHERS, help="Optuna sampler that proposes trials [the space file's, else tpe]"
    )
    p.add_argument(
        "--scheduler",
        choices=SCHEDULERS,
        help="what ends or evolves trials: asha (tuner's, pauses trials at rungs), ray-asha (Ray's "
        "ASHAScheduler) or another Ray Tune scheduler [the space file's, else asha]",
    )
    p.add_argument(
        "--no-plateau", dest="plateau", action="store_false", default=None, help="turn the plateau stopper off"
    )
    p.add_argument(
        "--no-benchmark",
        dest="benchmark",
        action="store_false",
        default=None,
        help="skip the inference benchmark of the best model at the end",
    )
    p.add_argument(
        "--mlflow",
        metavar="URI",
        help="log every trial as an MLflow run under a parent run named after the sweep, e.g. "
        "http://127.0.0.1:5000 (needs tuner[tracking]) [off]",
    )
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    if not args.resume:  # flags are checked before Ray is even imported: a refusal comes at once
        keys = [f for f in SweepSettings.__dataclass_fields__ if f not in {"name", "space"}]
        overrides = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
        settings = SweepSettings.from_preset(args.preset, name=args.name, space=args.space, **overrides)
    from tuner.results.tables import leaderboard, render
    from tuner.run.fit import term_as_interrupt
    from tuner.run.sweep import resume_sweep, run_sweep

    with term_as_interrupt():  # SIGTERM ends a sweep as Ctrl-C does (and again around Ray's fit)
        if args.resume:
            outcome = resume_sweep(args.resume, args.storage or RESULTS_DIR, args.address)
        else:
            outcome = run_sweep(settings)
    summary = outcome.summary
    print()
    if summary is not None and summary.best is not None:
        print(render(leaderboard(summary.trials), "table"))
        print(f"\nbest: trial {summary.best['trial_id']}, val PSNR {summary.best['metrics']['val_psnr']:.2f} dB")
        print(f"files: {outcome.experiment_dir}/{{trials.csv,history.csv,best.json,best_model.pt}}")
    elif not outcome.interrupted:
        print(f"no trial finished an epoch; see {outcome.experiment_dir}")
        return 1
    if outcome.interrupted:
        print(f"interrupted: nothing is lost; continue with  {outcome.command('sweep --resume')}")
        return 130
    print(
        f"next: {outcome.command('results')} | {outcome.command('report')} | "
        f"{outcome.command('export')} --format onnx --out DIR"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from tuner.results.experiments import list_experiments
    from tuner.results.tables import render

    print(render(list_experiments(args.storage), args.format))
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from tuner.results.experiments import load_experiment
    from tuner.results.tables import leaderboard, render

    exp = load_experiment(args.experiment, args.storage)
    shown = leaderboard(
        exp.trials,
        args.sort,
        args.descending,
        args.top,
        args.columns.split(",") if args.columns else None,
        args.status.split(",") if args.status else None,
    )
    print(render(shown, args.format))
    if args.format == "table":
        print(f"\n{exp.name}: {len(exp.trials)} trials, {exp.state}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tuner.results.experiments import load_experiment
    from tuner.results.report import write_report

    print(f"wrote {write_report(load_experiment(args.experiment, args.storage))}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tuner.inference.export import export_model, verification_images
    from tuner.results.experiments import load_experiment

    exp = load_experiment(args.experiment, args.storage)
    checkpoint = exp.checkpoint(args.trial)
    images = verification_images(exp, args.images)
    report = export_model(checkpoint, args.format, Path(args.out), images, args.trial, args.force)
    print(f"wrote {report.path} ({report.format}) from {checkpoint}")
    print(
        f"verified on {report.fidelity.images} held-out images: max |export - checkpoint| = {report.max_abs_diff:.1e} "
        f"(tolerance {report.tolerance:.0e}); PSNR against the teacher {report.fidelity.psnr:.2f} dB"
    )
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from tuner.inference.benchmark import QUICK, BenchmarkOptions
    from tuner.inference.variants import KINDS
    from tuner.run.benchmark import benchmark_named

    options = BenchmarkOptions(
        device=args.device,
        batch_sizes=args.batch_sizes,
        min_run_time=args.min_run_time,
        cpus=args.cpus,
        kinds=QUICK if args.quick else KINDS,
        artifacts=tuple(args.artifact or ()),
    )
    benchmark_named(args.experiment, options, args.storage, args.dataset, args.size, args.address)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    check_seed(args.seed)  # the same check as `tuner sweep --seed`, before torch is imported
    from tuner.core.errors import ExperimentError
    from tuner.inference.evaluate import fidelity_on_dataset
    from tuner.results.experiments import find_experiment, load_experiment

    target = Path(args.model)
    if not os.path.isfile(target):  # False, not OSError, for a name longer than the system allows
        try:
            exp_dir = find_experiment(args.model, args.storage)
        except ExperimentError:
            raise ExperimentError(
                f"{args.model!r} is neither a model file nor an experiment; run `tuner list` or pass a .pt/.onnx path"
            ) from None
        target = load_experiment(exp_dir).checkpoint()
    source, fid = fidelity_on_dataset(target, args.dataset, args.size, args.seed)
    print(f"{target} on {source}: {fid.images} images, MSE {fid.mse:.3g}, PSNR {fid.psnr:.2f} dB against the teacher")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from tuner.results.dashboard import serve

    serve(args.experiment, args.storage, args.host, args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tuner", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_sweep(sub)

    p = sub.add_parser("list", help="experiments under --storage")
    _storage(p)
    p.add_argument("--format", choices=TABLE_FORMATS, default="table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("results", help="leaderboard of an experiment's trials")
    _experiment_arg(p)
    p.add_argument(
        "--sort",
        default=METRIC,
        help=f"column, metric (ssim for val_ssim) or parameter to sort by; metrics sort best first [{METRIC}]",
    )
    p.add_argument("--descending", action="store_true", help="sort high to low (metrics: always best first)")
    p.add_argument("--top", type=_positive_int, default=20, help="rows to show [20]")
    p.add_argument("--columns", help="comma-separated columns or parameter names [leaderboard + parameters]")
    p.add_argument("--status", help=f"comma-separated statuses to keep ({', '.join(STATUSES)})")
    p.add_argument("--format", choices=TABLE_FORMATS, default="table")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("report", help="write report.md with figures into the experiment directory")
    _experiment_arg(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="export the best (or a chosen) trial's model, verified")
    _experiment_arg(p)
    p.add_argument("--format", choices=sorted(FORMATS), default="state_dict")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--trial", help="trial id; its file is named model-TRIAL.* [the best trial, model.*]")
    p.add_argument(
        "--images",
        type=_positive_int,
        help=f"held-out images to verify the export on [{VERIFY_IMAGES}, or all there are when fewer]",
    )
    p.add_argument("--force", action="store_true", help="replace an existing file of the same name")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "benchmark", help="inference time of the best model against the teacher, on CPU and GPU Ray workers"
    )
    _experiment_arg(p)
    p.add_argument("--device", choices=["cpu", "gpu", "all"], default="all", help="which workers to time [all]")
    p.add_argument(
        "--dataset",
        help="benchmark on other images, e.g. folder:PATH [the experiment's: CIFAR-10 test split or held-out images]",
    )
    p.add_argument("--size", type=_positive_int, default=10_000, help="images at most [10000]")
    p.add_argument(
        "--batch-sizes",
        type=_batch_sizes,
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
        "--min-run-time", type=_positive_float, default=0.5, help="seconds of timing per row, after warm-up [0.5]"
    )
    p.add_argument(
        "--cpus", type=_positive_int, help="CPUs of the CPU worker (torch threads follow) [all of the largest node's]"
    )
    p.add_argument("--address", help="Ray cluster HOST:PORT or auto [$RAY_ADDRESS, else a private local Ray]")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("dashboard", help="the sweep's Optuna study in optuna-dashboard, live or afterwards")
    _experiment_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to serve on [127.0.0.1]")
    p.add_argument("--port", type=_port, default=8080, help="port, 1 to 65535 [8080]")
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("evaluate", help="MSE and PSNR against the teacher of a model on any dataset")
    p.add_argument(
        "model", help="experiment name or path (its best model), or a model file (.pt, .torchscript.pt, .onnx)"
    )
    _storage(p)
    p.add_argument("--dataset", default="synthetic", help=f"{' | '.join(DATASETS)} [synthetic]")
    p.add_argument(
        "--size", type=_positive_int, default=10_000, help="images at most (CIFAR-10: its test split) [10000]"
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a bad flag already reported in one line
        return int(exc.code or 0)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except TunerError as exc:
        print(f"tuner: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tuner: interrupted", file=sys.stderr)
        return 130
