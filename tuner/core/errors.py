"""The one family of errors a user can fix.

Every error here is caused by input (a flag, a file, a cluster) rather than by
a bug in tuner. The CLI prints exactly these as one line,
`tuner: error: <what is wrong>; <what to do>`, with exit status 2; anything else
is a bug and keeps its traceback. Messages follow that shape: the problem first,
then the fix, after a semicolon.
"""

from __future__ import annotations

import urllib.parse


class TunerError(Exception):
    """Base of every error a user can fix; its message says what is wrong and what to do."""


class SettingsError(TunerError):
    """A flag or setting out of range, found before anything is created."""


class SearchSpaceError(TunerError):
    """A search space file that cannot be used; the message names file, parameter and fix."""


class DatasetError(TunerError):
    """A dataset spec that cannot be served."""


class ExperimentError(TunerError):
    """An experiment, trial or checkpoint that is not there, or cannot be continued."""


class ExperimentExistsError(ExperimentError):
    """A new sweep under a name that is already taken."""


class RecordError(ExperimentError):
    """An experiment's record.jsonl that is missing or damaged; the message names the line."""


class CheckpointError(TunerError):
    """A checkpoint or exported model that is missing, corrupt, or not a tuner model."""


class ExportError(TunerError):
    """An export that could not be written or did not verify."""


class ClusterError(TunerError):
    """A Ray cluster that cannot be reached, wants a token, or lacks the resources asked for."""


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message for a one-line error; its type when the message is empty.
    A longer line is cut at a word and ends in "...", so no word is left half-written."""
    lines = str(exc).strip().splitlines()
    return shorten(lines[0] if lines else type(exc).__name__, limit)


def shorten(line: str, limit: int) -> str:
    """`line` in at most `limit` characters: cut at a word, ending in "...", so no word is left half-written."""
    if len(line) <= limit:
        return line
    cut = line[: limit - 3]
    head = cut.rsplit(" ", 1)[0] if " " in cut[limit // 2 :] else cut
    return head.rstrip(" ,:;(") + "..."


def redact(uri: str) -> str:
    """The URI without a user or secret key in it (`s3://KEY:SECRET@bucket` is valid for pyarrow), for messages."""
    parts = urllib.parse.urlsplit(str(uri))
    if "@" not in parts.netloc:
        return str(uri)
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
