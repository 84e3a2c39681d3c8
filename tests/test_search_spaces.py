import pytest

from tuner.core.errors import SearchSpaceError
from tuner.run.search_space import param_space as param_space_of
from tuner.run.search_space import to_tune
from tuner.search.spaces import available_spaces, load_space


@pytest.mark.parametrize("name", available_spaces())
def test_every_shipped_space_loads_and_converts(name):
    space = load_space(name)
    param_space = param_space_of(space)
    assert {p.name for p in space.params} <= set(param_space)
    for point in space.start:
        assert set(point) == {p.name for p in space.params}


def test_default_space_searches_the_three_parameters():
    space = load_space("default")
    kinds = {p.name: p.type for p in space.params}
    assert kinds == {"lr": "loguniform", "negative_slope": "uniform", "init_scale": "loguniform"}


def test_space_by_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("params:\n  lr: {type: loguniform, low: 1e-4, high: 1e-2}\n")
    space = load_space(str(path))
    assert space.params[0].low == pytest.approx(1e-4)  # "1e-4" is a string to YAML; coerced


BAD = {
    "unknown type": (
        "params:\n  lr: {type: gaussian, low: 1, high: 2}\n",
        r"'lr': unknown type 'gaussian'; use one of",
    ),
    "low >= high": ("params:\n  lr: {type: uniform, low: 0.1, high: 0.01}\n", r"'lr': low \(0.1\) is not below high"),
    "missing key": ("params:\n  lr: {type: uniform, low: 0.1}\n", r"'lr' \(uniform\) is missing high"),
    "extra key": ("params:\n  lr: {type: uniform, low: 0.1, high: 1, step: 2}\n", r"unknown keys \['step'\]"),
    "log of zero": ("params:\n  lr: {type: loguniform, low: 0, high: 1}\n", r"loguniform needs low > 0"),
    "not a number": ("params:\n  lr: {type: uniform, low: small, high: 1}\n", r"low is 'small', not a finite number"),
    "unknown parameter": (
        "params:\n  learning_rate: {type: uniform, low: 0, high: 1}\n",
        r"unknown parameter 'learning_rate'",
    ),
    "sweep-owned": ("params:\n  max_epochs: {type: int, low: 1, high: 5}\n", r"set by the sweep.*--max-epochs"),
    "no params": ("fixed:\n  batch_size: 32\n", r"no 'params:' mapping"),
    "bad yaml": ("params: [unclosed\n", r"not valid YAML"),
    "empty choice": ("params:\n  hidden: {type: choice, values: []}\n", r"values is empty or not a list"),
    "bad fixed value": (
        "params:\n  lr: {type: uniform, low: 0.1, high: 1}\nfixed:\n  optimizer: rmsprop\n",
        r"fixed settings: optimizer 'rmsprop'",
    ),
    "searched and fixed": (
        "params:\n  lr: {type: uniform, low: 0.1, high: 1}\nfixed:\n  lr: 0.5\n",
        r"both searched and fixed",
    ),
    "bad start": (
        "params:\n  lr: {type: uniform, low: 0.1, high: 1}\nstart:\n  - {lr: 0.5, hidden: 3}\n",
        r"start point",
    ),
    "top-level typo": ("param:\n  lr: {type: uniform, low: 0.1, high: 1}\n", r"no 'params:' mapping"),
    "fixed value out of range": (
        "params:\n  lr: {type: uniform, low: 0.1, high: 1}\nfixed:\n  batch_size: -32\n",
        r"fixed settings: batch_size is -32, out of range; give a whole number of 1 or more",
    ),
    "fixed value of the wrong type": (
        "params:\n  lr: {type: uniform, low: 0.1, high: 1}\nfixed:\n  hidden: many\n",
        r"fixed settings: hidden is 'many', not a whole number",
    ),
    "range out of bounds": (
        "params:\n  lr: {type: uniform, low: -0.1, high: 1}\n",
        r"parameter 'lr' \(uniform\): lr is -0.1, out of range; give a number above 0",
    ),
    "float range for a whole number": (
        "params:\n  hidden: {type: uniform, low: 8, high: 64}\n",
        r"parameter 'hidden' \(uniform\): hidden is 8.0, not a whole number",
    ),
    "a choice out of bounds": (
        "params:\n  batch_size: {type: choice, values: [16, 0]}\n",
        r"parameter 'batch_size' \(choice\): batch_size is 0",
    ),
    "start point out of bounds": (
        "params:\n  lr: {type: uniform, low: 0.1, high: 1}\nstart:\n  - {lr: -1}\n",
        r"start point lr: -1 is outside its range \(0.1 to 1\); move the point inside",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_space_names_file_parameter_and_problem(tmp_path, case):
    text, pattern = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SearchSpaceError, match=pattern) as err:
        load_space(str(path))
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_space_name_lists_the_shipped_ones():
    with pytest.raises(SearchSpaceError, match="unknown search space 'nope'.*default"):
        load_space("nope")


def test_each_type_means_the_same_range_to_ray_and_to_optuna(tmp_path):
    path = tmp_path / "types.yaml"
    path.write_text(
        "params:\n  lr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}\n"
        "  hidden: {type: int, low: 8, high: 10}\n  optimizer: {type: choice, values: [adam, sgd]}\n"
    )
    space = load_space(str(path))
    by_name = {p.name: p for p in space.params}
    lr = by_name["lr"].to_optuna()
    assert (lr.low, lr.high, lr.log) == (1e-4, 1e-2, True)
    hidden_ray, hidden_optuna = to_tune(by_name["hidden"]), by_name["hidden"].to_optuna()
    assert {hidden_ray.sample() for _ in range(200)} == set(range(8, 11))  # both ends included, as Optuna's
    assert (hidden_optuna.low, hidden_optuna.high) == (8, 10)
    assert list(by_name["optimizer"].to_optuna().choices) == ["adam", "sgd"]


def test_a_binary_file_is_not_a_space(tmp_path):
    for name in ("photo.yaml", "photo.jpg"):
        (tmp_path / name).write_bytes(bytes(range(256)) * 4)
        with pytest.raises(SearchSpaceError, match="not a text file") as err:
            load_space(str(tmp_path / name))
        assert "\n" not in str(err.value)


def test_a_batch_too_large_for_memory_is_refused_before_any_image_is_made(tmp_path):
    from tuner.core.errors import SettingsError
    from tuner.core.memory import GIB, training_bytes_per_image
    from tuner.search.checks import check_training_memory

    path = tmp_path / "big.yaml"
    path.write_text(
        "params:\n  lr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}\n"
        "  batch_size: {type: choice, values: [32, 100000]}\n  hidden: {type: int, low: 16, high: 1024}\n"
    )
    big = load_space(str(path))
    per_image = training_bytes_per_image(32, 64, 1024)  # the widest model the space can give
    # 14,336 images is the largest batch: a batch_size beyond the training images is one batch of them all.
    with pytest.raises(SettingsError, match=r"a training batch of 14,336 images needs .* in each of 2 trials at once"):
        check_training_memory(big, 14_336, trials=2, available=16 * GIB)
    with pytest.raises(SettingsError, match=r"lower batch_size in big.yaml to at most 1,000, or run fewer trials"):
        check_training_memory(big, 14_336, trials=2, available=int(2 * 1000.5 * per_image / 0.8))
    check_training_memory(big, 14_336, trials=1, available=int(14_336 * per_image / 0.8) + 1)  # just fits: no error
    check_training_memory(big, 256, trials=2, available=GIB)  # few training images: small batches
    check_training_memory(load_space("default"), 50_000, trials=16, available=8 * GIB)  # the shipped spaces fit
