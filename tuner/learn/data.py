"""Datasets: where images come from, and the teacher targets computed once for them.

A dataset spec is one of `synthetic`, `cifar10`, `folder:PATH` or `auto`
(CIFAR-10 when it is on disk or can be downloaded, else synthetic). Images are
kept as uint8 (N, 3, 32, 32); the teacher's float targets are computed once,
in batches, by `with_targets`, and the sweep hands the result to every trial
through Ray's object store.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from tuner.core.constants import DATASETS
from tuner.core.errors import DatasetError, first_line
from tuner.core.files import made_for
from tuner.core.memory import check_images_fit
from tuner.learn.decode import folder_images
from tuner.learn.synthetic import synthetic_images
from tuner.learn.teacher import teach

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 5.0


@dataclass
class ImageSplits:
    """uint8 images: train and val for the sweep, test for the benchmark (None: use val)."""

    source: str
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor | None = None

    @property
    def benchmark_images(self) -> torch.Tensor:
        return self.test if self.test is not None else self.val


@dataclass
class TeacherData:
    """Images with their teacher targets: what every trial trains and validates on."""

    source: str
    train_images: torch.Tensor
    train_targets: torch.Tensor
    val_images: torch.Tensor
    val_targets: torch.Tensor

    def to(self, device: torch.device | str) -> TeacherData:
        """The same data on `device` (the tensors themselves when they are already there)."""
        return TeacherData(
            self.source,
            *(t.to(device) for t in (self.train_images, self.train_targets, self.val_images, self.val_targets)),
        )


def default_data_dir() -> Path:
    return Path(os.environ.get("TUNER_DATA_DIR", Path.home() / ".cache" / "tuner" / "data"))


def with_targets(splits: ImageSplits) -> TeacherData:
    return TeacherData(splits.source, splits.train, teach(splits.train), splits.val, teach(splits.val))


def check_spec(spec: str, data_dir: str | Path | None = None) -> None:
    """Refuse an unknown dataset spec, a missing image folder, or a CIFAR-10 directory that is a file, before
    anything is loaded or created (a download into a file would fail as if offline)."""
    if spec in ("auto", "cifar10"):
        where = Path(data_dir).expanduser() if data_dir else default_data_dir()
        if os.path.exists(where) and not where.is_dir():
            raise DatasetError(
                f"the CIFAR-10 directory {where} is a file; pass --data-dir (or $TUNER_DATA_DIR) a directory, "
                "created if missing"
            )
    if spec not in DATASETS[:3] and not spec.startswith("folder:"):
        raise DatasetError(f"unknown dataset {spec!r}; use one of: {', '.join(DATASETS)}")
    given = spec.removeprefix("folder:") if spec.startswith("folder:") else None
    if given is not None and not (given and Path(given).expanduser().is_dir()):
        path = Path(given).expanduser()
        what = "is not a directory" if given and os.path.exists(path) else "does not exist"
        raise DatasetError(
            f"image folder {path if given else '(none given)'} {what}; "
            "pass --dataset folder:PATH with a folder of images"
        )


def load_images(
    spec: str,
    train_size: int,
    val_size: int,
    seed: int = 0,
    data_dir: str | Path | None = None,
    with_train: bool = True,
) -> ImageSplits:
    """Resolve a dataset spec to image splits of the requested sizes.

    `with_train=False` skips making training images where that saves work (synthetic):
    the validation split is the same either way."""
    check_spec(spec, data_dir)
    data_dir = Path(data_dir).expanduser() if data_dir else default_data_dir()
    if spec == "auto":
        spec = "cifar10" if _cifar10_available(data_dir) else "synthetic"
        if spec == "synthetic":
            log.warning(
                "CIFAR-10 is not in %s and cannot be downloaded; using the built-in synthetic images.", data_dir
            )
    if spec == "synthetic":
        count = (train_size if with_train else 0) + val_size
        check_images_fit(count, "--train-size and --val-size" if with_train else "--size")  # made to order
        # Distinct seeds per split, so val never repeats a training image.
        train = synthetic_images(train_size if with_train else 0, seed)
        return ImageSplits("synthetic", train, synthetic_images(val_size, seed + 1))
    if spec == "cifar10":
        return _cifar10(data_dir, train_size, val_size, seed)
    return _folder(Path(spec[len("folder:") :]).expanduser(), train_size, val_size, seed)


class DataSettings(Protocol):
    """What of a sweep's settings (tuner.search.settings.SweepSettings) says which images it trains on."""

    dataset: str
    train_size: int
    val_size: int
    seed: int
    data_dir: str | None


