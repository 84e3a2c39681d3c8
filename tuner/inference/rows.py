"""The benchmark's rows and columns, defined once: what a timing measured, and how the table shows it.

timing.py makes a `Measurement` per row on the worker, table.py orders, derives and prints the columns;
benchmark.csv has exactly COLUMNS. Nothing heavy is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Every column of benchmark.csv, in order, with how the printed table shows its values (None: as they are).
DISPLAY: dict[str, str | None] = {
    "device": None,
    "method": None,
    "threads": None,
    "batch_size": None,
    "images_per_s": "{:,.0f}",
    "set_s": "{:.3f}",  # seconds for the whole image set at this rate
    "spread": "±{:.0%}",  # interquartile range / median of the timed calls
    "images_per_s_with_copy": "{:,.0f}",  # host-to-device copy of each batch included
    "first_call_s": "{:.2f}",  # the first call at this batch size, timed apart (compilation, for compiled rows)
    "psnr_db": "{:.2f}",
    "gflop_s": "{:,.1f}",
    "x_vs_per_image": "{:.2f}x",  # against the teacher applied image by image on the CPU
    "x_vs_teacher_batched": "{:.2f}x",  # against the batched teacher on the same device
}
COLUMNS = list(DISPLAY)


@dataclass(frozen=True)
class Measurement:
    """One timed row: a method on a device at a thread count and batch size."""

    device: str
    method: str
    threads: int
    batch_size: int
    seconds: float  # median per call
    spread: float  # interquartile range / median
    copy_s: float = 0.0  # host-to-device copy of one batch; 0 on the CPU
    first_call_s: float = 0.0
    psnr_db: float | None = None  # None for the teacher's rows: it is the reference
    flops_per_image: float | None = None

    def row(self, n_images: int) -> dict[str, Any]:
        """The row of benchmark.csv, speed-ups left to the table; `n_images` is the size of the set timed."""
        rate = self.batch_size / self.seconds
        return {
            "device": self.device,
            "method": self.method,
            "threads": self.threads,
            "batch_size": self.batch_size,
            "images_per_s": rate,
            "set_s": n_images / rate,
            "spread": self.spread,
            "images_per_s_with_copy": self.batch_size / (self.seconds + self.copy_s),
            "first_call_s": self.first_call_s,
            "psnr_db": self.psnr_db,
            "gflop_s": rate * self.flops_per_image / 1e9 if self.flops_per_image else None,
        }
