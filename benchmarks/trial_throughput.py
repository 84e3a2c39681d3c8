"""Training throughput: a bare PyTorch loop against the same work inside a Ray Tune trial.

    .venv/bin/python benchmarks/trial_throughput.py [--threads 1] [--train-size 4096] [--epochs 3]

Both sides run tuner's own `Trainer` on the same synthetic images with the same
torch threads; the Ray side is the real trainable (`train_trial`), so it also
pays for reporting and a checkpoint every epoch. The first epoch is a warm-up;
the table shows the median of the rest, and the Ray trial's share of the bare loop.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import ray
import torch
from ray import tune

from tuner.data import ImageSplits, with_targets
from tuner.model import ModelConfig
from tuner.synthetic import synthetic_images
from tuner.trainable import train_trial
from tuner.training import TrainConfig, Trainer

CONFIG = {"lr": 2e-3, "negative_slope": 0.5, "init_scale": 1.0, "batch_size": 32, "hidden": 512}


def bare(data, threads: int, epochs: int) -> list[float]:
    torch.set_num_threads(threads)
    trainer = Trainer(ModelConfig(**{k: CONFIG[k] for k in ("negative_slope", "init_scale", "hidden")}),
                      TrainConfig(lr=CONFIG["lr"], batch_size=CONFIG["batch_size"], max_epochs=epochs), data)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        trainer.run_epoch()
        times.append(time.perf_counter() - start)
    return times


def in_ray_trial(data, threads: int, epochs: int) -> list[float]:
    with tempfile.TemporaryDirectory() as storage:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(train_trial, data=data), {"cpu": threads}),
            param_space={**CONFIG, "max_epochs": epochs},
            tune_config=tune.TuneConfig(num_samples=1),
            run_config=tune.RunConfig(storage_path=storage, name="throughput", verbose=0),
        )
        result = tuner.fit()[0]
        return list(result.metrics_dataframe["time_this_iter_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (and Ray CPUs of the trial) [1]")
    parser.add_argument("--train-size", type=int, default=4096, help="training images per epoch [4096]")
    parser.add_argument("--epochs", type=int, default=3, help="epochs, the first a warm-up [3]")
    args = parser.parse_args()
    splits = ImageSplits("synthetic", synthetic_images(args.train_size, 0), synthetic_images(512, 1))
    data = with_targets(splits)
    ray.init(num_cpus=max(args.threads, 1), include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    rows = {"bare PyTorch loop": bare(data, args.threads, args.epochs), "inside a Ray trial": in_ray_trial(data, args.threads, args.epochs)}
    ray.shutdown()
    print(f"\n{args.train_size} synthetic images/epoch, batch {CONFIG['batch_size']}, {args.threads} torch thread(s), "
          f"median of epochs 2..{args.epochs} (epoch incl. validation on 512 images)")
    print(f"{'':22s} {'s/epoch':>9s} {'images/s':>9s} {'share':>6s}")
    base = None
    for name, times in rows.items():
        median = statistics.median(times[1:] or times)
        rate = args.train_size / median
        base = base or rate
        print(f"{name:22s} {median:9.2f} {rate:9.0f} {rate / base:6.0%}")


if __name__ == "__main__":
    main()
