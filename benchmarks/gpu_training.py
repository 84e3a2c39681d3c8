"""GPU training throughput: the plain loop against faster routes, for 1, 4, 8 and 16 concurrent trials.

    make benchmark-gpu [ARGS="--trials 1,4,8,16 --routes plain,fused,fused-graph"]
    .venv/bin/python benchmarks/gpu_training.py --device cpu --trials 1,2 --train-size 64 --hidden 16

K trials, each its own configuration (learning rate and LeakyReLU slope spread over the default space; one
seed, batch 32), train on the same synthetic images by one of these routes:

  plain         K workers, each tuner's plain Trainer: what K Ray trials sharing one GPU run today
  device-epoch  K workers, each a one-member FusedTrainer: no host round trip (.item()) per step
  graph         K workers, each a one-member FusedTrainer whose step is one captured CUDA graph
  fused         one worker, a FusedTrainer of all K (grouped convolutions and batched matmuls, HFTA)
  fused-graph   one worker, the same with its step captured as a CUDA graph

Workers are processes (as Ray's trials are) or, with --workers threads, threads of this process. They start
together; each trains one warm-up epoch (graph capture included), waits for the others, then trains the
timed epochs. A run's figure is the aggregate training images/s: every trial's images over the slowest
worker's time (each epoch also validates --val-size images, as trials do). The table gives it per route and
number of trials, and its ratio to the plain route's at the same number. The graph routes need CUDA: on a
CPU they print n/a, so that the rest of the code runs anywhere (tests/test_fused.py runs it tiny).
"""

from __future__ import annotations

import argparse
import multiprocessing
import threading
import time

import torch

from tuner.core.configs import ModelConfig, TrainConfig
from tuner.learn.data import ImageSplits, with_targets
from tuner.learn.fused import FusedTrainer
from tuner.learn.synthetic import synthetic_images
from tuner.learn.training import Trainer

# route: (trials per worker: one, or all of them; CUDA graph)
ROUTES = {
    "plain": ("one", False),
    "device-epoch": ("one", False),
    "graph": ("one", True),
    "fused": ("all", False),
    "fused-graph": ("all", True),
}


def trial_configs(count: int, args: argparse.Namespace) -> list[tuple[ModelConfig, TrainConfig]]:
    """`count` distinct trials: lr log-spaced over 5e-4..5e-3, slope over 0.01..0.5, one seed."""
    configs = []
    for k in range(count):
        frac = k / max(1, count - 1)
        model = ModelConfig(hidden=args.hidden, negative_slope=0.01 + 0.49 * frac)
        train = TrainConfig(lr=5e-4 * 10**frac, batch_size=args.batch_size, max_epochs=args.epochs)
        configs.append((model, train))
    return configs


def _trainer(route: str, configs: list, data, device: str):
    if route == "plain":
        return Trainer(*configs[0], data, device)
    return FusedTrainer(configs, data, device, cuda_graph=ROUTES[route][1])


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def worker(route: str, configs: list, args: argparse.Namespace, barrier, results) -> None:
    """Build the data and trainer, warm up one epoch, then put the timed epochs' seconds in `results`."""
    try:
        torch.set_num_threads(args.threads)
        splits = ImageSplits("synthetic", synthetic_images(args.train_size, 0), synthetic_images(args.val_size, 1))
        trainer = _trainer(route, configs, with_targets(splits).to(args.device), args.device)
        trainer.run_epoch()  # warm-up: lazy initialisation, cuDNN's choices, graph capture
        _sync(args.device)
        barrier.wait()
        started = time.perf_counter()
        for _ in range(args.epochs - 1):
            trainer.run_epoch()
        _sync(args.device)
        results.put(time.perf_counter() - started)
    except BaseException:
        barrier.abort()  # else the other workers would wait for this one at the barrier for ever
        raise


class _ListQueue(list):
    """The one method of a multiprocessing queue that workers use, for worker threads."""

    def put(self, item: float) -> None:
        self.append(item)