def images_of(settings: DataSettings, dataset_used: str | None = None, with_train: bool = True) -> ImageSplits:
    """An experiment's images, rebuilt from its settings (and the dataset `auto` resolved to)."""
    return load_images(
        dataset_used or settings.dataset,
        settings.train_size,
        settings.val_size,
        settings.seed,
        settings.data_dir,
        with_train=with_train,
    )


def evaluation_images(
    spec: str, size: int, seed: int = 0, data_dir: str | Path | None = None
) -> tuple[str, torch.Tensor]:
    """(source, up to `size` images) to score any model on: CIFAR-10's test split, every image of a
    folder, or synthetic images no sweep with this seed trained on."""
    check_spec(spec)
    if spec.startswith("folder:"):
        root = Path(spec[len("folder:") :]).expanduser()
        return f"folder:{root}", folder_images(root, limit=size)
    splits = load_images(spec, 0, size, seed, data_dir, with_train=False)
    return splits.source, splits.benchmark_images[:size]


def _split(images: torch.Tensor, train_size: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded shuffle, then val first so changing train_size never moves a val image into train."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    val = images[order[:val_size]]
    train = images[order[val_size : val_size + train_size]]
    return train, val


def _cifar10_dataset(data_dir: Path, train: bool, download: bool):
    from torchvision.datasets import CIFAR10

    return CIFAR10(str(data_dir), train=train, download=download)


def _cifar10_on_disk(data_dir: Path) -> bool:
    return (data_dir / "cifar-10-batches-py" / "data_batch_1").exists()


def _cifar10_available(data_dir: Path) -> bool:
    """True when CIFAR-10 is on disk, or downloads now; offline this gives up in seconds."""
    if _cifar10_on_disk(data_dir):
        return True
    try:
        _download_cifar10(data_dir)
    except DatasetError:
        return False
    return True


def _download_cifar10(data_dir: Path) -> None:
    # torchvision's downloader has no timeout of its own; a socket default bounds
    # each connect/read so an offline machine fails fast instead of hanging.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        with made_for(data_dir):  # offline, nothing is left behind: not even ~/.cache/tuner/data
            _cifar10_dataset(data_dir, train=True, download=True)
            _cifar10_dataset(data_dir, train=False, download=True)
    except Exception as exc:  # URLError, timeout, bad checksum, unwritable dir: all mean "not available"
        raise DatasetError(
            f"CIFAR-10 is not in {data_dir} and could not be downloaded ({type(exc).__name__}: {first_line(exc, 60)}); "
            "connect to the internet, copy cifar-10-batches-py there, or use --dataset synthetic"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def _as_tensor(dataset) -> torch.Tensor:
    """torchvision's CIFAR10.data (N, 32, 32, 3) uint8 -> (N, 3, 32, 32)."""
    return torch.from_numpy(np.asarray(dataset.data)).permute(0, 3, 1, 2).contiguous()


def _cifar10(data_dir: Path, train_size: int, val_size: int, seed: int) -> ImageSplits:
    if not _cifar10_on_disk(data_dir):
        _download_cifar10(data_dir)
    train_all = _as_tensor(_cifar10_dataset(data_dir, train=True, download=False))
    test = _as_tensor(_cifar10_dataset(data_dir, train=False, download=False))
    train, val = _split(train_all, train_size, val_size, seed)
    return ImageSplits("cifar10", train, val, test)


def _folder(root: Path, train_size: int, val_size: int, seed: int) -> ImageSplits:
    """A user's own images, split into train and val."""
    images = folder_images(root)
    # val gets what it asks for, as long as train keeps min(train_size, half the images).
    val_size = min(val_size, len(images) - min(train_size, len(images) // 2))
    train, val = _split(images, min(train_size, len(images) - val_size), val_size, seed)
    return ImageSplits(f"folder:{root}", train, val)
