"""Remote storage (`--storage s3://...`, `gs://`, `file://`): checked before anything is made, copied back after.

    check_storage(settings, new=True)        # before Ray starts and before results/NAME is created
    log.info(where(settings, exp_dir))       # "results: s3://bucket/runs/NAME, copied to results/NAME ..."
    log.info(copy_back(settings, exp_dir))   # after the sweep, interrupted or not; never raises
    pull_ray_state(exp_dir)                  # before a resume: what a killed sweep never copied back

With a URI, Ray writes the experiment there and tuner keeps its own files (sweep.json, state.json, the
record, the Optuna study) and a copy of Ray's under results/NAME, where every other command reads. pyarrow
resolves the URI, as Ray does: S3 options may ride in its query (`s3://bucket/runs?endpoint_override=
127.0.0.1:9000&scheme=http`) or in the environment (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, ...).

Ray does not look at the storage before it starts, and pyarrow's default S3 client retries an endpoint
that does not answer for a long while; a wrong endpoint or bucket then surfaces as a traceback from deep
inside a running Ray. So the probe here uses its own client with a short connect timeout and one retry,
and turns every failure into one line. S3 and GCS get bounded clients; other filesystems are probed with
pyarrow's defaults, and every probe as a whole within PROBE_TIMEOUT_S (TUNER_STORAGE_TIMEOUT_S).
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any

from tuner.core.errors import ExperimentExistsError, SettingsError, first_line, redact, shorten
from tuner.search.settings import SweepSettings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0
REQUEST_TIMEOUT_S = 5.0  # a HEAD request; an endpoint that accepts and never answers costs ATTEMPTS times this
ATTEMPTS = 2  # the first try and one retry: a refused port or a missing bucket does not get better
# The whole probe, for any filesystem: the S3 and GCS clients' own bounds come first (check_storage).
PROBE_TIMEOUT_S = float(os.environ.get("TUNER_STORAGE_TIMEOUT_S", "60"))


def where(settings: SweepSettings, exp_dir: Path) -> str:
    """One progress line saying where the sweep's results go."""
    if not settings.remote_storage:
        return f"results: {exp_dir}"
    return f"results: {redact(settings.ray_experiment_path)}, copied to {exp_dir} when the sweep ends or is interrupted"


def _filesystem(uri: str) -> tuple[Any, str]:
    """pyarrow's filesystem and path for the URI; an S3 one rebuilt with the probe's bounds."""
    import pyarrow.fs

    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    except Exception as exc:  # pyarrow.ArrowInvalid for an unknown scheme or a malformed query
        raise SettingsError(
            f"--storage {redact(uri)} is not a storage pyarrow can open ({first_line(exc, 100)}); "
            "pass a directory, or a URI such as s3://bucket/path"
        ) from None
    if isinstance(fs, pyarrow.fs.S3FileSystem):
        options = fs.__reduce__()[1][0]  # every option the URI and the environment gave, as keyword arguments
        options.update(
            connect_timeout=CONNECT_TIMEOUT_S,
            request_timeout=REQUEST_TIMEOUT_S,
            retry_strategy=pyarrow.fs.AwsStandardS3RetryStrategy(max_attempts=ATTEMPTS),
        )
        fs = pyarrow.fs.S3FileSystem(**options)
    elif isinstance(fs, pyarrow.fs.GcsFileSystem):
        # Without a limit, pyarrow's GCS client retries a missing credential or a silent endpoint for minutes.
        options = fs.__reduce__()[1][0]
        options.update(retry_time_limit=datetime.timedelta(seconds=REQUEST_TIMEOUT_S))
        fs = pyarrow.fs.GcsFileSystem(**options)
    return fs, path.rstrip("/")


def _cause(exc: BaseException) -> str:
    """pyarrow's S3 error cut to what went wrong: "AWS Error NETWORK_CONNECTION during HeadBucket ...; Details: ..."."""
    text = first_line(exc, 1000)
    text = text.split("AWS Error ", 1)[-1].split("; Details", 1)[0]
    return shorten(text.replace(";", ","), 140)  # the one-line error keeps its single "what; fix" semicolon


def _unusable(uri: str, what: str, exc: BaseException | None, fix: str) -> SettingsError:
    cause = f" ({_cause(exc)})" if exc is not None else ""
    return SettingsError(f"--storage {redact(uri)}: {what}{cause}; {fix}")


