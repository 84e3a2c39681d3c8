"""The two small config dataclasses, without torch: what a model is and how it trains.

`ModelConfig` is stored inside every checkpoint (nanoGPT style), so a model is
rebuilt from its file alone (`checkpoints.load_model`). `TrainConfig` holds what
a trial tunes besides the model. A trial's flat config is split into the two by
`split_config`; `TUNABLE` is the one list of what a search space may name.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

from tuner.core.constants import IN_SHAPE, OUT_SHAPE

OPTIMIZER_NAMES = ("adam", "adamw", "sgd")
SCHEDULES = ("onecycle", "constant")
# Optuna's samplers and numpy's RandomState take seeds below 2**32; torch would take 64 bits.
SEED_MAX = 2**32 - 1
# fc1 alone holds 12,544 x hidden weights; past this one trial's model and optimizer state outgrow a workstation.
HIDDEN_MAX = 16_384
CHANNELS_MAX = 1_024


def check_whole(name: str, value: Any, low: int, high: int | None = None) -> None:
    """A whole number in [low, high] (bools refused: YAML's `yes` is not a batch size); ValueError if not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} is {value!r}, not a whole number; give a whole number of {low} or more")
    if value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"of {low} or more"
        raise ValueError(f"{name} is {value}, out of range; give a whole number {span}")


def check_real(name: str, value: Any, low: float, high: float | None = None, above: bool = False) -> None:
    """A finite number in [low, high] (or above low); ValueError if not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} is {value!r}, not a finite number; give a number such as 1.0e-3")
    if value < low or (above and value == low) or (high is not None and value > high):
        span = f"above {low:g}" if above else f"of at least {low:g}"
        span = span if high is None else f"from {low:g} to {high:g}"
        raise ValueError(f"{name} is {value:g}, out of range; give a number {span}")


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} is {value!r}, not true or false; write true or false")


@dataclass(frozen=True)
class ModelConfig:
    in_shape: tuple[int, int, int] = IN_SHAPE
    out_shape: tuple[int, int, int] = OUT_SHAPE
    # The seed's 32 / 64 / 512; a --pareto sweep searches them for speed (space_files/pareto.yaml).
    conv1_channels: int = 32
    conv2_channels: int = 64
    hidden: int = 512
    negative_slope: float = 0.01
    init_scale: float = 1.0

    def __post_init__(self) -> None:
        # Checked here, not in the trial, so a bad search space or checkpoint fails in one line before any work.
        # Two unpadded 3x3 convs and a 2x2 pool need images of at least 6x6.
        for key, smallest in (("in_shape", (1, 6, 6)), ("out_shape", (1, 1, 1))):
            shape = getattr(self, key)
            if not isinstance(shape, (tuple, list)) or len(shape) != 3:
                raise ValueError(f"{key} is {shape!r}, not (channels, height, width); give three whole numbers")
            for size, low in zip(shape, smallest, strict=True):
                check_whole(key, size, low)
        check_whole("conv1_channels", self.conv1_channels, 1, CHANNELS_MAX)
        check_whole("conv2_channels", self.conv2_channels, 1, CHANNELS_MAX)
        check_whole("hidden", self.hidden, 1, HIDDEN_MAX)
        check_real("negative_slope", self.negative_slope, 0.0, 1.0)
        check_real("init_scale", self.init_scale, 0.0, above=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; known: {sorted(known)}")
        kw = dict(d)
        for key in ("in_shape", "out_shape"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 1e-3
    batch_size: int = 32
    max_epochs: int = 3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    warmup_frac: float = 0.15
    bf16: bool = False  # train under bf16 autocast (validation stays float32)
    channels_last: bool = False  # NHWC weights and inputs
    seed: int = 0

    def __post_init__(self) -> None:
        check_real("lr", self.lr, 0.0, above=True)
        check_whole("batch_size", self.batch_size, 1)
        check_whole("max_epochs", self.max_epochs, 1)
        check_real("weight_decay", self.weight_decay, 0.0)
        check_real("warmup_frac", self.warmup_frac, 0.0, 1.0)
        _check_flag("bf16", self.bf16)
        _check_flag("channels_last", self.channels_last)
        check_whole("seed", self.seed, 0, SEED_MAX)
        if self.optimizer not in OPTIMIZER_NAMES:
            raise ValueError(f"optimizer {self.optimizer!r} is unknown; use one of {list(OPTIMIZER_NAMES)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r} is unknown; use one of {list(SCHEDULES)}")


MODEL_KEYS = frozenset(f.name for f in fields(ModelConfig)) - {"in_shape", "out_shape"}
TRAIN_KEYS = frozenset(f.name for f in fields(TrainConfig))
# What a search space may search or fix; max_epochs and seed are the sweep's own (see search_spaces).
TUNABLE = MODEL_KEYS | TRAIN_KEYS


def split_config(config: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """A flat trial config -> (ModelConfig, TrainConfig); an unknown key is an error, not ignored."""
    unknown = set(config) - TUNABLE
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(TUNABLE)}")
    model_cfg = ModelConfig(**{k: v for k, v in config.items() if k in MODEL_KEYS})
    return model_cfg, TrainConfig(**{k: v for k, v in config.items() if k in TRAIN_KEYS})
