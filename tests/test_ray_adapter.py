"""Every Ray private tuner reads, checked against the installed Ray, and the run layer's small pieces that use
them (fast: Ray objects are constructed for real, no Ray cluster is started)."""

from __future__ import annotations

import fnmatch
import importlib.util
import logging
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
import ray
from ray import tune
from ray.train._internal.storage import StorageContext
from ray.tune.execution.tune_controller import TuneController
from ray.tune.experiment import Trial
from ray.tune.impl import tuner_internal
from ray.tune.schedulers import HyperBandScheduler, TrialScheduler
from ray.tune.search import Searcher, SearchGenerator

from tuner.run import fit, ray_adapter, ray_processes
from tuner.run.schedulers.asha import PromotingASHA, RunningLimit
from tuner.run.schedulers.hyperband import FinishingHyperBand

RAY = Path(ray.__file__).parent
PACKAGE = Path(__file__).resolve().parent.parent / "tuner"


def _noop(config):
    pass


def test_rays_file_layout_is_what_the_adapter_names():
    assert tuner_internal._TUNER_PKL == ray_adapter.TUNER_STATE
    assert TuneController.CKPT_FILE_TMPL.format("*") == ray_adapter.EXPERIMENT_STATES
    assert Searcher.CKPT_FILE_TMPL.format("*") == ray_adapter.SEARCHER_STATES
    assert SearchGenerator.CKPT_FILE_TMPL.format("*") == ray_adapter.SEARCH_GENERATOR_STATES
    name = StorageContext._make_checkpoint_dir_name(12)
    assert name == ray_adapter.checkpoint_dir_name(12) and fnmatch.fnmatch(name, ray_adapter.CHECKPOINT_DIRS)
    assert ray_adapter.checkpoint_index(Path("x") / name) == 12 and ray_adapter.checkpoint_index(Path("x")) is None


@pytest.mark.parametrize(
    "switch, module",
    [
        (ray_adapter.NEW_OUTPUT, "tune/experimental/output.py"),
        (ray_adapter.MAX_PENDING_TRIALS, "tune/execution/tune_controller.py"),
        (ray_adapter.SYNC_WARNING_THRESHOLD, "tune/execution/experiment_state.py"),
    ],
)
def test_the_environment_switches_are_read_by_ray(switch, module):
    assert re.search(rf"""["']{switch}["']""", (RAY / module).read_text()), f"{switch} no longer read by {module}"


def test_the_loggers_are_rays_modules():
    for name in (*ray_adapter.TUNE_LOGGERS, ray_adapter.AUTH_LOGGER, ray_adapter.RUN_LOGGER):
        assert importlib.util.find_spec(name) is not None, name
    run_module = (RAY / "tune" / "tune.py").read_text()
    assert f'logger.error("{ray_adapter.INCOMPLETE_MESSAGE}: %s"' in run_module  # what quiet_ray() leaves out
    assert f'"{ray_adapter.PBT_REUSE_WARNING} by enabling' in run_module  # and this warning


def test_a_restored_tuner_gives_back_its_run_config_and_scheduler(tmp_path):
    scheduler = PromotingASHA(max_t=3, grace_period=1, reduction_factor=2)
    tune.Tuner(
        _noop,
        tune_config=tune.TuneConfig(metric="val_loss", mode="min", scheduler=scheduler),
        run_config=tune.RunConfig(name="exp", storage_path=str(tmp_path), stop={"epoch": 1}, callbacks=[]),
    )
    restored = tune.Tuner.restore(str(tmp_path / "exp"), trainable=_noop)
    assert isinstance(ray_adapter.restored_scheduler(restored), PromotingASHA)
    assert ray_adapter.restored_run_config(restored).name == "exp"


def test_scheduler_and_trial_privates():
    hyperband = FinishingHyperBand(time_attr="epoch", metric="val_loss", mode="min", max_t=5)
    assert ray_adapter.hyperband_limits(hyperband) == ("epoch", 5)
    asha = PromotingASHA(max_t=3, grace_period=1, reduction_factor=2)
    asha.set_search_properties("val_loss", "max")
    assert asha.metric == "val_loss" and asha.sign == -1.0
    assert ray_adapter.is_saving(Trial("__fake", stub=True)) is False


