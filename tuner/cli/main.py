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
import errno
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from tuner.cli.parser import build_parser
from tuner.core.errors import TunerError


class _Console(logging.StreamHandler):
    """Writes to sys.stdout or sys.stderr as they are when a line is written, not when tuner started (a
    caller, or a test, may have replaced them since)."""

    def __init__(self, name: str) -> None:
        self._which = name  # not _name: logging.Handler keeps its own name there
        super().__init__()

    @property
    def stream(self) -> Any:
        return getattr(sys, self._which)

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # StreamHandler sets its stream; ours is looked up each time


def console() -> None:
    """tuner's progress (logging at INFO under the `tuner` logger) as plain lines on stdout, its warnings on
    stderr; other libraries' warnings keep their names. A Python caller configures logging as it likes."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ours = logging.getLogger("tuner")
    if ours.handlers:  # main() called again in one process (tests)
        return
    progress = _Console("stdout")
    progress.addFilter(lambda record: record.levelno < logging.WARNING)
    progress.setFormatter(logging.Formatter("%(message)s"))
    warnings = _Console("stderr")
    warnings.setLevel(logging.WARNING)
    warnings.setFormatter(logging.Formatter("tuner: warning: %(message)s"))
    ours.addHandler(progress)
    ours.addHandler(warnings)
    ours.setLevel(logging.INFO)
    ours.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    console()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a bad flag already reported in one line
        return int(exc.code or 0)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        if getattr(args, "sigterm_ends_it", False):
            return func(args)
        with _sigterm_as_ctrl_c():
            return func(args)
    except TunerError as exc:
        print(f"tuner: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tuner: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tuner list | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except OSError as exc:  # (after BrokenPipeError, an OSError too) a path no system allows, wherever touched
        if exc.errno != errno.ENAMETOOLONG:
            raise
        print(f"tuner: error: a path is too long for this system ({exc.strerror}); shorten it", file=sys.stderr)
        return 2


def run() -> NoReturn:
    """The `tuner` program: main(), then exit. A Ctrl-C or SIGTERM that comes while Python shuts down (torch's and
    Ray's exit hooks, after every file was written and every line printed) ends it at once with 130: not a
    KeyboardInterrupt traceback from inside an exit hook, nor a silent death by signal."""
    code = main()

    def leave(signum: int, frame: Any) -> None:
        os.write(2, b"tuner: interrupted\n")
        os._exit(130)

    for which in (signal.SIGINT, signal.SIGTERM):
        signal.signal(which, leave)
    for stream in (sys.stdout, sys.stderr):  # os._exit writes out no buffer: a pipe's lines go now
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`) or stream: nothing to keep
            pass
    sys.exit(code)


@contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (`kill`, `timeout`) is Ctrl-C for the whole command, also where no sweep or benchmark runs (the
    tables printed after one): "tuner: interrupted", 130, instead of a death by signal."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is interrupt:
            signal.signal(signal.SIGTERM, previous)