def check_storage(settings: SweepSettings, new: bool) -> None:
    """For a URI storage: the endpoint answers, the bucket exists, tuner may write there, and (for a new
    sweep) no experiment of that name is there yet. Nothing is left behind. A directory storage passes.

    Within PROBE_TIMEOUT_S: S3 gets a client with short timeouts and GCS one with a retry time limit, but a
    filesystem may still wait inside C++, where neither Ctrl-C nor SIGTERM reaches it. The probe runs in a
    thread of its own that is left behind if it does not return in time."""
    if not settings.remote_storage:
        return
    done: dict[str, BaseException | None] = {}

    def probe() -> None:
        try:
            _check_storage(settings, new)
            done["error"] = None
        except BaseException as exc:  # handed to the caller's thread
            done["error"] = exc

    thread = threading.Thread(target=probe, name="tuner-storage-probe", daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S)
    if "error" not in done:
        raise _unusable(
            settings.storage,
            f"did not answer within {PROBE_TIMEOUT_S:.0f} s",
            None,
            "check the URI, the network and your credentials (TUNER_STORAGE_TIMEOUT_S sets the bound)",
        )
    if done["error"] is not None:
        raise done["error"]


def _check_storage(settings: SweepSettings, new: bool) -> None:
    import pyarrow.fs
    import pyarrow.lib

    uri = settings.storage
    fs, root = _filesystem(uri)
    bucket = root.split("/", 1)[0]
    s3 = isinstance(fs, pyarrow.fs.S3FileSystem)
    fix = (
        "check the endpoint (endpoint_override= in the URI, or AWS_ENDPOINT_URL_S3) and your credentials"
        if s3
        else "check the URI, the network and your credentials (for gs://, GOOGLE_APPLICATION_CREDENTIALS)"
    )
    try:
        if s3 and fs.get_file_info(bucket).type == pyarrow.fs.FileType.NotFound:
            raise _unusable(uri, f"bucket {bucket!r} does not exist", None, "create it, or pass another --storage")
        found = fs.get_file_info(root).type
        if found == pyarrow.fs.FileType.File:
            raise _unusable(uri, f"{root} is a file", None, "pass a directory or a prefix")
        taken = fs.get_file_info(f"{root}/{settings.name}").type != pyarrow.fs.FileType.NotFound
    except (OSError, pyarrow.lib.ArrowException) as exc:  # network, permission, protocol and credential errors
        raise _unusable(uri, "cannot be reached", exc, fix) from None
    if new and taken:
        raise ExperimentExistsError(
            f"experiment {settings.name!r} already exists in {redact(uri)}; choose another --name, or copy it "
            f"to {settings.experiment_dir} and continue it with `tuner sweep --resume {settings.name}`"
        )
    if s3 or found != pyarrow.fs.FileType.NotFound:  # a directory Ray will make is not probed by making it
        _check_writable(fs, root, uri)


def _check_writable(fs: Any, root: str, uri: str) -> None:
    # Read-only credentials pass every read above; Ray would fail on its first write, deep in a trial.
    # pyarrow keeps an empty marker for the prefix after the delete (S3 has no directories); Ray makes it anyway.
    probe = f"{root}/.tuner-write-check-{uuid.uuid4().hex[:12]}"
    try:
        with fs.open_output_stream(probe) as out:
            out.write(b"tuner")
        fs.delete_file(probe)
    except OSError as exc:
        raise _unusable(
            uri, "tuner may not write there", exc, "use credentials that may write, or another --storage"
        ) from None


def copy_back(settings: SweepSettings, exp_dir: Path) -> str:
    """Copy Ray's files of the experiment from the URI into the local experiment directory; the line to show.
    Never raises: the sweep's own files are local and its tables must still be written."""
    import pyarrow.fs

    source = settings.ray_experiment_path
    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(source)
        if fs.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
            return f"nothing to copy from {redact(source)}: Ray had not written there yet"
        pyarrow.fs.copy_files(
            path, str(exp_dir), source_filesystem=fs, destination_filesystem=pyarrow.fs.LocalFileSystem()
        )
    except Exception as exc:  # the storage went away during the sweep: say so, keep what is local
        return (
            f"could not copy {redact(source)} to {exp_dir} ({first_line(exc, 120)}); the experiment is intact "
            "there, its checkpoints are not here yet: copy them when the storage answers, or --resume"
        )
    return f"copied {redact(source)} to {exp_dir}"


def pull_ray_state(exp_dir: Path) -> None:
    """Before a resume of a URI experiment: Ray's files from the URI into the local copy. A sweep that was
    killed (SIGKILL, a lost machine) never copied them back, and the resume's checks read the local copy.
    A folder whose settings cannot be read is left to those checks, which say so in one line."""
    from tuner.core.errors import TunerError
    from tuner.search.settings import load_settings

    try:
        settings, _ = load_settings(exp_dir)
    except (OSError, ValueError, TypeError, TunerError):
        return
    if settings.remote_storage:
        check_storage(settings, new=False)
        log.info(copy_back(settings, exp_dir))
