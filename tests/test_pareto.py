"""`--pareto`: the front is exactly the non-dominated trials, model size is searchable, and a real sweep fills
both objectives for every trial (slow)."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import tempfile

import pandas as pd
import pytest
import torch

from tuner.core.configs import ModelConfig
from tuner.core.errors import TunerError
from tuner.inference.speed import model_images_per_s, teacher_images_per_s
from tuner.learn.checkpoints import load_model_file
from tuner.learn.model import build_model
from tuner.results.pareto import answer, fastest_above, non_dominated
from tuner.search.settings import SweepSettings
from tuner.search.spaces import load_space

TEACHER = {"device": "cpu", "threads": 2, "per_image": 10_000.0, "batched": 100_000.0}


def _trials(rows):
    return pd.DataFrame(rows, columns=["trial_id", "val_loss", "images_per_s", "val_psnr"])


def _brute_front(trials: pd.DataFrame) -> set[str]:
    """The definition, written out: no other trial is at least as good in both and better in one."""
    front = set()
    for _, a in trials.iterrows():
        if any(math.isnan(v) for v in (a.val_loss, a.images_per_s)):
            continue
        beaten = any(
            b.val_loss <= a.val_loss
            and b.images_per_s >= a.images_per_s
            and (b.val_loss < a.val_loss or b.images_per_s > a.images_per_s)
            for _, b in trials.iterrows()
            if b.trial_id != a.trial_id and not math.isnan(b.val_loss) and not math.isnan(b.images_per_s)
        )
        if not beaten:
            front.add(a.trial_id)
    return front


def test_the_front_is_exactly_the_non_dominated_trials():
    trials = _trials(
        [
            ("slow-good", 0.001, 1_000.0, 30.0),
            ("fast-poor", 0.010, 20_000.0, 20.0),
            ("middle", 0.003, 5_000.0, 25.2),
            ("dominated", 0.004, 4_000.0, 24.0),  # worse than "middle" in both
            ("tie", 0.003, 5_000.0, 25.2),  # equal to "middle": neither dominates the other
            ("no-speed", 0.0005, math.nan, 33.0),  # failed before it was measured: not on the front
        ]
    )
    front = non_dominated(trials)
    assert set(front["trial_id"]) == {"slow-good", "fast-poor", "middle", "tie"} == _brute_front(trials)
    assert list(front["images_per_s"]) == sorted(front["images_per_s"], reverse=True)


def test_random_tables_agree_with_the_definition():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        values = torch.rand(12, 2, generator=generator).round(decimals=1).tolist()  # rounding makes ties
        trials = _trials([(f"t{i}", a, b * 1e4, 20.0) for i, (a, b) in enumerate(values)])
        assert set(non_dominated(trials)["trial_id"]) == _brute_front(trials)


def test_fastest_above_and_the_answer_sentences():
    trials = _trials([("a", 0.001, 1_000.0, 30.5), ("b", 0.01, 20_000.0, 26.0), ("c", 0.02, 40_000.0, 24.0)])
    assert fastest_above(trials, 25)["trial_id"] == "b"
    with pytest.raises(TunerError, match=r"no trial reaches 31 dB val PSNR \(the best reaches 30.50 dB\); lower"):
        fastest_above(trials, 31)
    at25, at30 = answer(trials, TEACHER)
    assert at25.startswith("on cpu (2 threads) the fastest model at >= 25 dB runs 20,000 images/s, 2.00x")
    assert "faster than" in at25 and "0.10x the per-image teacher (slower than it" in at30
    assert answer(trials, TEACHER, (35.0,)) == ["on cpu (2 threads) no model reaches 35 dB"]


def test_a_sweep_that_was_not_pareto_is_told_so(made_experiment):
    from tuner.results.experiments import load_experiment

    trials = load_experiment(made_experiment).trials  # a real table: the speed columns are there, and empty
    assert "images_per_s" in trials.columns
    for frame in (trials, pd.DataFrame({"trial_id": ["a"], "val_loss": [0.1]})):
        with pytest.raises(TunerError, match="not a --pareto sweep; run one with `tuner sweep --pareto`"):
            non_dominated(frame)
        with pytest.raises(TunerError, match="not a --pareto sweep"):
            fastest_above(frame, 20)


def test_the_pareto_space_searches_size_around_the_seed_model_and_defaults_stay():
    space = load_space("pareto")
    ranges = {p.name: (p.low, p.high) for p in space.params}
    for name, seed_value in (("conv1_channels", 32), ("conv2_channels", 64), ("hidden", 512)):
        assert ranges[name][0] < seed_value < ranges[name][1]
    assert (ModelConfig().conv1_channels, ModelConfig().conv2_channels, ModelConfig().hidden) == (32, 64, 512)
    assert {p.name for p in load_space("default").params} == {"lr", "negative_slope", "init_scale"}
    assert SweepSettings.from_preset("quick", pareto=True).space == "pareto"
    assert SweepSettings.from_preset("quick", pareto=True, space="wide").space == "wide"
    assert SweepSettings.from_preset("quick").space == "default"


def test_a_narrow_model_rebuilds_from_its_file_alone(tmp_path):
    config = ModelConfig(conv1_channels=4, conv2_channels=8, hidden=16)
    model = build_model(config, seed=0)
    torch.save({"model_config": config.to_dict(), "model": model.state_dict()}, tmp_path / "m.pt")
    again = load_model_file(tmp_path / "m.pt")
    assert again.conv2.out_channels == 8 and again.fc1.out_features == 16
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(again(x), model.eval()(x))


def test_speed_is_measured_where_asked_and_leaves_the_model_as_it_was():
    model = build_model(ModelConfig(conv1_channels=4, conv2_channels=4, hidden=16)).train()
    assert model_images_per_s(model, "cpu", min_run_time=0.05) > 0 and model.training
    rates = teacher_images_per_s("cpu", min_run_time=0.05)
    assert set(rates) == {"per_image", "batched"} and all(r > 0 for r in rates.values())


@pytest.mark.slow
def test_a_pareto_sweep_fills_both_objectives_and_lists_its_front(tmp_path):
    ray_tmp = tempfile.mkdtemp(prefix="rp", dir="/tmp")
    env = {"RAY_TMPDIR": ray_tmp, "PYTHONUNBUFFERED": "1"}
    import os

    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, **env}

    def tuner(*argv):
        return subprocess.run(
            [sys.executable, "-m", "tuner", *argv], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
        )

    try:
        done = tuner(
            *"sweep --pareto --name p --dataset synthetic --num-samples 4 --max-epochs 2 --grace-period 1".split(),
            *"--train-size 256 --val-size 64 --no-benchmark".split(),
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "pareto: on cpu (1 thread) the teacher runs" in done.stdout
        assert "A new study created" not in done.stderr  # Optuna's line would repeat tuner's own
        trials = pd.read_csv(tmp_path / "results" / "p" / "trials.csv", dtype={"trial_id": str})
        measured = trials[trials["epochs"] >= 1]
        assert len(measured) == 4 and (measured["images_per_s"] > 0).all() and (measured["x_vs_teacher"] > 0).all()
        listed = tuner("results", "p", "--pareto", "--format", "csv")
        assert listed.returncode == 0, listed.stderr
        shown = pd.read_csv(__import__("io").StringIO(listed.stdout), dtype={"trial_id": str})
        assert set(shown["trial_id"]) == _brute_front(trials)
        report = tuner("report", "p")
        assert report.returncode == 0, report.stderr[-2000:]
        text = (tmp_path / "results" / "p" / "report.md").read_text()
        assert "![fidelity against speed](pareto.png)" in text and "- on cpu (1 thread) " in text
        assert (tmp_path / "results" / "p" / "pareto.png").stat().st_size > 0
        export = tuner("export", "p", "--fastest-above", "0", "--out", str(tmp_path / "out"))
        assert export.returncode == 0, export.stderr[-2000:]
        fastest = trials.sort_values("images_per_s").iloc[-1]["trial_id"]
        assert (tmp_path / "out" / f"model-{fastest}.pt").is_file()
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