def test_the_mlflow_callbacks_privates(tmp_path):
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    callback = MLflowLoggerCallback(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", experiment_name="adapter")
    callback.setup()
    assert ray_adapter.mlflow_trial_runs(callback) == {}
    assert hasattr(ray_adapter.mlflow_client(callback), "update_run")


def test_what_ray_lacks_is_one_line_naming_its_version():
    with pytest.raises(ray_adapter.RayVersionError, match=rf"^Ray {re.escape(ray.__version__)} has no .*_time_attr"):
        ray_adapter.hyperband_limits(object())
    with pytest.raises(ray_adapter.RayVersionError, match="_local_tuner"):
        ray_adapter.restored_run_config(object())


def test_an_unpickled_study_opens_the_folders_own_optuna_db(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    pickled = pickle.dumps(optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'old' / 'optuna.db'}"))
    other = pickle.dumps(optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'old' / 'other.db'}"))
    (tmp_path / "old" / "optuna.db").unlink()
    with ray_adapter.own_optuna_study(tmp_path / "new"):
        assert pickle.loads(pickled).url == f"sqlite:///{(tmp_path / 'new' / 'optuna.db').resolve()}"
        assert pickle.loads(other).url.endswith("/old/other.db")  # not a study of tuner's: left alone
    assert not (tmp_path / "old" / "optuna.db").exists()
    with pytest.raises(Exception, match="unable to open"):  # outside the block, Optuna's own behaviour
        (tmp_path / "old").rename(tmp_path / "gone")
        pickle.loads(pickled)


def test_the_restored_searchers_storage_follows_the_folder_only_inside_the_block():
    rays = TuneController.resume
    with ray_adapter.new_trials_follow_the_folder():
        assert TuneController.resume is not rays
    assert TuneController.resume is rays  # the end-to-end case is tests/test_relocation.py


def test_rays_processes_start_in_a_session_of_their_own_only_inside_the_block():
    from ray._private import services

    with ray_processes.ray_processes_in_their_own_session():
        child = services.ConsolePopen([sys.executable, "-c", "import os; print(os.getsid(0))"], stdout=subprocess.PIPE)
        assert int(child.communicate()[0]) == child.pid != os.getsid(0)
    assert services.ConsolePopen.__name__ == "ConsolePopen"


def test_ray_init_leaves_the_callers_sigterm_handler_only_inside_the_block():
    from ray._private import utils

    before = signal.getsignal(signal.SIGTERM)
    with ray_processes.sigterm_left_to_the_caller():
        utils.set_sigterm_handler(lambda signum, frame: None)  # what ray.init and its node call
        assert signal.getsignal(signal.SIGTERM) is before
    assert utils.set_sigterm_handler.__name__ == "set_sigterm_handler"


CONNECT_UNDER_TERM = """
import os, signal, time
from tuner.run.cluster import connect, disconnect
from tuner.run.fit import term_as_interrupt
with term_as_interrupt():
    connect()
    print(signal.getsignal(signal.SIGTERM).__qualname__)
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # as while a sweep's images are made, after Ray started
        time.sleep(10)
        print("not interrupted")
    except KeyboardInterrupt:
        print("interrupted")
    disconnect()
"""


@pytest.mark.slow
def test_a_sigterm_while_ray_starts_or_images_are_made_is_a_ctrl_c():
    # ray.init installs handlers that exit(15) in silence; tuner's own must be the one SIGTERM finds after it.
    ray_tmp = tempfile.mkdtemp(prefix="rs", dir="/tmp")  # short: Ray puts sockets there
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_TMPDIR": ray_tmp}
    try:
        done = subprocess.run(
            [sys.executable, "-c", CONNECT_UNDER_TERM], env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-2:] == ["term_as_interrupt.<locals>.forward", "interrupted"], done.stdout


def test_no_other_module_names_a_ray_private():
    names = [
        "_local_tuner",
        "_tune_config",
        "get_run_config",
        "_time_attr",
        "_max_t_attr",
        "._metric",
        "trial.is_saving",
        ray_adapter.NEW_OUTPUT,
        ray_adapter.MAX_PENDING_TRIALS,
        ray_adapter.SYNC_WARNING_THRESHOLD,
        ray_adapter.AUTH_LOGGER,
        ray_adapter.RUN_LOGGER,
        ray_adapter.INCOMPLETE_MESSAGE,
        ray_adapter.PBT_REUSE_WARNING,
        '"ray.tune"',
        '"ray.train"',
        '"tuner.pkl"',
        '"experiment_state-',
        '"searcher-state-',
        '"checkpoint_',
        "_get_client",
        "._trial_runs",
        "TuneController",
        "ConsolePopen",
        "set_sigterm_handler",
        "_search_alg",
        '"_experiment"',
    ]
    found = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in PACKAGE.rglob("*.py")
        if path.name not in ("ray_adapter.py", "ray_processes.py")  # Ray's private names live only there
        for name in names
        if name in path.read_text()
    ]
    assert not found, found


def test_fit_restores_environment_logger_levels_and_signal_handlers(monkeypatch):
    monkeypatch.delenv(ray_adapter.NEW_OUTPUT, raising=False)
    monkeypatch.setenv(ray_adapter.MAX_PENDING_TRIALS, "7")  # the user's value stays
    logging.getLogger("ray.tune").setLevel(logging.DEBUG)
    before_term = signal.getsignal(signal.SIGTERM)
    # Ctrl-C's handler as in a fresh `tuner` process (an in-process Ray of an earlier test may have replaced it).
    before_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    with fit.quiet_ray(), fit.started_together(3), fit.term_as_interrupt():
        assert os.environ[ray_adapter.NEW_OUTPUT] == "0" and os.environ[ray_adapter.MAX_PENDING_TRIALS] == "7"
        assert logging.getLogger("ray.tune").level == logging.ERROR
        with pytest.raises(KeyboardInterrupt):  # SIGTERM does what Ctrl-C does
            signal.raise_signal(signal.SIGTERM)
    assert ray_adapter.NEW_OUTPUT not in os.environ and os.environ[ray_adapter.MAX_PENDING_TRIALS] == "7"
    assert logging.getLogger("ray.tune").level == logging.DEBUG
    assert signal.getsignal(signal.SIGTERM) == before_term
    signal.signal(signal.SIGINT, before_int)
    monkeypatch.delenv(ray_adapter.MAX_PENDING_TRIALS)
    with fit.started_together(3):
        assert os.environ[ray_adapter.MAX_PENDING_TRIALS] == "3"
    assert ray_adapter.MAX_PENDING_TRIALS not in os.environ
    logging.getLogger("ray.tune").setLevel(logging.NOTSET)


class _Counting(Searcher):
    """A real Ray searcher that proposes x = 0, 1, 2, ..."""

    def __init__(self) -> None:
        super().__init__(metric="val_loss", mode="min")
        self.made = 0

    def suggest(self, trial_id: str) -> dict:
        self.made += 1
        return {"x": self.made}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass


def test_running_limit_does_not_count_paused_trials():
    scheduler = PromotingASHA(max_t=3, grace_period=1, reduction_factor=2)
    limit = RunningLimit(_Counting(), max_concurrent=1, scheduler=scheduler)
    assert limit.suggest("a") == {"x": 1}
    assert limit.suggest("b") is None  # a runs
    scheduler.waiting["a"] = 1  # tuner's ASHA paused it at rung 1: it holds no resources
    assert limit.suggest("b") == {"x": 2}
    assert "scheduler" not in limit.get_state()


def test_finishing_hyperband_stops_a_trial_at_max_t_where_rays_pauses_it():
    class Controller:  # the two calls HyperBand makes on Ray's controller while a bracket fills
        def get_trials(self):
            return trials

        def pause_trial(self, trial, should_checkpoint=True):
            trial.set_status(Trial.PAUSED)

    actions = {}
    for cls in (HyperBandScheduler, FinishingHyperBand):
        scheduler = cls(time_attr="epoch", metric="val_loss", mode="min", max_t=2, reduction_factor=2)
        trials = [Trial("__fake", stub=True, trial_id=f"t{i}") for i in range(2)]
        for trial in trials:
            scheduler.on_trial_add(Controller(), trial)
            trial.set_status(Trial.RUNNING)
        actions[cls] = [
            scheduler.on_trial_result(Controller(), trials[0], {"epoch": e, "val_loss": 1.0}) for e in (1, 2)
        ]
    assert actions[HyperBandScheduler] == [TrialScheduler.CONTINUE, TrialScheduler.PAUSE]
    assert actions[FinishingHyperBand] == [TrialScheduler.CONTINUE, TrialScheduler.STOP]
