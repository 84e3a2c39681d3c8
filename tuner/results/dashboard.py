"""`tuner dashboard NAME`: the sweep's Optuna study in optuna-dashboard, live while it runs and afterwards.

    tuner dashboard demo                    # http://127.0.0.1:8080
    optuna-dashboard sqlite:///results/demo/optuna.db    # the same, by hand

Every sweep keeps its Optuna study in `optuna.db` beside its results (OptunaSearch's
storage); a resumed sweep goes on writing to it. optuna-dashboard is an optional
extra: `pip install 'tuner[dashboard]'`.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
from pathlib import Path
from typing import Any

from tuner.core.constants import OPTUNA_DB, RESULTS_DIR
from tuner.core.errors import ExperimentError, TunerError, first_line

log = logging.getLogger(__name__)


def study_url(exp_dir: Path) -> str:
    """Where an experiment's Optuna study lives."""
    return f"sqlite:///{Path(exp_dir).resolve() / OPTUNA_DB}"


def load_study(exp_dir: Path) -> Any | None:
    """The experiment's Optuna study, or None when it has none (made by PBT, or by an older tuner).
    A damaged optuna.db (cut short, overwritten) is an ExperimentError of one line."""
    db = Path(exp_dir) / OPTUNA_DB
    if not db.is_file():
        return None
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    try:
        summaries = optuna.get_all_study_summaries(storage=study_url(exp_dir))
        return optuna.load_study(study_name=summaries[0].study_name, storage=study_url(exp_dir)) if summaries else None
    except (SQLAlchemyError, optuna.exceptions.OptunaError, KeyError, ValueError) as exc:
        # sqlite's own words ("file is not a database") are in the DBAPI error's `orig`.
        what = first_line(getattr(exc, "orig", None) or exc)
        raise ExperimentError(
            f"{db} is damaged ({what}); restore it from a backup, or move it aside to go on without the study"
        ) from None


def serve(
    experiment: str,
    storage: str = RESULTS_DIR,
    host: str = "127.0.0.1",
    port: int = 8080,
) -> None:
    """Run optuna-dashboard on the experiment's study until Ctrl-C."""
    from tuner.results.experiments import find_experiment

    exp_dir = find_experiment(experiment, storage)
    if not (exp_dir / OPTUNA_DB).is_file():
        raise ExperimentError(
            f"experiment {exp_dir.name!r} has no Optuna study ({OPTUNA_DB}); sweeps with "
            "--scheduler pbt, and sweeps by tuner before 0.2, do not keep one"
        )
    load_study(exp_dir)  # a damaged optuna.db is refused here, in one line, not by the server at the first page
    if importlib.util.find_spec("optuna_dashboard") is None:
        raise TunerError("optuna-dashboard is not installed; pip install 'tuner[dashboard]' (or optuna-dashboard)")
    from optuna_dashboard import run_server

    try:
        _check_address(host, port)  # before the server prints its banner, so a refusal is the only line
        log.info(f"dashboard of {exp_dir.name!r} at http://{host}:{port}/ (Ctrl-C to stop)")
        run_server(study_url(exp_dir), host=host, port=port)
    except OSError as exc:  # the port taken, or a host name that does not resolve
        raise TunerError(
            f"cannot serve on {host}:{port} ({exc.strerror or first_line(exc)}); pass another --port or --host"
        ) from None


def _check_address(host: str, port: int) -> None:
    """Bind where the server will, as it will (SO_REUSEADDR, as wsgiref's server sets), and let go: OSError if not."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
