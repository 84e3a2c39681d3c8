"""Files written whole or not at all.

    with replaced(exp_dir / "trials.csv") as temp:
        table.to_csv(temp, index=False)

The tables, best.json, best_model.pt and state.json are rewritten at the end of every sweep and resume,
which is when a user presses Ctrl-C a second time or a scheduler sends its SIGKILL. Written in place, an
interrupted write would leave half a table that the reading commands then trust.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` to write to. It becomes `path` in one step (a rename on the same file
    system) when the block ends without an error; otherwise `path` keeps what it held before."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Path.write_text, whole or not at all."""
    with replaced(path) as temp:
        temp.write_text(text)


@contextmanager
def made_for(directory: Path) -> Iterator[Path]:
    """`directory`, created with any missing parents; when the block fails, the directories it created go
    again, with what was written into them, deepest first. Nothing that was there before is touched: a
    failed download or export leaves the disk as it found it."""
    directory = Path(directory)
    created = [d for d in (directory, *directory.parents) if not os.path.lexists(d)]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        yield directory
    except BaseException:
        if created:
            shutil.rmtree(created[0], ignore_errors=True)
        for parent in created[1:]:
            with contextlib.suppress(OSError):
                parent.rmdir()
        raise
