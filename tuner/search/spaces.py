"""Search spaces as YAML files (built-in ones in `tuner/search/space_files/`), checked before any trial starts.

A file has `params` (what Optuna searches) and optional `fixed` (settings
every trial shares):

    params:
      lr:             {type: loguniform, low: 3.0e-4, high: 3.0e-3}
      negative_slope: {type: uniform,    low: 0.01,   high: 0.9}
    fixed:
      batch_size: 32

Types: uniform, loguniform (low > 0), int, choice (with `values`). Keys must be
fields of ModelConfig or TrainConfig; epochs and seed come from the command line.
An optional `start:` lists points Optuna evaluates first (a known-good setting);
optional `searcher:` and `scheduler:` pick them by name (tuner.search.searchers and tuner.search.schedulers), and
a command-line flag overrides either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tuner.core.configs import TUNABLE, split_config
from tuner.core.errors import SearchSpaceError
from tuner.search.schedulers import SCHEDULERS
from tuner.search.searchers import SEARCHERS

# Shipped inside the package (pyproject.toml package-data), so an installed tuner finds them from any directory.
SPACES_DIR = Path(str(resources.files("tuner.search") / "space_files"))
TYPES = {"uniform": ("low", "high"), "loguniform": ("low", "high"), "int": ("low", "high"), "choice": ("values",)}
SWEEP_OWNED = {"max_epochs": "--max-epochs", "seed": "--seed"}
# A space file is a few lines; anything larger is a wrong path (an image, a data file), not worth reading.
MAX_FILE_BYTES = 1024**2


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    low: float | None = None
    high: float | None = None
    values: tuple[Any, ...] = ()

    def contains(self, value: Any) -> bool:
        """Whether `value` lies in this domain (a value of another type never does)."""
        if self.type == "choice":
            return value in self.values
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return self.low <= value <= self.high and (self.type != "int" or float(value).is_integer())

    def describe(self) -> str:
        return f"one of {list(self.values)}" if self.type == "choice" else f"{self.low:g} to {self.high:g}"

    def to_optuna(self) -> Any:
        """The same domain as an Optuna distribution (the report weighs parameters with it)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.type in ("uniform", "loguniform"):
            return FloatDistribution(self.low, self.high, log=self.type == "loguniform")
        if self.type == "int":
            return IntDistribution(int(self.low), int(self.high))
        return CategoricalDistribution(list(self.values))


@dataclass(frozen=True)
class SearchSpace:
    name: str
    path: Path
    params: tuple[Param, ...]
    fixed: dict[str, Any] = field(default_factory=dict)
    start: tuple[dict[str, Any], ...] = ()
    searcher: str | None = None  # the file's choice; a command-line flag overrides it
    scheduler: str | None = None


def available_spaces() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def resolve_path(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "is not a regular file" if path.exists() else "does not exist"
            raise SearchSpaceError(
                f"search space file {path} {what}; pass a YAML file or one of: {', '.join(available_spaces())}"
            )
        return path
    named = SPACES_DIR / f"{name_or_path}.yaml"
    if not named.is_file():
        raise SearchSpaceError(
            f"unknown search space {name_or_path!r}; "
            f"use one of: {', '.join(available_spaces())}, or a path to a YAML file"
        )
    return named


def load_space(name_or_path: str) -> SearchSpace:
    path = resolve_path(name_or_path)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise SearchSpaceError(
            f"{path}: {path.stat().st_size:,} bytes, too large for a search space; pass a YAML search space file"
        )
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SearchSpaceError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the syntax") from None
    except UnicodeDecodeError:
        raise SearchSpaceError(f"{path}: not a text file (not UTF-8); pass a YAML search space file") from None
    except OSError as exc:
        raise SearchSpaceError(f"{path}: cannot be read ({exc.strerror}); pass a readable YAML file") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("params"), dict) or not doc["params"]:
        raise SearchSpaceError(f"{path}: no 'params:' mapping; add one: parameter name -> {{type, low, high}}")
    allowed = ("params", "fixed", "start", "searcher", "scheduler", "description")
    extra = set(doc) - set(allowed)
    if extra:
        raise SearchSpaceError(f"{path}: unknown top-level keys {sorted(extra)}; allowed: {', '.join(allowed)}")
    for key, names in (("searcher", SEARCHERS), ("scheduler", SCHEDULERS)):
        if key in doc and doc[key] not in names:
            raise SearchSpaceError(f"{path}: unknown {key} {doc[key]!r}; use one of: {', '.join(names)}")
    fixed = doc.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise SearchSpaceError(f"{path}: 'fixed:' is not a mapping; write one 'setting: value' per line")
    params = tuple(_parse_param(path, name, spec) for name, spec in doc["params"].items())
    for name in fixed:
        _check_name(path, name)
    both = set(fixed) & {p.name for p in params}
    if both:
        raise SearchSpaceError(f"{path}: {sorted(both)} both searched and fixed; keep each in one place")
    _check_values(path, fixed, params)
    start = _parse_start(path, doc.get("start") or [], params)
    for point in start:
        _check_config(path, {**fixed, **point}, f"start point {point}")
    return SearchSpace(path.stem, path, params, dict(fixed), start, doc.get("searcher"), doc.get("scheduler"))


