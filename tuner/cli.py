"""The `tuner` command line: a thin layer over the package's functions.

    tuner sweep --preset quick --name demo     # run a sweep, write results/demo/
    tuner list                                 # experiments under results/
    tuner results demo --top 5 --format markdown
    tuner report demo                          # results/demo/report.md with figures
    tuner export demo --format onnx --out exported/
    tuner evaluate demo --dataset folder:~/photos
    tuner COMMAND --help                       # every option, with its default

Errors a user can fix are printed as one line (`tuner: error: ...`) with exit
status 2; nothing below here prints a traceback for them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from tuner.data import DATASETS, DatasetError
from tuner.experiments import ExperimentError
from tuner.export import FORMATS as EXPORT_FORMATS, ExportError
from tuner.results import FORMATS, STATUSES
from tuner.search_spaces import SearchSpaceError, available_spaces
from tuner.settings import PRESETS, SweepSettings

# CheckpointError is a FileNotFoundError, ClusterAuthError a ConnectionError. Anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[Exception], ...] = (
    SearchSpaceError, DatasetError, ExperimentError, ExportError, FileExistsError, FileNotFoundError, ValueError,
    ConnectionError,
)


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a hyperparameter sweep", description="Run a sweep on Ray Tune. "
                       "Flags override the preset; the preset's values are shown in brackets.")
    q = PRESETS["quick"]
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick", help="starting values for every option [quick]")
    p.add_argument("--name", default="default", help="experiment name: results go to STORAGE/NAME [default]")
    p.add_argument("--resume", metavar="NAME", help="continue the interrupted experiment NAME (its own settings; other flags but --storage/--address are ignored)")
    p.add_argument("--dataset", help=f"{' | '.join(DATASETS)}; auto uses CIFAR-10 if available, else synthetic [{q['dataset']}]")
    p.add_argument("--space", default="default", help=f"search space: a name ({', '.join(available_spaces())}) or a YAML path [default]")
    p.add_argument("--num-samples", type=int, help=f"trials to run [{q['num_samples']}]")
    p.add_argument("--max-epochs", type=int, help=f"epochs per trial at most (ASHA's max_t) [{q['max_epochs']}]")
    p.add_argument("--grace-period", type=int, help=f"epochs before ASHA may stop a trial [{q['grace_period']}]")
    p.add_argument("--reduction-factor", type=int, help=f"ASHA keeps 1/N of trials at each rung [{q['reduction_factor']}]")
    p.add_argument("--patience", type=int, help="plateau stopper: epochs without improvement [2]")
    p.add_argument("--min-delta", type=float, help="plateau stopper: relative improvement that counts [0.01]")
    p.add_argument("--train-size", type=int, help=f"training images [{q['train_size']}]")
    p.add_argument("--val-size", type=int, help=f"validation images held out from training [{q['val_size']}]")
    p.add_argument("--cpus-per-trial", type=float, help=f"CPUs each trial asks Ray for (torch threads follow) [{q['cpus_per_trial']}]")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs each trial asks for; fractions share a GPU [0]")
    p.add_argument("--concurrency", type=int, help="trials at once [as many as the resources allow]")
    p.add_argument("--max-failures", type=int, help="retries of a trial that raises, from its checkpoint [1]")
    p.add_argument("--storage", help="directory or URI (s3://, gs://, file://) that holds experiments; on a multi-node "
                   "cluster it must be shared by every node; a URI's experiment is also copied to results/NAME [results]")
    p.add_argument("--data-dir", help="where CIFAR-10 is looked for and downloaded [$TUNER_DATA_DIR or ~/.cache/tuner/data]")
    p.add_argument("--address", help="Ray cluster address HOST:PORT [$RAY_ADDRESS, else a local Ray]")
    p.add_argument("--seed", type=int, help="seed for data, searcher and training [0]")
    p.add_argument("--no-benchmark", dest="benchmark", action="store_false", default=None,
                   help="skip the inference benchmark of the best model at the end")
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from tuner.results import leaderboard
    from tuner.sweep import resume_sweep, run_sweep

    if args.resume:
        outcome = resume_sweep(args.resume, args.storage or "results", args.address)
    else:
        keys = [f for f in SweepSettings.__dataclass_fields__ if f not in {"name", "space"}]
        overrides = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
        settings = SweepSettings.from_preset(args.preset, name=args.name, space=args.space, **overrides)
        outcome = run_sweep(settings)
    summary, name = outcome.summary, outcome.experiment_dir.name
    storage = outcome.experiment_dir.parent
    where = "" if storage == Path("results").resolve() else f" --storage {storage}"
    print()
    if summary is None or summary.best is None:
        print(f"no trial finished an epoch; see {outcome.experiment_dir}")
        return 130 if outcome.interrupted else 1
    print(leaderboard(summary.trials))
    print(f"\nbest: trial {summary.best['trial_id']}, val PSNR {summary.best['metrics']['val_psnr']:.2f} dB")
    print(f"files: {outcome.experiment_dir}/{{trials.csv,history.csv,best.json,best_model.pt}}")
    if outcome.interrupted:
        print(f"interrupted: nothing is lost; continue with  tuner sweep --resume {name}{where}")
        return 130
    print(f"next: tuner results {name}{where} | tuner report {name}{where} | tuner export {name}{where} --format onnx --out DIR")
    return 0


def _experiment_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment name under --storage, or its path")
    p.add_argument("--storage", default="results", help="directory that holds experiments [results]")


def cmd_list(args: argparse.Namespace) -> int:
    from tuner.experiments import list_experiments
    from tuner.results import render

    print(render(list_experiments(args.storage), args.format))
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from tuner.experiments import load_experiment
    from tuner.results import LEADERBOARD_COLUMNS, render

    exp = load_experiment(args.experiment, args.storage)
    trials = exp.trials
    if args.status:
        wanted = args.status.split(",")
        unknown = set(wanted) - set(STATUSES)
        if unknown:
            raise ValueError(f"unknown status {sorted(unknown)}; use some of: {', '.join(STATUSES)}")
        trials = trials[trials["status"].isin(wanted)]
    sort = args.sort if args.sort in trials.columns else f"config/{args.sort}"
    if sort not in trials.columns:
        raise ValueError(f"cannot sort by {args.sort!r}; columns: {', '.join(trials.columns)}")
    # Higher is better for PSNR and epochs; lower for losses and everything else.
    descending = args.descending or "psnr" in sort
    trials = trials.sort_values(sort, ascending=not descending, na_position="last")
    columns = args.columns.split(",") if args.columns else LEADERBOARD_COLUMNS + [c for c in trials.columns if c.startswith("config/")]
    columns = [c if c in trials.columns else f"config/{c}" for c in columns]
    missing = [c for c in columns if c not in trials.columns]
    if missing:
        raise ValueError(f"unknown columns {missing}; available: {', '.join(trials.columns)}")
    shown = trials[columns].head(args.top)
    if args.format in ("table", "markdown"):
        shown = shown.rename(columns=lambda c: c.removeprefix("config/"))
    print(render(shown, args.format))
    if args.format == "table":
        print(f"\n{exp.name}: {len(exp.trials)} trials, {exp.state}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tuner.experiments import load_experiment
    from tuner.report import write_report

    print(f"wrote {write_report(load_experiment(args.experiment, args.storage))}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tuner.experiments import load_experiment
    from tuner.export import export_model

    exp = load_experiment(args.experiment, args.storage)
    checkpoint = exp.checkpoint(args.trial)
    report = export_model(checkpoint, args.format, Path(args.out), exp.heldout_images(args.images))
    print(f"wrote {report.path} ({report.format}) from {checkpoint}")
    print(f"verified on {report.fidelity.images} held-out images: max |export - checkpoint| = {report.max_abs_diff:.1e} "
          f"(tolerance {report.tolerance:.0e}); PSNR against the teacher {report.fidelity.psnr:.2f} dB")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from tuner.benchmark import DEFAULT_BATCH_SIZES
    from tuner.data import load_images
    from tuner.experiments import load_experiment
    from tuner.sweep import benchmark_best, ensure_ray

    exp = load_experiment(args.experiment, args.storage)
    exp.checkpoint()  # one-line error when there is nothing to benchmark
    if args.dataset:
        splits = load_images(args.dataset, train_size=1, val_size=args.size, seed=exp.settings.seed)
    else:
        splits = exp.splits()
    images = splits.benchmark_images[: args.size]
    sizes = tuple(int(b) for b in args.batch_sizes.split(",")) if args.batch_sizes else DEFAULT_BATCH_SIZES
    print(f"benchmark images: {len(images)} from {splits.source}" + (" (test split)" if splits.test is not None else " (held out)"))
    ensure_ray(args.address)
    benchmark_best(exp.path, images, device=args.device, batch_sizes=sizes, min_run_time=args.min_run_time, cpus=args.cpus)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tuner.evaluate import evaluate_on
    from tuner.experiments import find_experiment, load_experiment

    target = Path(args.model)
    if not target.is_file():
        try:
            target = load_experiment(find_experiment(args.model, args.storage)).checkpoint()
        except ExperimentError:
            raise ExperimentError(f"{args.model!r} is neither a model file nor an experiment; run `tuner list` or pass a .pt/.onnx path") from None
    source, fid = evaluate_on(target, args.dataset, args.size, args.seed)
    print(f"{target} on {source}: {fid.images} images, MSE {fid.mse:.3g}, PSNR {fid.psnr:.2f} dB against the teacher")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tuner", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_sweep(sub)

    p = sub.add_parser("list", help="experiments under --storage")
    p.add_argument("--storage", default="results", help="directory that holds experiments [results]")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("results", help="leaderboard of an experiment's trials")
    _experiment_arg(p)
    p.add_argument("--sort", default="val_loss", help="column or parameter to sort by [val_loss; PSNR sorts descending]")
    p.add_argument("--descending", action="store_true", help="sort high to low")
    p.add_argument("--top", type=int, default=20, help="rows to show [20]")
    p.add_argument("--columns", help="comma-separated columns or parameter names [leaderboard + parameters]")
    p.add_argument("--status", help=f"comma-separated statuses to keep ({', '.join(STATUSES)})")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("report", help="write report.md with figures into the experiment directory")
    _experiment_arg(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="export the best (or a chosen) trial's model, verified")
    _experiment_arg(p)
    p.add_argument("--format", choices=sorted(EXPORT_FORMATS), default="state_dict")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--trial", help="trial id [the best trial]")
    p.add_argument("--images", type=int, default=256, help="held-out images to verify the export on [256]")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("benchmark", help="inference time of the best model against the teacher, on CPU and GPU Ray workers")
    _experiment_arg(p)
    p.add_argument("--device", choices=["cpu", "gpu", "all"], default="all", help="which workers to time [all]")
    p.add_argument("--dataset", help="benchmark on other images, e.g. folder:PATH [the experiment's: CIFAR-10 test split or held-out images]")
    p.add_argument("--size", type=int, default=10_000, help="images at most [10000]")
    p.add_argument("--batch-sizes", help="comma-separated model batch sizes [1,32,128,512,2048]")
    p.add_argument("--min-run-time", type=float, default=0.5, help="seconds of timing per row, after warm-up [0.5]")
    p.add_argument("--cpus", type=int, help="CPUs of the CPU worker (torch threads follow) [all of the cluster's]")
    p.add_argument("--address", help="Ray cluster address [$RAY_ADDRESS, else a local Ray]")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("evaluate", help="MSE and PSNR against the teacher of a model on any dataset")
    p.add_argument("model", help="experiment name or path (its best model), or a model file (.pt, .torchscript.pt, .onnx)")
    p.add_argument("--storage", default="results", help="directory that holds experiments [results]")
    p.add_argument("--dataset", default="synthetic", help=f"{' | '.join(DATASETS)} [synthetic]")
    p.add_argument("--size", type=int, default=10_000, help="images at most (CIFAR-10: its test split) [10000]")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except USER_ERRORS as exc:
        print(f"tuner: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tuner: interrupted", file=sys.stderr)
        return 130
