"""Training throughput: a bare PyTorch loop against the same work inside a Ray Tune trial.

    .venv/bin/python benchmarks/trial_throughput.py [--threads 1] [--train-size 4096] [--epochs 3] [--rounds 3]

Both sides run tuner's own `Trainer` on the same synthetic images with the same
torch threads; the Ray side is the real trainable (`train_trial`), so it also
pays for reporting and a checkpoint every epoch. The first epoch of every run is
a warm-up; a run's figure is the median of the rest, and its images/s are
measured over the whole step between epochs.

The bare loop is timed twice: in the main thread and in a fresh thread, which is
how Ray runs a function trainable and so the baseline. (The two differed by ~20%
while the loop re-allocated its gradient and optimizer buffers every step: glibc
served the two threads from different heaps.) A shared virtual machine drifts by
tens of percent over minutes, so the three runs are repeated in rounds (the order
rotating) and the share is taken within each round; the summary gives its median
and range, and the CPU time stolen by the hypervisor while it ran.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time

import ray
import torch
from ray import tune

from tuner.core.configs import ModelConfig, TrainConfig
from tuner.learn.data import ImageSplits, with_targets
from tuner.learn.synthetic import synthetic_images
from tuner.learn.training import Trainer
from tuner.run.trainable import train_trial

CONFIG = {"lr": 2e-3, "negative_slope": 0.5, "init_scale": 1.0, "batch_size": 32, "hidden": 512}


def bare(data, threads: int, epochs: int) -> list[float]:
    """Seconds per epoch, validation included."""
    torch.set_num_threads(threads)
    trainer = Trainer(
        ModelConfig(**{k: CONFIG[k] for k in ("negative_slope", "init_scale", "hidden")}),
        TrainConfig(lr=CONFIG["lr"], batch_size=CONFIG["batch_size"], max_epochs=epochs),
        data,
    )
    steps = []
    for _ in range(epochs):
        start = time.perf_counter()
        trainer.run_epoch()
        steps.append(time.perf_counter() - start)
    return steps


def bare_in_thread(data, threads: int, epochs: int) -> list[float]:
    out: list = []
    worker = threading.Thread(target=lambda: out.append(bare(data, threads, epochs)))
    worker.start()
    worker.join()
    return out[0]


def in_ray_trial(data, threads: int, epochs: int) -> list[float]:
    """Ray's time_this_iter_s: seconds per epoch with validation, report and checkpoint."""
    with tempfile.TemporaryDirectory() as storage:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(train_trial, data=data), {"cpu": threads}),
            param_space={**CONFIG, "max_epochs": epochs},
            tune_config=tune.TuneConfig(num_samples=1),
            run_config=tune.RunConfig(storage_path=storage, name="throughput", verbose=0),
        )
        history = tuner.fit()[0].metrics_dataframe
        return list(history["time_this_iter_s"])


RUNS = {"bare loop, main thread": bare, "bare loop, own thread": bare_in_thread, "inside a Ray trial": in_ray_trial}
BASELINE = "bare loop, own thread"


def steal_jiffies() -> int:
    """CPU time the hypervisor gave to other guests (Linux /proc/stat); 0 where unknown."""
    try:
        return int(open("/proc/stat").readline().split()[8])
    except (OSError, IndexError, ValueError):
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (and Ray CPUs of the trial) [1]")
    parser.add_argument("--train-size", type=int, default=4096, help="training images per epoch [4096]")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run, the first a warm-up [3]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three runs, order rotating [3]")
    args = parser.parse_args()
    splits = ImageSplits("synthetic", synthetic_images(args.train_size, 0), synthetic_images(512, 1))
    data = with_targets(splits)
    ray.init(num_cpus=max(args.threads, 1), include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    names = list(RUNS)
    rates: dict[str, list[float]] = {name: [] for name in names}
    wall, steal = time.time(), steal_jiffies()
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            steps = RUNS[name](data, args.threads, args.epochs)
            rates[name].append(args.train_size / statistics.median(steps[1:] or steps))
            print(f"round {r + 1}/{args.rounds}: {name}: {rates[name][-1]:.0f} images/s", flush=True)
    ray.shutdown()
    shares = [ray_rate / base for ray_rate, base in zip(rates["inside a Ray trial"], rates[BASELINE], strict=True)]
    stolen = (steal_jiffies() - steal) / os.sysconf("SC_CLK_TCK") / (time.time() - wall) / os.cpu_count()
    # Ray prints its own tables while the trials run; ours comes last, whole.
    print(
        f"\n{args.train_size} synthetic images/epoch, batch {CONFIG['batch_size']}, {args.threads} torch thread(s); "
        f"images/s over the whole step between epochs, median of epochs 2..{args.epochs}"
    )
    print(f"{'round':>5s}  " + "  ".join(f"{n:>22s}" for n in names) + f"  {'Ray / baseline':>14s}")
    for r, share in enumerate(shares):
        print(f"{r + 1:5d}  " + "  ".join(f"{rates[n][r]:22.0f}" for n in names) + f"  {share:14.0%}")
    print(
        f"\nRay trial / bare loop in its own thread: median {statistics.median(shares):.0%} "
        f"(range {min(shares):.0%}-{max(shares):.0%} over {args.rounds} rounds); "
        f"main-thread bare loop: median {statistics.median(rates[names[0]]) / statistics.median(rates[BASELINE]):.0%}; "
        f"CPU stolen by the hypervisor meanwhile: {stolen:.1%}"
    )


if __name__ == "__main__":
    main()