def _parse_start(path: Path, start: Any, params: tuple[Param, ...]) -> tuple[dict[str, Any], ...]:
    """Optional first points for Optuna to try (known-good settings), each giving every searched parameter."""
    names = {p.name for p in params}
    if not isinstance(start, list) or not all(isinstance(s, dict) for s in start):
        raise SearchSpaceError(
            f"{path}: 'start:' is not a list of mappings; write one '- {{param: value, ...}}' per point"
        )
    for point in start:
        if set(point) != names:
            raise SearchSpaceError(
                f"{path}: start point {point} does not set exactly the searched parameters; "
                f"give each of {sorted(names)}"
            )
        for param in params:  # Optuna would warn, then train the point anyway: outside the space searched
            value = point[param.name]
            if param.type != "choice" and isinstance(value, float) and not math.isfinite(value):
                raise SearchSpaceError(
                    f"{path}: start point {param.name}: {value!r} is not a finite number; give a number from "
                    f"{param.describe()}"
                )
            if not param.contains(value):
                raise SearchSpaceError(
                    f"{path}: start point {param.name}: {point[param.name]!r} is outside its range "
                    f"({param.describe()}); move the point inside, or widen the range"
                )
    return tuple(start)


def _check_name(path: Path, name: str) -> None:
    if name in SWEEP_OWNED:
        raise SearchSpaceError(f"{path}: parameter {name!r} is set by the sweep; remove it and use {SWEEP_OWNED[name]}")
    if name not in TUNABLE:
        raise SearchSpaceError(f"{path}: unknown parameter {name!r}; tunable are: {', '.join(sorted(TUNABLE))}")


def _number(path: Path, name: str, key: str, value: Any) -> float:
    # PyYAML reads 3e-4 (no dot) as a string, so numbers are coerced here; .nan and .inf bound nothing.
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise SearchSpaceError(
            f"{path}: parameter {name!r}: {key} is {value!r}, not a finite number; write a number such as 1.0e-3"
        )
    return number


def _parse_param(path: Path, name: str, spec: Any) -> Param:
    _check_name(path, name)
    if not isinstance(spec, dict) or "type" not in spec:
        raise SearchSpaceError(
            f"{path}: parameter {name!r} has no 'type'; give a mapping with type: one of {', '.join(TYPES)}"
        )
    kind = spec["type"]
    if kind not in TYPES:
        raise SearchSpaceError(f"{path}: parameter {name!r}: unknown type {kind!r}; use one of {', '.join(TYPES)}")
    needed = TYPES[kind]
    missing = [k for k in needed if k not in spec]
    if missing:
        raise SearchSpaceError(f"{path}: parameter {name!r} ({kind}) is missing {', '.join(missing)}; add it")
    extra = set(spec) - set(needed) - {"type"}
    if extra:
        raise SearchSpaceError(
            f"{path}: parameter {name!r} ({kind}) has unknown keys {sorted(extra)}; it takes {', '.join(needed)}"
        )
    if kind == "choice":
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise SearchSpaceError(
                f"{path}: parameter {name!r}: values is empty or not a list; list at least one value"
            )
        return Param(name, kind, values=tuple(values))
    low, high = (_number(path, name, k, spec[k]) for k in ("low", "high"))
    if not low < high:
        raise SearchSpaceError(
            f"{path}: parameter {name!r}: low ({low:g}) is not below high ({high:g}); swap or widen them"
        )
    if kind == "loguniform" and low <= 0:
        raise SearchSpaceError(
            f"{path}: parameter {name!r}: loguniform needs low > 0 (got {low:g}); use uniform or a positive low"
        )
    if kind == "int" and (low != int(low) or high != int(high)):
        raise SearchSpaceError(f"{path}: parameter {name!r}: int bounds are not whole numbers; use integers")
    return Param(name, kind, low, high)


def _check_config(path: Path, config: dict[str, Any], what: str) -> None:
    """Build the configs once, so a value out of range fails here, in one line, and not in every trial."""
    try:
        split_config(config)
    except (TypeError, ValueError) as exc:
        raise SearchSpaceError(f"{path}: {what}: {exc}") from None


def _check_values(path: Path, fixed: dict[str, Any], params: tuple[Param, ...]) -> None:
    """The fixed settings, then each parameter's bounds (or each choice) beside them, through the dataclasses'
    own checks: what ModelConfig and TrainConfig refuse, a trial would crash on."""
    _check_config(path, dict(fixed), "fixed settings")
    for param in params:
        for value in param.values if param.type == "choice" else (param.low, param.high):
            if param.type == "int":
                value = int(value)
            _check_config(path, {**fixed, param.name: value}, f"parameter {param.name!r} ({param.type})")
