"""Shared fixtures: tiny synthetic data for unit tests; real Ray for the slow end-to-end tests."""

from __future__ import annotations

import pytest
import torch

from tuner.data import TeacherData, with_targets, ImageSplits
from tuner.synthetic import synthetic_images


@pytest.fixture(scope="session")
def tiny_data() -> TeacherData:
    """96 train / 32 val synthetic images with their teacher targets."""
    return with_targets(ImageSplits("synthetic", synthetic_images(96, seed=0), synthetic_images(32, seed=1)))


@pytest.fixture(autouse=True)
def _few_threads():
    # Unit tests are small; one thread avoids oversubscribing a 2-core CI box while Ray runs.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ray_local():
    """A real local Ray instance for a test module, shut down afterwards."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
