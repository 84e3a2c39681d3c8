"""`tuner dashboard NAME`: the sweep's Optuna study in optuna-dashboard, live while it runs and afterwards.

    tuner dashboard demo                    # http://127.0.0.1:8080
    optuna-dashboard sqlite:///results/demo/optuna.db    # the same, by hand

Every sweep keeps its Optuna study in `optuna.db` beside its results (OptunaSearch's
storage); a resumed sweep goes on writing to it. optuna-dashboard is an optional
extra: `pip install 'tuner[dashboard]'`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuner.core.constants import OPTUNA_DB, RESULTS_DIR
from tuner.core.errors import ExperimentError, TunerError


def study_url(exp_dir: Path) -> str:
    """Where an experiment's Optuna study lives."""
    return f"sqlite:///{Path(exp_dir).resolve() / OPTUNA_DB}"


def load_study(exp_dir: Path) -> Any | None:
    """The experiment's Optuna study, or None when it has none (made by PBT, or by an older tuner)."""
    if not (Path(exp_dir) / OPTUNA_DB).is_file():
        return None
    import optuna

    summaries = optuna.get_all_study_summaries(storage=study_url(exp_dir))
    return optuna.load_study(study_name=summaries[0].study_name, storage=study_url(exp_dir)) if summaries else None


def serve(
    experiment: str,
    storage: str = RESULTS_DIR,
    host: str = "127.0.0.1",
    port: int = 8080,
    echo: Callable[[str], None] = print,
) -> None:
    """Run optuna-dashboard on the experiment's study until Ctrl-C."""
    from tuner.results.experiments import find_experiment

    exp_dir = find_experiment(experiment, storage)
    if not (exp_dir / OPTUNA_DB).is_file():
        raise ExperimentError(
            f"experiment {exp_dir.name!r} has no Optuna study ({OPTUNA_DB}); sweeps with "
            "--scheduler pbt, and sweeps by tuner before 0.2, do not keep one"
        )
    if importlib.util.find_spec("optuna_dashboard") is None:
        raise TunerError("optuna-dashboard is not installed; pip install 'tuner[dashboard]' (or optuna-dashboard)")
    from optuna_dashboard import run_server

    echo(f"dashboard of {exp_dir.name!r} at http://{host}:{port}/ (Ctrl-C to stop)")
    run_server(study_url(exp_dir), host=host, port=port)
