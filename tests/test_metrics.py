"""The metric registry, SSIM, and the optimised metric read the same way everywhere, whichever way is better."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tuner.core import metrics
from tuner.core.constants import METRIC, MODE
from tuner.learn.fidelity import function_of, validate
from tuner.learn.ssim import C1, C2, SIGMA, WINDOW, ssim
from tuner.learn.teacher import teach
from tuner.results import record
from tuner.results.leaderboard import leaderboard
from tuner.results.tables import HISTORY_COLUMNS, TRIAL_COLUMNS, collect
from tuner.search.settings import SweepSettings


def test_the_registry_is_consistent_with_the_sweep():
    metrics.check()
    assert metrics.get(METRIC).direction == MODE  # the sweep optimises a registered metric, its own way
    assert {"val_loss", "val_psnr", "val_ssim", "train_loss", "epoch_time_s"} <= set(metrics.names())
    assert metrics.resolve("ssim") == "val_ssim" and metrics.resolve("nonsense") is None
    for m in metrics.computed():
        assert callable(function_of(m.name)), m.name  # every "module:function" imports from tuner.learn
    assert set(metrics.names()) <= set(record.EPOCH_KEYS) and set(metrics.names()) <= set(HISTORY_COLUMNS)
    assert "val_ssim" in TRIAL_COLUMNS and "best_val_ssim" in TRIAL_COLUMNS


def test_the_registry_rejects_its_own_mistakes():
    bad = {"a": metrics.Metric("a", "up", "A")}
    with pytest.raises(ValueError, match="direction"):
        metrics.check(bad)
    late = {"b": metrics.Metric("b", "max", "B", compute="teacher:psnr", of="c")}
    with pytest.raises(ValueError, match="registered before"):
        metrics.check(late)


def test_the_progress_line_shows_every_marked_metric_in_its_format():
    text = metrics.line({"val_loss": 0.00231, "val_psnr": 26.3642, "val_ssim": 0.91204})
    assert text == "val_loss 0.00231  val_psnr 26.36 dB  val_ssim 0.9120"
    assert "val_ssim nan" in metrics.line({"val_loss": 0.1})  # an old trial's report: shown, not a crash


def reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of two 2-D images as the paper states it: at every window position inside the image, weighted means,
    variances and covariance under an 11x11 Gaussian window, then the mean of the SSIM map."""
    r = np.arange(WINDOW) - (WINDOW - 1) / 2
    g = np.exp(-(r**2) / (2 * SIGMA**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    values = []
    for i in range(x.shape[0] - WINDOW + 1):
        for j in range(x.shape[1] - WINDOW + 1):
            a, b = x[i : i + WINDOW, j : j + WINDOW], y[i : i + WINDOW, j : j + WINDOW]
            mu_a, mu_b = (w * a).sum(), (w * b).sum()
            var_a, var_b = (w * (a - mu_a) ** 2).sum(), (w * (b - mu_b) ** 2).sum()
            cov = (w * (a - mu_a) * (b - mu_b)).sum()
            values.append((2 * mu_a * mu_b + C1) * (2 * cov + C2) / ((mu_a**2 + mu_b**2 + C1) * (var_a + var_b + C2)))
    return float(np.mean(values))


def images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_identical_images_score_one():
    x = images(4, 0)
    assert torch.allclose(ssim(x, x), torch.ones(4), atol=1e-6)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(x[..., :8, :8], x[..., :8, :8])


def test_two_flat_images_score_their_luminance_term():
    # No variance anywhere: the structure term is C2 / C2 = 1, and SSIM is (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 0.5, 0.25
    x, y = torch.full((1, 1, 28, 28), a), torch.full((1, 1, 28, 28), b)
    assert ssim(x, y).item() == pytest.approx((2 * a * b + C1) / (a * a + b * b + C1), rel=1e-4)
    assert ssim(x, y).item() == pytest.approx(0.80006, abs=1e-5)


def test_noise_lowers_it_the_more_the_noisier():
    x = images(8, 1)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    scores = [ssim(x, (x + s * noise).clamp(0, 1)).mean().item() for s in (0.0, 0.02, 0.1, 0.3)]
    assert scores[0] == pytest.approx(1.0, abs=1e-6)
    assert scores[0] > scores[1] > scores[2] > scores[3]


def test_it_matches_a_straightforward_reference_image_by_image():
    x, y = images(3, 3), (images(3, 3) * 0.7 + images(3, 4) * 0.3)
    batched = ssim(x, y)  # every image at once: no image's window may see another's
    expected = [reference_ssim(x[i, 0].double().numpy(), y[i, 0].double().numpy()) for i in range(3)]
    assert batched.tolist() == pytest.approx(expected, abs=1e-5)


class TeacherAsModel(nn.Module):
    """The teacher itself, plus a fixed ripple of amplitude `ripple`: a model whose scores are known in advance."""

    def __init__(self, ripple: float = 0.0) -> None:
        super().__init__()
        self.ripple = ripple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = teach(x)
        return out + self.ripple * torch.sin(torch.arange(out[0].numel()).view(out.shape[1:]).float())


def test_validation_computes_every_registered_metric(tiny_data):
    perfect = validate(TeacherAsModel(), tiny_data.val_images, tiny_data.val_targets, batch_size=7)
    assert set(perfect) == {m.name for m in metrics.computed()}
    assert perfect["val_loss"] == pytest.approx(0.0, abs=1e-10) and perfect["val_ssim"] == pytest.approx(1.0, abs=1e-5)
    # Batches of 7 over 32 images: the last batch is short, and every image still counts once.
    rippled = validate(TeacherAsModel(0.05), tiny_data.val_images, tiny_data.val_targets, batch_size=7)
    assert rippled["val_loss"] == pytest.approx(0.05**2 * torch.sin(torch.arange(784.0)).pow(2).mean().item(), rel=1e-3)
    assert rippled["val_psnr"] == pytest.approx(10 * math.log10(1 / rippled["val_loss"]))
    whole = ssim(TeacherAsModel(0.05)(tiny_data.val_images.float() / 255), tiny_data.val_targets).mean().item()
    assert 0 < rippled["val_ssim"] < 1 and rippled["val_ssim"] == pytest.approx(whole, abs=1e-6)


# Two trials whose loss and SSIM disagree: the best by val_loss is "low", the best by val_ssim is "sharp".
EPOCHS = {
    "low": [(0.020, 0.50), (0.010, 0.55), (0.00995, 0.56), (0.00994, 0.57)],
    "sharp": [(0.030, 0.80), (0.025, 0.82), (0.024, 0.90), (0.0239, 0.91)],
}


def hand_made(tmp_path: Path) -> Path:
    exp = tmp_path / "hand"
    exp.mkdir()
    SweepSettings(
        name="hand", dataset="synthetic", num_samples=2, max_epochs=5, patience=2, storage=str(tmp_path)
    ).save(exp, dataset_used="synthetic")
    for trial_id, epochs in EPOCHS.items():
        record.append(exp, "start", trial_id, config={"lr": 1e-3})
        for n, (loss, score) in enumerate(epochs, start=1):
            psnr = 10 * math.log10(1 / loss)
            record.append(exp, "epoch", trial_id, epoch=n, val_loss=loss, val_psnr=psnr, val_ssim=score)
        record.append(exp, "end", trial_id, outcome="terminated")
    return exp


@pytest.mark.parametrize(
    "metric, mode, best, status", [("val_loss", "min", "low", "plateau"), ("val_ssim", "max", "sharp", "asha")]
)
def test_best_trial_and_plateau_follow_the_metric_and_mode(tmp_path, metric, mode, best, status):
    summary = collect(hand_made(tmp_path), metric=metric, mode=mode)
    assert summary.best["trial_id"] == best and summary.trials["trial_id"].iloc[0] == best
    # "low" gained under 1% in its last two epochs. "sharp" rose by SSIM (0.82 -> 0.91): no plateau upward,
    # though read downward, as a loss, it would be one.
    by_id = summary.trials.set_index("trial_id")
    assert by_id.loc[best, "status"] == status
    assert by_id.loc["sharp", "best_val_ssim"] == 0.91 and by_id.loc["sharp", "best_val_loss"] == 0.0239


def test_sorting_by_a_short_metric_name_puts_the_best_first(tmp_path):
    trials = collect(hand_made(tmp_path)).trials
    assert leaderboard(trials, "ssim", columns=["trial_id", "ssim"]).iloc[0].tolist() == ["sharp", 0.91]
    assert leaderboard(trials, "best_ssim", columns=["trial_id"]).iloc[0, 0] == "sharp"
    assert leaderboard(trials, "val_loss", columns=["trial_id"]).iloc[0, 0] == "low"
    assert leaderboard(trials, "lr", descending=True, columns=["trial_id", "lr"]).shape == (2, 2)
    lr = leaderboard(trials, "lr", descending=True, columns=["lr"]).iloc[:, 0].tolist()
    assert lr == sorted(lr, reverse=True)
    for metric in ("val_loss", "ssim"):  # a metric is always best first, as --descending's help says
        assert leaderboard(trials, metric, descending=True, columns=["trial_id"]).equals(
            leaderboard(trials, metric, columns=["trial_id"])
        )


CHANGED_METRIC = """
import json, sys
import tuner.core.constants as c
c.METRIC, c.MODE = "val_ssim", "max"  # before any other tuner module reads them
from tuner.results.leaderboard import LEADERBOARD_COLUMNS, leaderboard
from tuner.results.tables import collect
summary = collect(sys.argv[1])
print(json.dumps({"best": summary.best["trial_id"], "first": leaderboard(summary.trials).iloc[0]["trial_id"],
                  "last_column": LEADERBOARD_COLUMNS[-1], "metrics": list(summary.best["metrics"])[:1]}))
"""


def test_changing_metric_and_mode_in_constants_changes_every_reader(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", CHANGED_METRIC, str(hand_made(tmp_path))], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "best": "sharp",
        "first": "sharp",
        "last_column": "val_ssim",
        "metrics": ["val_ssim"],
    }
