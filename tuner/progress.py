"""Progress output for a sweep: one line per trial epoch and per trial end, instead of Ray's tables."""

from __future__ import annotations

import time
from typing import Any, Callable

from ray.tune import Callback


class ProgressPrinter(Callback):
    def __init__(self, max_epochs: int, num_samples: int, echo: Callable[[str], None] = print) -> None:
        self.max_epochs, self.num_samples, self.echo = max_epochs, num_samples, echo
        self.started = time.time()
        self.ended = 0

    def _prefix(self, trial: Any) -> str:
        return f"[{time.time() - self.started:6.0f}s] trial {trial.trial_id}"

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.echo(f"{self._prefix(trial)} epoch {result.get('epoch', '?')}/{self.max_epochs}  "
                  f"train_loss {result.get('train_loss', float('nan')):.5f}  val_loss {result.get('val_loss', float('nan')):.5f}  "
                  f"val_psnr {result.get('val_psnr', float('nan')):.2f} dB")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ended += 1
        self.echo(f"{self._prefix(trial)} ended ({self.ended}/{self.num_samples} trials done)")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ended += 1
        self.echo(f"{self._prefix(trial)} failed: see {trial.local_path}/error.txt ({self.ended}/{self.num_samples} done)")
