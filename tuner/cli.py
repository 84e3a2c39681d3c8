"""The `tuner` command line: a thin layer over the package's functions.

    tuner sweep --preset quick --name demo     # run a sweep, write results/demo/
    tuner sweep --help                         # every option, with its default

Errors a user can fix are printed as one line (`tuner: error: ...`) with exit
status 2; nothing below here prints a traceback for them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from tuner.data import DATASETS, DatasetError
from tuner.search_spaces import SearchSpaceError, available_spaces
from tuner.settings import PRESETS, SweepSettings

USER_ERRORS: tuple[type[Exception], ...] = (SearchSpaceError, DatasetError, FileExistsError, FileNotFoundError, ValueError)


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a hyperparameter sweep", description="Run a sweep on Ray Tune. "
                       "Flags override the preset; the preset's values are shown in brackets.")
    q = PRESETS["quick"]
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick", help="starting values for every option [quick]")
    p.add_argument("--name", default="default", help="experiment name: results go to STORAGE/NAME [default]")
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
    p.add_argument("--storage", help="directory that holds experiments [results]")
    p.add_argument("--data-dir", help="where CIFAR-10 is looked for and downloaded [$TUNER_DATA_DIR or ~/.cache/tuner/data]")
    p.add_argument("--address", help="Ray cluster address HOST:PORT [$RAY_ADDRESS, else a local Ray]")
    p.add_argument("--seed", type=int, help="seed for data, searcher and training [0]")
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from tuner.results import leaderboard
    from tuner.sweep import run_sweep

    keys = [f for f in SweepSettings.__dataclass_fields__ if f not in {"name", "space"}]
    overrides = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    settings = SweepSettings.from_preset(args.preset, name=args.name, space=args.space, **overrides)
    outcome = run_sweep(settings)
    summary = outcome.summary
    print()
    if summary is None or summary.best is None:
        print(f"no trial finished an epoch; see {outcome.experiment_dir}")
        return 1
    print(leaderboard(summary.trials))
    print(f"\nbest: trial {summary.best['trial_id']}, val PSNR {summary.best['metrics']['val_psnr']:.2f} dB")
    print(f"files: {outcome.experiment_dir}/{{trials.csv,history.csv,best.json,best_model.pt}}")
    if outcome.interrupted:
        print(f"interrupted: continue with  tuner sweep --resume {settings.name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tuner", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_sweep(sub)
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
