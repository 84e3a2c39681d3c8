"""Training throughput: a bare PyTorch loop against the same work inside a Ray Tune trial.

    .venv/bin/python benchmarks/trial_throughput.py [--threads 1] [--train-size 4096] [--epochs 3]

Both sides run tuner's own `Trainer` on the same synthetic images with the same
torch threads; the Ray side is the real trainable (`train_trial`), so it also
pays for reporting and a checkpoint every epoch. The first epoch is a warm-up;
the table shows the median of the rest, and each row's images/s (measured over
the whole step between epochs) as a share of the fastest bare loop.

The bare loop is timed twice: in the main thread and in a fresh thread. Ray runs
function trainables in a thread of their own, and on the 2-core test machine the
same loop ran ~20% faster in a fresh thread than in the main thread, so the
thread row is the fair baseline.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
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


def bare(data, threads: int, epochs: int) -> tuple[list[float], list[float]]:
    """(epoch times from the Trainer, wall time per epoch around it)."""
    torch.set_num_threads(threads)
    trainer = Trainer(ModelConfig(**{k: CONFIG[k] for k in ("negative_slope", "init_scale", "hidden")}),
                      TrainConfig(lr=CONFIG["lr"], batch_size=CONFIG["batch_size"], max_epochs=epochs), data)
    inner, outer = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        inner.append(trainer.run_epoch()["epoch_time_s"])
        outer.append(time.perf_counter() - start)
    return inner, outer


def bare_in_thread(data, threads: int, epochs: int) -> tuple[list[float], list[float]]:
    out: list = []
    worker = threading.Thread(target=lambda: out.append(bare(data, threads, epochs)))
    worker.start()
    worker.join()
    return out[0]


def in_ray_trial(data, threads: int, epochs: int) -> tuple[list[float], list[float]]:
    """(epoch times from the Trainer inside the trial, Ray's time_this_iter_s incl. report + checkpoint)."""
    with tempfile.TemporaryDirectory() as storage:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(train_trial, data=data), {"cpu": threads}),
            param_space={**CONFIG, "max_epochs": epochs},
            tune_config=tune.TuneConfig(num_samples=1),
            run_config=tune.RunConfig(storage_path=storage, name="throughput", verbose=0),
        )
        history = tuner.fit()[0].metrics_dataframe
        return list(history["epoch_time_s"]), list(history["time_this_iter_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (and Ray CPUs of the trial) [1]")
    parser.add_argument("--train-size", type=int, default=4096, help="training images per epoch [4096]")
    parser.add_argument("--epochs", type=int, default=3, help="epochs, the first a warm-up [3]")
    args = parser.parse_args()
    splits = ImageSplits("synthetic", synthetic_images(args.train_size, 0), synthetic_images(512, 1))
    data = with_targets(splits)
    ray.init(num_cpus=max(args.threads, 1), include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    rows = {
        "bare loop, main thread": bare(data, args.threads, args.epochs),
        "bare loop, own thread": bare_in_thread(data, args.threads, args.epochs),
        "inside a Ray trial": in_ray_trial(data, args.threads, args.epochs),
    }
    ray.shutdown()
    print(f"\n{args.train_size} synthetic images/epoch, batch {CONFIG['batch_size']}, {args.threads} torch thread(s), "
          f"median of epochs 2..{args.epochs} (epoch incl. validation on 512 images)")
    print("epoch = Trainer.run_epoch; step = everything between two epochs (Ray: report + checkpoint)")
    print(f"{'':22s} {'s/epoch':>8s} {'s/step':>8s} {'images/s':>9s} {'share':>6s}")
    medians = {name: (statistics.median(i[1:] or i), statistics.median(o[1:] or o)) for name, (i, o) in rows.items()}
    base = max(args.train_size / step for name, (_, step) in medians.items() if name.startswith("bare"))
    for name, (epoch, step) in medians.items():
        rate = args.train_size / step
        print(f"{name:22s} {epoch:8.2f} {step:8.2f} {rate:9.0f} {rate / base:6.0%}")


if __name__ == "__main__":
    main()
