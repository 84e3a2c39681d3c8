import math

import pytest

from tuner.run.stoppers.plateau import PlateauStopper
from tuner.search.plateau import is_plateau


@pytest.mark.parametrize(
    "losses, patience, min_delta, expected",
    [
        ([1.0, 0.5, 0.25, 0.12], 2, 0.01, False),  # steadily improving
        ([1.0, 0.5, 0.499, 0.498], 2, 0.01, True),  # improvements below 1%
        ([1.0, 0.5, 0.499, 0.40], 2, 0.01, False),  # last epoch beats the best clearly
        ([1.0, 0.5, 0.6, 0.7], 2, 0.0, True),  # getting worse
        ([1.0, 0.5], 2, 0.01, False),  # not enough history to judge
        ([1.0, 0.9, 0.9], 1, 0.05, True),
    ],
)
def test_is_plateau(losses, patience, min_delta, expected):
    assert is_plateau(losses, patience, min_delta) is expected


def test_stopper_tracks_each_trial_separately():
    stopper = PlateauStopper(patience=2, min_delta=0.01)
    decisions_a = [stopper("a", {"val_loss": v}) for v in [1.0, 0.5, 0.5, 0.5]]
    decisions_b = [stopper("b", {"val_loss": v}) for v in [1.0, 0.5, 0.25]]
    assert decisions_a == [False, False, False, True]
    assert decisions_b == [False, False, False]
    assert stopper.stop_all() is False


@pytest.mark.parametrize(
    "result", [{"val_loss": math.nan}, {"val_loss": math.inf}, {"val_loss": 0.1, "diverged": True}, {}]
)
def test_stopper_ends_non_finite_trials_at_once(result):
    assert PlateauStopper()("t", result) is True


def test_stopper_rejects_bad_settings():
    with pytest.raises(ValueError, match="patience"):
        PlateauStopper(patience=0)
    with pytest.raises(ValueError, match="min_delta"):
        PlateauStopper(min_delta=1.5)


@pytest.mark.parametrize(
    "values, mode, expected",
    [
        ([20.0, 25.0, 25.1, 25.2], "max", True),  # rising, but by less than 1% of 25
        ([20.0, 25.0, 25.1, 26.0], "max", False),  # the last epoch clears 25.25
        ([20.0, 25.0, 24.0, 23.0], "max", True),  # getting worse upward is falling
        ([0.5, 0.6, 0.7, 0.8], "max", False),  # an SSIM that keeps rising
        ([0.5, 0.6, 0.7, 0.8], "min", True),  # the same numbers read as a loss: no improvement at all
    ],
)
def test_is_plateau_in_either_direction(values, mode, expected):
    assert is_plateau(values, 2, 0.01, mode) is expected


def test_stopper_takes_the_direction_of_its_metric():
    rising = [0.5, 0.6, 0.7, 0.8, 0.9]
    by_registry = PlateauStopper("val_ssim", patience=2, min_delta=0.01)  # registered as "max"
    assert by_registry.mode == "max" and PlateauStopper().mode == "min"
    assert [by_registry("t", {"val_ssim": v}) for v in rising] == [False] * 5
    as_loss = PlateauStopper("val_ssim", patience=2, min_delta=0.01, mode="min")
    assert [as_loss("t", {"val_ssim": v}) for v in rising][-1] is True
    with pytest.raises(ValueError, match="mode"):
        PlateauStopper(mode="up")


def test_a_stopper_pickled_before_it_had_a_mode_resumes_as_a_loss_stopper():
    import pickle

    old = PlateauStopper(patience=2)
    del old.__dict__["mode"]  # what a sweep of an older tuner pickled into its tuner.pkl
    assert pickle.loads(pickle.dumps(old)).mode == "min"
