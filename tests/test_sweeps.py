"""Optuna sweeps through `zoo-train -m hparams_search=...`: persistent studies, resume, failures,
parallel workers, killed sweeps, the direction that follows the optimised metric (docs/tuning.md)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from tests.overrides import QUICK_EXPLAIN
from zoo import sweeps
from zoo.errors import ZooError

STATES = optuna.trial.TrialState
#: lr with Adam diverges to NaN probabilities at a learning rate of 1e30: that trial raises.
FAILING_SPACE = ["optim=adam", "model.learning_rate=choice(0.01,1e30)"]


def _sweep(tmp_path: Path, *overrides: str, env: dict[str, str] | None = None, wait: bool = True):
    """`zoo-train -m hparams_search=lr` on german with a 2-epoch trainer, run in `tmp_path`."""
    command = [
        sys.executable,
        "-m",
        "zoo.train",
        "-m",
        "hparams_search=lr",
        "dataset=german",
        "trainer=fast",
        "logger=none",
        "model.l2=tag(log,interval(1e-4,1e-2))",
        *QUICK_EXPLAIN,
        *overrides,
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", **(env or {})}
    if not wait:
        return subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def _study(path: Path, name: str = "lr_german") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{path}")


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """A 3-trial study (one search value diverges), then the same command again."""
    cwd = tmp_path_factory.mktemp("sweep")
    _sweep(cwd, "hydra.sweeper.n_trials=3", *FAILING_SPACE)
    db = cwd / "multirun" / "sweeps" / "lr_german" / "study.db"
    first = [(t.number, t.state, t.params) for t in _study(db).trials]
    _sweep(cwd, "hydra.sweeper.n_trials=3", *FAILING_SPACE)
    return db, first, _study(db).trials


def test_a_sweep_writes_its_study_to_sqlite_in_the_sweep_dir(resumed):
    db, first, _ = resumed
    assert db.is_file()
    assert len(first) == 3
    assert all(state in (STATES.COMPLETE, STATES.FAIL) for _, state, _ in first)
    assert _study(db).direction == optuna.study.StudyDirection.MAXIMIZE  # val/auc, by default


def test_rerunning_the_command_resumes_the_study(resumed):
    db, first, trials = resumed
    assert len(trials) == 6  # n_trials more, not a new study
    assert [(t.number, t.state, t.params) for t in trials[:3]] == first
    # The resumed sampler has its own seed: it does not re-ask the first run's parameter sets.
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6
    # One run directory per finished trial, named by its number, none overwritten by the second run.
    for trial in trials:
        if trial.state == STATES.COMPLETE:
            run_dir = Path(trial.user_attrs["run_dir"])
            assert run_dir == db.parent / f"trial_{trial.number:04d}"
            assert (run_dir / "metrics.json").is_file()


def test_a_failing_trial_is_recorded_and_the_study_goes_on(resumed):
    _, _, trials = resumed
    diverged = [t for t in trials if t.params["model.learning_rate"] == 1e30]
    assert diverged, "the seeded sampler should have tried the diverging learning rate"
    for trial in trials:
        if trial in diverged:
            assert trial.state == STATES.FAIL
            assert "probs must be finite" in trial.user_attrs["error"]
        else:
            assert trial.state == STATES.COMPLETE and 0.5 < trial.value <= 1.0
            assert "error" not in trial.user_attrs
    assert trials[-1].state in (STATES.COMPLETE, STATES.FAIL)  # trials after a failure still ran


def test_two_workers_share_one_study(tmp_path):
    workers = [
        _sweep(tmp_path, "hydra.sweeper.n_trials=2", env={"ZOO_WORKER": str(i)}, wait=False) for i in range(2)
    ]
    for proc in workers:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out.decode()[-3000:]
    trials = _study(tmp_path / "multirun" / "sweeps" / "lr_german" / "study.db").trials
    assert len(trials) == 4
    assert all(t.state == STATES.COMPLETE for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}
    assert len({t.user_attrs["run_dir"] for t in trials}) == 4


def test_trials_left_running_by_a_dead_sweep_process_are_failed(tmp_path):
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path}/study.db")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan, mine, elsewhere = study.ask(), study.ask(), study.ask()
    for trial, host, pid in (
        (orphan, socket.gethostname(), dead.pid),
        (mine, socket.gethostname(), os.getpid()),
        (elsewhere, "another-host", dead.pid),
    ):
        trial.set_user_attr("host", host)
        trial.set_user_attr("pid", pid)
    assert sweeps.fail_stale_trials(study) == [orphan.number]  # this process is alive: not stale
    assert sweeps.fail_stale_trials(study, own=True) == [mine.number]  # at the end of an interrupted sweep
    states = {t.number: t.state for t in study.trials}
    assert states == {orphan.number: STATES.FAIL, mine.number: STATES.FAIL, elsewhere.number: STATES.RUNNING}
    assert "ended before the trial did" in study.trials[orphan.number].user_attrs["error"]


@pytest.mark.slow
def test_a_killed_sweep_loses_only_its_running_trial(tmp_path):
    sweep_dir = tmp_path / "multirun" / "sweeps" / "lr_german"
    proc = _sweep(
        tmp_path,
        "hydra.sweeper.n_trials=5",
        "trainer.max_epochs=100000",
        "early_stopping.patience=100000",
        "early_stopping.patience_steps=100000000",
        "optim=adam",
        wait=False,
    )
    try:
        deadline = time.monotonic() + 300
        while not (sweep_dir / "trial_0000" / ".hydra").is_dir() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (sweep_dir / "trial_0000" / ".hydra").is_dir()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert [t.state for t in _study(sweep_dir / "study.db").trials] == [STATES.RUNNING]
    _sweep(tmp_path, "hydra.sweeper.n_trials=1")
    trials = _study(sweep_dir / "study.db").trials
    assert [t.state for t in trials] == [STATES.FAIL, STATES.COMPLETE]
    assert "ended before the trial did" in trials[0].user_attrs["error"]


def _root(storage: str | None, direction: str = "maximize", study_name: str = "lr_german"):
    return OmegaConf.create(
        {"hydra": {"sweeper": {"storage": storage, "study_name": study_name, "direction": direction}}}
    )


def test_direction_follows_the_optimised_metric():
    assert sweeps.direction("val/auc") == "maximize"
    assert sweeps.direction("val/ks") == "maximize"
    assert sweeps.direction("test/accuracy") == "maximize"
    for loss in ("val/loss", "val/logloss", "val/brier", "val/ece"):
        assert sweeps.direction(loss) == "minimize"
    with pytest.raises(ZooError, match="optimized_metric='val/aucc'"):
        sweeps.direction("val/aucc")


def test_the_sweep_config_resolves_direction_storage_and_seed(tmp_path):
    from hydra import compose, initialize_config_dir

    from zoo.train import config_dir

    sweeps.register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir())):
        for metric, direction in (("val/auc", "maximize"), ("val/logloss", "minimize")):
            cfg = compose(
                "config",
                overrides=["hparams_search=lr", f"optimized_metric={metric}", f"hydra.sweep.dir={tmp_path}"],
                return_hydra_config=True,
            )
            assert cfg.hydra.sweeper.direction == direction
    assert cfg.hydra.sweeper.study_name == "lr_german"
    assert cfg.hydra.sweeper.storage == f"sqlite:///{tmp_path}/study.db"
    assert cfg.hydra.sweeper.sampler.seed == 1234  # worker 0 of a new study
    assert cfg.hydra.sweeper.max_failure_rate == 1.0


def test_resumed_and_parallel_samplers_do_not_repeat_the_first_parameter_sets(tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path}/study.db"

    def ask(seed: int) -> dict:
        study = optuna.create_study(
            study_name="lr_german",
            storage=storage,
            load_if_exists=True,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed),
        )
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0.0, 1.0)})
        study.tell(trial, trial.params["x"])
        return trial.params

    monkeypatch.delenv(sweeps.WORKER_ENV, raising=False)
    first = ask(sweeps.sampler_seed(1234, _root_=_root(storage)))
    assert ask(1234) == first  # the upstream problem: the same seed re-asks the same parameters
    resumed = ask(sweeps.sampler_seed(1234, _root_=_root(storage)))
    monkeypatch.setenv(sweeps.WORKER_ENV, "1")
    other_worker = ask(sweeps.sampler_seed(1234, _root_=_root(storage)))
    assert len({first["x"], resumed["x"], other_worker["x"]}) == 3


def test_a_stored_study_with_the_other_direction_is_refused(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/study.db"
    optuna.create_study(study_name="lr_german", storage=storage, direction="maximize")
    with pytest.raises(SystemExit) as stopped:
        sweeps.TrialRecorder().on_multirun_start(config=_root(storage, direction="minimize"))
    assert stopped.value.code == 2
    assert "created to maximize, but this sweep would minimize" in capsys.readouterr().err
    sweeps.TrialRecorder().on_multirun_start(config=_root(storage, direction="maximize"))


def test_bad_worker_index_is_one_line(monkeypatch):
    monkeypatch.setenv(sweeps.WORKER_ENV, "first")
    with pytest.raises(ZooError, match="ZOO_WORKER='first', expected a worker index"):
        sweeps.worker_index()


def test_journal_storage_is_an_optuna_storage(tmp_path):
    root = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "deep")}}})
    study = optuna.create_study(study_name="s", storage=sweeps.journal_storage(_root_=root))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert (tmp_path / "deep" / "study.log").is_file()  # in the sweep directory by default
    elsewhere = sweeps.journal_storage(str(tmp_path / "deep" / "study.log"), _root_=root)
    assert len(optuna.load_study(study_name="s", storage=elsewhere).trials) == 2


def test_pinned_sweep_stack_works():
    """The pinned versions (hydra-core and hydra-optuna-sweeper 1.4.0rc3, Optuna 5): the plugin
    imports, and Optuna's SQLite storage works under the installed SQLAlchemy. An upgrade that
    breaks either fails here."""
    import tempfile

    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{tmp}/study.db"
        study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        again = optuna.create_study(study_name="s", storage=storage, load_if_exists=True)
        assert len(again.trials) == 2


def test_ddp_that_reruns_the_command_is_refused_in_a_sweep(monkeypatch):
    for key in ("SLURM_NTASKS", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    ddp = OmegaConf.create({"strategy": "ddp", "devices": -1, "num_nodes": 1})
    with pytest.raises(ZooError, match="re-run the sweep command in every rank"):
        sweeps.check_sweep_job(ddp)
    sweeps.check_sweep_job(OmegaConf.create({"strategy": "ddp", "devices": 1}))  # one device: no ranks
    sweeps.check_sweep_job(OmegaConf.create({"accelerator": "gpu", "devices": 1}))  # trainer=gpu
    # The sweep stops before its first trial, unless the launcher starts one task per rank.
    sweep = OmegaConf.create({"trainer": ddp, "hydra": {"sweeper": {"storage": None}, "launcher": {}}})
    with pytest.raises(SystemExit):
        sweeps.TrialRecorder().on_multirun_start(config=sweep)
    sweep.hydra.launcher.tasks_per_node = 4
    sweeps.TrialRecorder().on_multirun_start(config=sweep)
    monkeypatch.setenv("SLURM_NTASKS", "4")  # in each SLURM task: SLURM started the ranks, nothing re-runs
    sweeps.check_sweep_job(ddp)


def test_the_slurm_launcher_preset_composes(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir

    from zoo.train import config_dir

    sweeps.register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir())):
        cfg = compose(
            "config",
            overrides=["hparams_search=lr", "hydra/launcher=slurm_gpu", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert (cfg.hydra.launcher.gpus_per_node, cfg.hydra.launcher.partition) == (1, "gpu")


def test_each_trial_prints_its_value_and_the_best_so_far():
    from zoo.sweeps import trial_progress

    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.71))
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.74))
    running = study.ask()  # its value is not told yet when the job ends
    line = trial_progress(study, running.number, "val/auc", 0.7312, None, k=1, n=20)
    assert line == "trial 1/20 (#2): val/auc 0.7312; best so far 0.7400 (#1)"
    line = trial_progress(study, running.number, "val/auc", 0.8, None, k=1, n=20)
    assert line.endswith("best so far 0.8000 (#2)")
    failed = trial_progress(study, running.number, "val/auc", None, "probs must be finite", k=2, n=20)
    assert failed == "trial 2/20 (#2): failed (probs must be finite); best so far 0.7400 (#1)"
    lower = optuna.create_study(direction="minimize")
    first = lower.ask()
    assert trial_progress(lower, first.number, "val/logloss", 0.5, None, k=1, n=3).endswith("0.5000 (#0)")
