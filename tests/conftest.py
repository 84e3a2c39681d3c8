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


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray instance, started once for the whole test session."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


DIVERGING_SPACE = """
params:
  lr: {type: loguniform, low: 1.0e-3, high: 1.0e+7}
fixed: {optimizer: sgd, schedule: constant, hidden: 32, batch_size: 16}
start:
  - {lr: 1.0e+6}
  - {lr: 1.0e-2}
"""


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory, ray_local):
    """A real tiny sweep through the CLI, made once per session: 3 trials, one of them made to diverge."""
    from tuner.cli import main

    storage = tmp_path_factory.mktemp("results")
    space = storage / "diverging.yaml"
    space.write_text(DIVERGING_SPACE)
    argv = ["sweep", "--name", "tiny", "--storage", str(storage), "--dataset", "synthetic", "--space", str(space),
            "--num-samples", "3", "--max-epochs", "2", "--train-size", "128", "--val-size", "32", "--concurrency", "2"]
    assert main(argv) == 0
    return storage / "tiny"
