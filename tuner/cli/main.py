"""The `tuner` command line: it parses and prints; the package does the work.

    tuner sweep --preset quick --name demo     # run a sweep, write results/demo/
    tuner list                                 # experiments under results/
    tuner results demo --top 5 --format markdown
    tuner report demo                          # results/demo/report.md with figures
    tuner export demo --format onnx --out exported/
    tuner evaluate demo --dataset folder:~/photos
    tuner COMMAND --help                       # every option, with its default

Errors a user can fix (tuner.errors.TunerError, and bad flags) print one line,
`tuner: error: ...`, with exit status 2; anything else is a bug and keeps its
traceback. Only the commands that need torch or Ray import them, so --help,
`tuner list` and `tuner results` answer at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from tuner.cli.parser import build_parser
from tuner.core.errors import TunerError


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a bad flag already reported in one line
        return int(exc.code or 0)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except TunerError as exc:
        print(f"tuner: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tuner: interrupted", file=sys.stderr)
        return 130
