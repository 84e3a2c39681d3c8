"""Argument types and shared flags of the `tuner` command line: a bad value gets tuner's one line."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn

from tuner.core.constants import RESULTS_DIR


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag gets tuner's one line instead of a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"tuner: error: {message}; see `{self.prog} --help`\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1; pass 1 or more")
    return value


def port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is above 65535, the highest port; pass 1 to 65535")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{value:g} is not a finite number above 0; pass a positive number of seconds")
    return value


def finite_float(text: str) -> float:
    """A number that is not nan or inf: a comparison with nan is never true, so it would pick nothing."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number; pass a number such as 30")
    return value


def text(what: str) -> Callable[[str], str]:
    """A flag's value that may not be empty: `--storage ""` would mean the working directory, by accident."""

    def check(value: str) -> str:
        if not value.strip():
            raise argparse.ArgumentTypeError(f"is empty; pass {what}")
        return value

    return check


def names(what: str) -> Callable[[str], list[str]]:
    """A comma-separated list of names, none empty: `--columns ''` or `--status a,,b` is a slip, not "all"."""

    def split(value: str) -> list[str]:
        items = [item.strip() for item in value.split(",")]
        if not all(items):
            raise argparse.ArgumentTypeError(f"{value!r} has an empty name; pass comma-separated {what}")
        return items

    return split


def batch_sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(positive_int(b) for b in text.split(","))
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (give comma-separated whole numbers, e.g. 1,32,512)") from None


def storage_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage",
        default=RESULTS_DIR,
        type=text("a directory"),
        help=f"directory that holds experiments [{RESULTS_DIR}]",
    )


def experiment_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment name under --storage, or its path")
    storage_flag(p)
