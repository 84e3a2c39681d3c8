"""The two small config dataclasses, without torch: what a model is and how it trains.

`ModelConfig` is stored inside every checkpoint (nanoGPT style), so a model is
rebuilt from its file alone (`checkpoints.load_model`). `TrainConfig` holds what
a trial tunes besides the model. A trial's flat config is split into the two by
`split_config`; `TUNABLE` is the one list of what a search space may name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from tuner.core.constants import IN_SHAPE, OUT_SHAPE

OPTIMIZER_NAMES = ("adam", "adamw", "sgd")
SCHEDULES = ("onecycle", "constant")


@dataclass(frozen=True)
class ModelConfig:
    in_shape: tuple[int, int, int] = IN_SHAPE
    out_shape: tuple[int, int, int] = OUT_SHAPE
    hidden: int = 512
    negative_slope: float = 0.01
    init_scale: float = 1.0

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
