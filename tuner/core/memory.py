"""How many images fit in this machine's memory, checked before any image is made.

A sweep holds every image as uint8 (3x32x32) with its teacher target in float32
(1x28x28): 6,208 bytes an image. Asked for more than memory holds, making the
synthetic images would run until the system kills the process, so sizes are
checked first against what the system says is available. No torch here: the
CLI checks this before it imports anything heavy.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from tuner.core.constants import IN_SHAPE, OUT_SHAPE
from tuner.core.errors import SettingsError

BYTES_PER_IMAGE = math.prod(IN_SHAPE) + 4 * math.prod(OUT_SHAPE)
# torch, Ray and the trials' own copies of a batch need the rest.
USABLE_FRACTION = 0.8
GIB = 1024**3


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """What a container's memory limit (cgroup v2) still allows; None without one."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(0, int(limit) - used)


def available_bytes() -> int | None:
    """Memory a new allocation can get now: MemAvailable (or free pages), capped by a container's limit."""
    found = _meminfo_available()
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            found = None
    room = _cgroup_room()
    known = [b for b in (found, room) if b is not None]
    return min(known) if known else None


def _room(each: int, available: int | None) -> tuple[int, int] | None:
    """(bytes available, how many items of `each` bytes fit in the usable part of them); None when the system
    does not say. `available` defaults to what it reports now."""
    available = available_bytes() if available is None else available
    return None if available is None else (available, int(available * USABLE_FRACTION) // each)


def check_images_fit(count: int, flags: str, copies: int = 1, available: int | None = None) -> None:
    """Refuse `count` images (with targets, `copies` times over) that would not fit in memory; `flags` names
    what to lower. `available` (bytes) defaults to what the system reports; unknown means no check."""
    each = BYTES_PER_IMAGE * copies
    room = _room(each, available)
    if room is None or count <= room[1]:
        return
    available, fits = room
    held = "" if copies == 1 else ", held twice: by the sweep and by Ray's object store"
    raise SettingsError(
        f"{count:,} images need {count * each / GIB:.1f} GiB of memory ({BYTES_PER_IMAGE:,} bytes each with its "
        f"teacher target{held}) but {available / GIB:.1f} GiB is available; lower {flags} to at most "
        f"{fits:,} images in all"
    )


def training_bytes_per_image(conv1_channels: int, conv2_channels: int, hidden: int) -> int:
    """What one training step holds for each image of its batch, on the CPU: the float32 activations autograd
    keeps for the backward pass (max-pool's int64 indices too), doubled for their gradients and the
    optimizer's temporaries. Measured peak RSS per image stays below this (docs/benchmarks.md)."""
    c, h, w = IN_SHAPE
    floats = (
        2 * c * h * w  # the float input and its normalised copy
        + 2 * conv1_channels * (h - 2) * (w - 2)  # conv1 and its LeakyReLU
        + conv2_channels * (h - 4) * (w - 4)  # conv2
        + 4 * conv2_channels * ((h - 4) // 2) * ((w - 4) // 2)  # pool, its indices (2 floats' worth), LeakyReLU
        + 2 * hidden
        + math.prod(OUT_SHAPE)
    )
    return 2 * 4 * floats


def check_batches_fit(batch: int, per_image: int, trials: int, setting: str, available: int | None = None) -> None:
    """Refuse a training batch that `trials` trials at once cannot hold: Ray's out-of-memory killer would end
    them one by one instead, after the sweep has started. `setting` names what sets the batch size."""
    room = _room(per_image * trials, available)
    if room is None or batch <= room[1]:
        return
    available, fits = room
    at_once = "" if trials == 1 else f" in each of {trials} trials at once"
    fewer = "" if trials == 1 else ", or run fewer trials at once (--concurrency)"
    raise SettingsError(
        f"a training batch of {batch:,} images needs {batch * per_image / GIB:.1f} GiB{at_once}, but "
        f"{available / GIB:.1f} GiB is available; lower {setting} to at most {fits:,}{fewer}"
    )
