"""`tuner sweep`'s flags, in groups; each flag's help ends with its default, the quick preset's in brackets."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from tuner.cli.args import text
from tuner.core.constants import DATASETS, RESULTS_DIR
from tuner.search.schedulers import SCHEDULERS
from tuner.search.searchers import SEARCHERS
from tuner.search.settings import PRESETS, SweepSettings
from tuner.search.spaces import available_spaces

QUICK, DEFAULTS = PRESETS["quick"], SweepSettings()


def add_sweep(sub: argparse._SubParsersAction, handler: Callable[[argparse.Namespace], int]) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a hyperparameter sweep",
        description="Run a sweep on Ray Tune. Flags override the preset; the preset's values are shown in brackets.",
    )
    p.add_argument(
        "--preset", choices=sorted(PRESETS), default="quick", help="starting values for every option [quick]"
    )
    p.add_argument("--name", default="default", help="experiment name: results go to STORAGE/NAME [default]")
    p.add_argument(
        "--resume",
        metavar="NAME",
        type=text("the name or path of an interrupted experiment"),
        help="continue the interrupted experiment NAME (its own settings; "
        "other flags but --storage/--address are ignored)",
    )
    for group in (_search, _stopping, _data, _resources, _outputs):
        group(p)
    p.set_defaults(func=handler)


def _search(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--space",
        type=text("a search space name or a YAML file"),
        help=f"search space: a name ({', '.join(available_spaces())}) or a YAML path "
        "[the preset's: default for quick, full for full; pareto with --pareto]",
    )
    p.add_argument("--num-samples", type=int, help=f"trials to run [{QUICK['num_samples']}]")
    p.add_argument("--seed", type=int, help=f"seed for data, searcher and training [{DEFAULTS.seed}]")
    p.add_argument(
        "--searcher", choices=SEARCHERS, help="Optuna sampler that proposes trials [the space file's, else tpe]"
    )
    p.add_argument(
        "--pareto",
        action="store_true",
        default=None,
        help="search fidelity against speed: minimise val_loss and maximise each trial's inference images/s, "
        "measured where it ran; `tuner results NAME --pareto` lists the front [off]",
    )


def _stopping(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-epochs", type=int, help=f"epochs per trial at most (ASHA's max_t) [{QUICK['max_epochs']}]")
    p.add_argument(
        "--scheduler",
        choices=SCHEDULERS,
        help="what ends or evolves trials: asha (tuner's, pauses trials at rungs), ray-asha (Ray's "
        "ASHAScheduler) or another Ray Tune scheduler [the space file's, else asha]",
    )
    p.add_argument("--grace-period", type=int, help=f"epochs before ASHA may stop a trial [{QUICK['grace_period']}]")
    p.add_argument(
        "--reduction-factor", type=int, help=f"ASHA keeps 1/N of trials at each rung [{QUICK['reduction_factor']}]"
    )
    p.add_argument("--patience", type=int, help=f"plateau stopper: epochs without improvement [{DEFAULTS.patience}]")
    p.add_argument(
        "--min-delta", type=float, help=f"plateau stopper: relative improvement that counts [{DEFAULTS.min_delta}]"
    )
    p.add_argument(
        "--no-plateau", dest="plateau", action="store_false", default=None, help="turn the plateau stopper off"
    )


def _data(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        help=f"{' | '.join(DATASETS)}; auto uses CIFAR-10 if available, else synthetic [{QUICK['dataset']}]",
    )
    p.add_argument("--train-size", type=int, help=f"training images [{QUICK['train_size']}]")
    p.add_argument("--val-size", type=int, help=f"validation images held out from training [{QUICK['val_size']}]")
    p.add_argument(
        "--data-dir", help="where CIFAR-10 is looked for and downloaded [$TUNER_DATA_DIR or ~/.cache/tuner/data]"
    )


def _resources(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cpus-per-trial",
        type=float,
        help=f"CPUs each trial asks Ray for (torch threads follow) [{QUICK['cpus_per_trial']}]",
    )
    p.add_argument(
        "--gpus-per-trial", type=float, help="GPUs each trial asks for; 0.25 shares one GPU between four trials [0]"
    )
    p.add_argument("--concurrency", type=int, help="trials at once [as many as fit on the nodes]")
    p.add_argument(
        "--max-failures",
        type=int,
        help=f"retries of a trial that raises, from its checkpoint [{DEFAULTS.max_failures}]",
    )
    p.add_argument(
        "--address",
        type=text("HOST:PORT or auto"),
        help="Ray cluster HOST:PORT, or auto for the one running on this machine "
        "[$RAY_ADDRESS, else a private local Ray]",
    )


def _outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage",
        type=text("a directory or a URI"),
        help="directory or URI (s3://, gs://, file://) that holds experiments; on a multi-node "
        f"cluster it must be shared by every node; a URI's experiment is also copied to {RESULTS_DIR}/NAME "
        f"[{RESULTS_DIR}]",
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


def settings_from(args: argparse.Namespace) -> SweepSettings:
    """The settings a new sweep runs with: the preset's, overridden by every flag given."""
    keys = [f for f in SweepSettings.__dataclass_fields__ if f not in {"name", "space"}]
    overrides: dict[str, Any] = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    return SweepSettings.from_preset(args.preset, name=args.name, space=args.space, **overrides)
