import logging

import pytest
import torch
from PIL import Image

from tuner.core.errors import DatasetError
from tuner.learn.data import load_images
from tuner.learn.synthetic import synthetic_images


def test_synthetic_is_deterministic_per_seed():
    assert torch.equal(synthetic_images(40, seed=3), synthetic_images(40, seed=3))
    assert not torch.equal(synthetic_images(40, seed=3), synthetic_images(40, seed=4))


def test_synthetic_looks_like_images():
    x = synthetic_images(256, seed=0)
    assert x.shape == (256, 3, 32, 32) and x.dtype == torch.uint8
    assert x.float().std() > 30  # not flat
    # natural images are smooth: neighbouring pixels correlate strongly
    f = x.float()
    a, b = f[..., :, 1:].flatten(), f[..., :, :-1].flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.7


def test_synthetic_splits_have_requested_sizes_and_no_shared_images():
    splits = load_images("synthetic", train_size=50, val_size=20, seed=0)
    assert splits.source == "synthetic"
    assert len(splits.train) == 50 and len(splits.val) == 20
    assert not any(torch.equal(v, t) for v in splits.val for t in splits.train)
    assert splits.benchmark_images is splits.val


def test_unknown_dataset_names_the_choices():
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'.*synthetic"):
        load_images("imagenet", 10, 10)


def test_folder_dataset_resizes_any_image_size(tmp_path):
    for i, size in enumerate([(64, 48), (32, 32), (100, 300), (20, 20), (50, 50)]):
        Image.new("RGB", size, (i * 40, 100, 200)).save(tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    splits = load_images(f"folder:{tmp_path}", train_size=100, val_size=1, seed=0)
    assert splits.train.shape[1:] == (3, 32, 32)
    assert len(splits.train) + len(splits.val) == 5


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_images(f"folder:{tmp_path / 'nope'}", 10, 10)


def test_cifar10_offline_fails_with_a_hint(tmp_path, monkeypatch):
    # Point the download at a closed local port: the same failure as having no internet.
    monkeypatch.setattr("torchvision.datasets.CIFAR10.url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(DatasetError, match="could not be downloaded.*--dataset synthetic"):
        load_images("cifar10", 10, 10, data_dir=tmp_path)


def test_auto_falls_back_to_synthetic_with_one_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("torchvision.datasets.CIFAR10.url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with caplog.at_level(logging.WARNING):
        splits = load_images("auto", 10, 5, data_dir=tmp_path)
    assert splits.source == "synthetic"
    assert len([r for r in caplog.records if "synthetic" in r.message]) == 1
