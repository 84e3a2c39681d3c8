"""What early stopping saves: the same configurations trained four ways, FIFO to tuner's and Ray's ASHA.

    make benchmark-stopping                       # 3 seeds x 8 trials x 16 epochs x 1,024 images, ~15 min on 2 cores
    .venv/bin/python benchmarks/early_stopping.py --seeds 0 --trials 4   # a quick look
    make benchmark-stopping ARGS="--ways fifo --keep DIR"   # FIFO only, kept for benchmarks/replay_stopping.py

Per seed, N configurations are drawn from the search space once (seeded) and
given to every way as the sweep's start points, so each way trains exactly the
same configurations on the same images; only what ends them differs:

    fifo              every trial to --epochs (no scheduler, no plateau stopper)
    asha              tuner's ASHA only (asha.py: promotes the top 1/rf of a rung, pauses the rest)
    asha+plateau      tuner's ASHA and the plateau stopper (the default sweep)
    ray-asha+plateau  Ray's ASHAScheduler and the plateau stopper (the default before asha.py)

Per way: epochs trained, wall time, the best trial's val loss and val PSNR, and
its PSNR on real CIFAR-10 images (--real, a folder; this repo's checks use
../shared/data/cifar10-sample). The summary gives the median and range over
seeds, and where ASHA + plateau stands against the goal: a best val loss within
5% of FIFO's with at most 35% of FIFO's epochs.

Why 16 epochs of 1,024 images: what early stopping can save is bounded by how
many rungs fit between the grace period and --max-epochs. With 4 epochs and a
grace period of 1, ASHA has one rung and cannot go below about 45% of FIFO's
epochs whatever the settings; 16 epochs is the shape of a real sweep (the full
preset runs 30), and 1,024 images keep 3 seeds x 4 ways near 15 minutes.
ASHA, the plateau stopper and the sizes default to the sweep's own defaults.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tuner.inference.evaluate import fidelity_on_dataset
from tuner.run.cluster import connect
from tuner.run.sweep import run_sweep
from tuner.search.settings import SweepSettings
from tuner.search.spaces import load_space

WAYS = {
    "fifo": ("fifo", False),
    "asha": ("asha", False),
    "asha+plateau": ("asha", True),
    "ray-asha+plateau": ("ray-asha", True),
}
DEFAULT_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-sample"


def draw_configs(space_name: str, n: int, seed: int) -> list[dict]:
    """n points of the space, drawn with the seed: the same for every way."""
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(n):
        point = {}
        for p in load_space(space_name).params:
            if p.type == "loguniform":
                point[p.name] = float(math.exp(rng.uniform(math.log(p.low), math.log(p.high))))
            elif p.type == "uniform":
                point[p.name] = float(rng.uniform(p.low, p.high))
            elif p.type == "int":
                point[p.name] = int(rng.integers(int(p.low), int(p.high) + 1))
            else:
                point[p.name] = p.values[int(rng.integers(len(p.values)))]
        points.append(point)
    return points


def fixed_space(space_name: str, configs: list[dict], directory: Path) -> Path:
    """The space with these configurations as its start points: a sweep of len(configs) trials runs exactly them."""
    space = load_space(space_name)
    doc = yaml.safe_load(space.path.read_text())
    doc["start"] = configs
    path = directory / f"fixed-{len(configs)}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run_way(way: str, space: Path, seed: int, args: argparse.Namespace, storage: Path) -> dict:
    scheduler, plateau = WAYS[way]
    settings = SweepSettings(
        name=f"{way.replace('+', '-')}-seed{seed}",
        dataset="synthetic",
        space=str(space),
        num_samples=args.trials,
        max_epochs=args.epochs,
        grace_period=args.grace_period,
        reduction_factor=args.reduction_factor,
        patience=args.patience,
        min_delta=args.min_delta,
        train_size=args.train_size,
        val_size=args.val_size,
        storage=str(storage),
        seed=seed,
        benchmark=False,
        searcher="random",
        scheduler=scheduler,
        plateau=plateau,
    )
    started = time.time()
    outcome = run_sweep(settings)
    wall = time.time() - started
    best = outcome.summary.best
    real = math.nan
    if args.real and Path(args.real).is_dir():
        real = fidelity_on_dataset(outcome.experiment_dir / "best_model.pt", f"folder:{args.real}", 10_000)[1].psnr
    row = {
        "seed": seed,
        "way": way,
        "epochs": int(outcome.summary.trials["epochs"].sum()),
        "wall_s": wall,
        "best_val_loss": best["metrics"]["val_loss"],
        "best_val_psnr": best["metrics"]["val_psnr"],
        "real_psnr": real,
    }
    print(
        f"seed {seed} {way:16s} epochs {row['epochs']:3d}  wall {wall:5.0f} s  best val loss {row['best_val_loss']:.5f}"
        f"  val PSNR {row['best_val_psnr']:.2f} dB  real PSNR {real:.2f} dB",
        flush=True,
    )
    return row


def summarise(rows: pd.DataFrame) -> str:
    def spread(values: pd.Series, fmt: str) -> str:
        values = values.dropna()
        if values.empty:
            return "n/a"
        return f"{fmt.format(statistics.median(values))} ({fmt.format(values.min())}-{fmt.format(values.max())})"

    lines = [
        f"{'way':18s} {'epochs':>14s} {'wall s':>16s} {'best val loss':>26s} {'val PSNR dB':>20s} {'real PSNR dB':>20s}"
    ]
    for way, group in rows.groupby("way", sort=False):
        lines.append(
            f"{way:18s} {spread(group['epochs'], '{:.0f}'):>14s} {spread(group['wall_s'], '{:.0f}'):>16s} "
            f"{spread(group['best_val_loss'], '{:.5f}'):>26s} {spread(group['best_val_psnr'], '{:.2f}'):>20s} "
            f"{spread(group['real_psnr'], '{:.2f}'):>20s}"
        )
    if "fifo" not in set(rows["way"]):
        return "\n".join(lines)
    per_seed = rows.pivot(index="seed", columns="way")
    for way in [w for w in rows["way"].unique() if w != "fifo"]:
        loss_gap = per_seed["best_val_loss"][way] / per_seed["best_val_loss"]["fifo"] - 1
        epoch_share = per_seed["epochs"][way] / per_seed["epochs"]["fifo"]
        lines.append(
            f"{way} against FIFO, per seed: best val loss {spread(loss_gap * 100, '{:+.1f}')} % "
            f"(goal: within +5 %), epochs {spread(epoch_share * 100, '{:.0f}')} % of FIFO's (goal: at most 35 %)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="one set of configurations each [0 1 2]"
    )
    parser.add_argument("--trials", type=int, default=8, help="configurations per seed [8]")
    parser.add_argument("--epochs", type=int, default=16, help="--max-epochs [16]")
    parser.add_argument("--train-size", type=int, default=1024, help="training images [1024]")
    parser.add_argument("--val-size", type=int, default=256, help="validation images [256]")
    d = SweepSettings()
    for flag, value in (
        ("--grace-period", d.grace_period),
        ("--reduction-factor", d.reduction_factor),
        ("--patience", d.patience),
        ("--min-delta", d.min_delta),
    ):
        parser.add_argument(flag, type=type(value), default=value, help=f"as in tuner sweep [{value}]")
    parser.add_argument("--space", default="default", help="search space to draw from [default]")
    parser.add_argument("--real", default=str(DEFAULT_REAL), help="folder of real images to score the best model on")
    parser.add_argument("--ways", nargs="+", choices=list(WAYS), default=list(WAYS), help="ways to run [all four]")
    parser.add_argument("--keep", help="keep the experiments (record.jsonl, history.csv) in this directory")
    parser.add_argument("--out", help="also write the rows as CSV here")
    args = parser.parse_args()
    connect(None)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        storage = Path(args.keep) if args.keep else Path(tmp) / "runs"
        for seed in args.seeds:
            space = fixed_space(args.space, draw_configs(args.space, args.trials, seed), Path(tmp))
            for way in args.ways:
                rows.append(run_way(way, space, seed, args, storage))
    frame = pd.DataFrame(rows)
    if args.out:
        frame.to_csv(args.out, index=False)
    print()
    print(summarise(frame))


if __name__ == "__main__":
    main()
