"""What a training step holds per image, measured, against the estimate a sweep checks batches with.

    .venv/bin/python benchmarks/training_memory.py

`tuner sweep` refuses a search space whose largest batch would not fit in memory
(core/memory.training_bytes_per_image, search/checks.check_training_memory). The
estimate must stay above what a step really holds, or Ray's out-of-memory killer
ends trials the check let through. Each figure is two fresh processes, each two
steps of the trial's own optimizer (fused Adam, gradients zeroed in place) on one
thread: the difference of their peak resident memory over the difference of their
batch sizes is what one more image of a batch costs, whatever the model, Adam's
state and torch itself take once.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from tuner.core.memory import training_bytes_per_image

SHAPES = ((8, 16, 64), (32, 64, 512), (48, 96, 768), (128, 256, 2048))
STEP = """
import resource, sys, torch, torch.nn.functional as F
from tuner.core.configs import ModelConfig
from tuner.learn.model import build_model
torch.set_num_threads(1)
c1, c2, hidden, batch = map(int, sys.argv[1:])
x, y = torch.rand(batch, 3, 32, 32), torch.rand(batch, 1, 28, 28)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
model = build_model(ModelConfig(conv1_channels=c1, conv2_channels=c2, hidden=hidden))
optimizer = torch.optim.Adam(model.parameters(), fused=True)
for _ in range(2):
    loss = F.mse_loss(model(x), y)
    optimizer.zero_grad(set_to_none=False)
    loss.backward()
    optimizer.step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def peak(c1: int, c2: int, hidden: int, batch: int) -> float:
    """Peak bytes gained by two training steps, in a process of its own."""
    done = subprocess.run([sys.executable, "-c", STEP, *map(str, (c1, c2, hidden, batch))], capture_output=True)
    if done.returncode:
        raise SystemExit(done.stderr.decode())
    return float(done.stdout)


def measured(c1: int, c2: int, hidden: int, small: int, large: int) -> float:
    """Bytes one more image of a batch takes: the peaks of two batch sizes, apart."""
    return (peak(c1, c2, hidden, large) - peak(c1, c2, hidden, small)) / (large - small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs=2, default=(256, 1024), help="the two batch sizes [256 1024]")
    args = parser.parse_args()
    print(f"one more image of a batch, from batches of {args.batches[0]} and {args.batches[1]}, one thread, KiB")
    print(f"{'conv1':>6} {'conv2':>6} {'hidden':>7} {'measured':>9} {'estimate':>9} {'margin':>7}")
    for c1, c2, hidden in SHAPES:
        got, estimate = measured(c1, c2, hidden, *args.batches), training_bytes_per_image(c1, c2, hidden)
        print(f"{c1:>6} {c2:>6} {hidden:>7} {got / 1024:>9.0f} {estimate / 1024:>9.0f} {estimate / got:>6.2f}x")


if __name__ == "__main__":
    main()