def measure(route: str, trials: int, args: argparse.Namespace) -> float:
    """Aggregate training images/s of `trials` trials by `route`."""
    configs = trial_configs(trials, args)
    groups = [configs[k : k + 1] for k in range(trials)] if ROUTES[route][0] == "one" else [configs]
    if args.workers == "threads":
        barrier, results = threading.Barrier(len(groups)), _ListQueue()
        pool = [threading.Thread(target=worker, args=(route, g, args, barrier, results)) for g in groups]
    else:
        # spawn, not fork: CUDA cannot be initialised again in a forked child.
        context = multiprocessing.get_context("spawn")
        barrier, results = context.Barrier(len(groups)), context.Queue()
        pool = [context.Process(target=worker, args=(route, g, args, barrier, results)) for g in groups]
    for p in pool:
        p.start()
    for p in pool:
        p.join()  # a worker's one float is in the queue's pipe before it exits, so joining first cannot block
    seconds = list(results) if isinstance(results, list) else [results.get() for _ in range(results.qsize())]
    if len(seconds) < len(pool):
        raise RuntimeError(f"{len(pool) - len(seconds)} of {len(pool)} workers failed; their errors are above")
    return trials * args.train_size * (args.epochs - 1) / max(seconds)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="[cuda if any]")
    parser.add_argument("--trials", default="1,4,8,16", help="numbers of concurrent trials [1,4,8,16]")
    parser.add_argument("--routes", default=",".join(ROUTES), help=f"[{','.join(ROUTES)}]")
    parser.add_argument("--train-size", type=int, default=8192, help="training images per epoch [8192]")
    parser.add_argument("--val-size", type=int, default=512, help="validation images per epoch [512]")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run, the first a warm-up [3]")
    parser.add_argument("--batch-size", type=int, default=32, help="[32]")
    parser.add_argument("--hidden", type=int, default=512, help="hidden FC width [512]")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per worker [1]")
    parser.add_argument("--workers", choices=("processes", "threads"), default="processes", help="[processes]")
    args = parser.parse_args(argv)
    args.trials = [int(t) for t in args.trials.split(",")]
    args.routes = args.routes.split(",")
    unknown = sorted(set(args.routes) - set(ROUTES))
    if unknown or args.epochs < 2 or min(args.trials) < 1:
        parser.error(f"routes must be among {list(ROUTES)}, --epochs at least 2, --trials at least 1 each")
    return args


def main(argv: list[str] | None = None) -> dict[tuple[str, int], float | None]:
    """Run every route at every number of trials, print the table; returns {(route, trials): images/s}."""
    args = parse_args(argv)
    cuda = args.device.startswith("cuda")
    rates: dict[tuple[str, int], float | None] = {}
    for route in args.routes:
        for trials in args.trials:
            if ROUTES[route][1] and not cuda:
                rates[route, trials] = None
                continue
            started = time.perf_counter()
            rates[route, trials] = measure(route, trials, args)
            print(
                f"{route}, {trials} trial(s): {rates[route, trials]:,.0f} images/s "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    name = torch.cuda.get_device_name() if cuda else "CPU"
    print(
        f"\n{name} ({args.device}), torch {torch.__version__}; {args.train_size} synthetic images/epoch, "
        f"batch {args.batch_size}, hidden {args.hidden}, {args.workers}; aggregate training images/s over "
        f"epochs 2..{args.epochs} (x the plain route at the same number of trials)"
    )
    print(f"{'route':<14s}" + "".join(f"{f'{t} trial(s)':>24s}" for t in args.trials))
    for route in args.routes:
        cells = []
        for t in args.trials:
            rate, plain = rates[route, t], rates.get(("plain", t))
            share = f" ({rate / plain:5.2f}x)" if rate and plain else ""
            cells.append(f"{rate:,.0f}{share}" if rate is not None else "n/a (needs CUDA)")
        print(f"{route:<14s}" + "".join(f"{c:>24s}" for c in cells))
    return rates


if __name__ == "__main__":
    main()
