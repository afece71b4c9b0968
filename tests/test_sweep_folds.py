"""`sweep.objective_folds`: each Optuna trial trains k fold runs and reports their mean validation
metric (docs/tuning.md, "Averaging the objective over folds")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from omegaconf import OmegaConf

from tests.overrides import QUICK_EXPLAIN
from zoo import study as zoo_study
from zoo import sweeps
from zoo.errors import ZooError
from zoo.leaderboard import unranked_runs
from zoo.leaderboard.collect import read_runs
from zoo.outputs import METRICS_FILE, OBJECTIVE_FILE
from zoo.pruning import PRUNED_ATTR
from zoo.train import train_folds

STATES = optuna.trial.TrialState


#: Warnings are ignored in the sweeps, except Optuna's for a step reported twice to one trial.
WARNINGS = "ignore,always:The reported value is ignored"


def _sweep(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`zoo-train -m hparams_search=lr` on german with the 2-epoch trainer, run in `cwd`."""
    command = [
        sys.executable,
        "-m",
        "zoo.train",
        "-m",
        "hparams_search=lr",
        "dataset=german",
        "trainer=fast",
        "logger=none",
        *QUICK_EXPLAIN,
        *overrides,
    ]
    env = {**os.environ, "PYTHONWARNINGS": WARNINGS, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def _study(sweep_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="lr_german", storage=f"sqlite:///{sweep_dir / 'study.db'}")


def _val(run_dir: Path, metric: str = "auc") -> float:
    return json.loads((run_dir / METRICS_FILE).read_text())["val"][metric]


@pytest.fixture(scope="module")
def folds_sweep(tmp_path_factory) -> Path:
    """A 2-trial study whose trials average val/auc over 3 folds; its sweep directory."""
    cwd = tmp_path_factory.mktemp("folds")
    _sweep(cwd, "hydra.sweeper.n_trials=2", "sweep.objective_folds=3")
    return cwd / "multirun" / "sweeps" / "lr_german"


def test_each_trial_reports_the_mean_of_its_fold_runs(folds_sweep):
    trials = _study(folds_sweep).trials
    assert [t.state for t in trials] == [STATES.COMPLETE, STATES.COMPLETE]
    for trial in trials:
        trial_dir = folds_sweep / f"trial_{trial.number:04d}"
        fold_values = [_val(trial_dir / f"fold{fold}") for fold in range(3)]
        assert trial.value == np.mean(fold_values)
        assert trial.user_attrs[sweeps.FOLDS_ATTR] == 3
        assert trial.user_attrs[sweeps.FOLD_VALUES_ATTR] == fold_values
        assert trial.user_attrs[sweeps.RUN_DIR_ATTR] == str(trial_dir)
        record = json.loads((trial_dir / OBJECTIVE_FILE).read_text())
        assert record == {
            "metric": "val/auc",
            "folds": 3,
            "values": fold_values,
            "mean": trial.value,
            "run_dirs": ["fold0", "fold1", "fold2"],
        }


def test_each_fold_is_a_complete_run_of_its_own_fold(folds_sweep):
    trial_dir = folds_sweep / "trial_0000"
    assert not (trial_dir / METRICS_FILE).exists()  # the trial is the folds' mean, not a run
    for fold in range(3):
        run_dir = trial_dir / f"fold{fold}"
        for name in (METRICS_FILE, "config.yaml", "predictions.parquet", "checkpoints/best.ckpt"):
            assert (run_dir / name).is_file(), name
        assert json.loads((run_dir / METRICS_FILE).read_text())["fold"] == fold
        config = OmegaConf.load(run_dir / "config.yaml")
        assert (config.data.n_folds, config.data.fold) == (3, fold)
    # The folds' validation (and test) rows differ: three splits, not one split three times.
    assert len({_val(trial_dir / f"fold{fold}") for fold in range(3)}) == 3


def test_leaderboard_and_zoo_study_read_the_fold_layout(folds_sweep, capsys):
    runs = read_runs(folds_sweep)
    assert len(runs) == 6  # 2 trials x 3 folds
    assert unranked_runs(folds_sweep) == []  # a trial directory with objective.json is finished
    assert zoo_study.main([str(folds_sweep), "--out", str(folds_sweep / "study")]) == 0
    printed = capsys.readouterr().out
    assert "trials: 2 (complete 2, pruned 0, failed 0, running 0)" in printed
    best = _study(folds_sweep).best_trial
    assert f"best: trial {best.number}, value {best.value:.6f}\n  mean of 3 folds: " in printed
    exported = OmegaConf.load(folds_sweep / "study" / "experiment" / "lr_german_best.yaml")
    assert "sweep" not in exported and "data" not in exported  # the best trial reruns on one split


def test_a_study_keeps_its_number_of_folds(folds_sweep):
    study = _study(folds_sweep)
    sweeps.check_objective(study, 3)
    with pytest.raises(
        ZooError, match=r"has trials with sweep.objective_folds=3, but this sweep asks for null"
    ):
        sweeps.check_objective(study, 1)


def test_without_objective_folds_a_trial_is_one_run_as_before(tmp_path):
    _sweep(tmp_path, "hydra.sweeper.n_trials=1")
    sweep_dir = tmp_path / "multirun" / "sweeps" / "lr_german"
    (trial,) = _study(sweep_dir).trials
    trial_dir = sweep_dir / "trial_0000"
    assert trial.state == STATES.COMPLETE and trial.value == _val(trial_dir)
    assert not (trial_dir / OBJECTIVE_FILE).exists() and not list(trial_dir.glob("fold*"))
    assert sweeps.FOLDS_ATTR not in trial.user_attrs and sweeps.FOLD_VALUES_ATTR not in trial.user_attrs
    assert json.loads((trial_dir / METRICS_FILE).read_text())["fold"] is None
    with pytest.raises(
        ZooError, match=r"has trials with sweep.objective_folds=null, but this sweep asks for 5"
    ):
        sweeps.check_objective(_study(sweep_dir), 5)


def test_pruning_watches_fold_0_and_a_pruned_trial_trains_no_other_fold(tmp_path):
    """The slow trial (lr 1e-7) is pruned after fold 0's first epoch; the first trial's fold 1 does not
    report its curve over fold 0's (Optuna would warn that each step is already reported)."""
    proc = _sweep(
        tmp_path,
        "optim=adam",
        "optimized_metric=val/logloss",
        "model.learning_rate=choice(1e-7,0.01)",  # the seeded sampler asks 0.01 first
        "model.l2=1e-4",
        "++sweep.pruner=median",
        "++sweep.pruners.median={n_startup_trials: 1, n_warmup_steps: 0}",
        "sweep.objective_folds=2",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.seed=0",
    )
    assert "is already reported" not in proc.stdout + proc.stderr
    sweep_dir = tmp_path / "multirun" / "sweeps" / "lr_german"
    first, second = _study(sweep_dir).trials
    assert first.state == STATES.COMPLETE and sorted(first.intermediate_values) == [0, 1]
    assert first.value == np.mean([_val(sweep_dir / "trial_0000" / f"fold{k}", "logloss") for k in (0, 1)])
    assert second.state == STATES.FAIL and second.user_attrs[PRUNED_ATTR] == 0
    assert list(second.intermediate_values) == [0]
    assert second.user_attrs[sweeps.FOLD_VALUES_ATTR] == [None]  # pruned in fold 0: no value
    record = json.loads((sweep_dir / "trial_0001" / OBJECTIVE_FILE).read_text())
    assert (record["pruned_at_fold"], record["mean"]) == (0, None)
    assert not (sweep_dir / "trial_0001" / "fold1").exists()
    assert zoo_study.trial_counts(_study(sweep_dir))["pruned"] == 1


# -- bad values: one line naming the value ---------------------------------------------------------


def test_the_sweep_config_leaves_objective_folds_unset(make_cfg):
    cfg = make_cfg("hparams_search=lr")
    assert cfg.sweep.objective_folds is None
    assert sweeps.objective_folds(cfg) == 1


@pytest.mark.parametrize(
    ("value", "shown"), [("0", "0"), ("1.5", "1.5"), ("x", "'x'"), ("'5'", "'5'"), ("-3", "-3")]
)
def test_a_bad_number_of_folds_is_named(make_cfg, value, shown):
    cfg = make_cfg("hparams_search=lr", f"sweep.objective_folds={value}")
    with pytest.raises(ZooError, match=rf"^sweep.objective_folds={shown}, expected null or a whole number"):
        sweeps.objective_folds(cfg)


def test_one_fold_is_one_split(make_cfg):
    assert sweeps.objective_folds(make_cfg("hparams_search=lr", "sweep.objective_folds=1")) == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.n_folds=10", "sets data.n_folds=5 and data.fold=0..4 itself; drop data.n_folds=10"),
        ("data.fold=2", "itself; drop data.fold=2"),
        ("data.split_column=part", "data.split_column='part': a predefined split has a single validation"),
        ("data.fold_column=f", "data.fold_column='f': the fold column defines folds of its own"),
        ("data.date_column=opened", "data.date_column='opened': an out-of-time split keeps one"),
    ],
)
def test_split_settings_that_clash_are_refused(make_cfg, override, message):
    cfg = make_cfg("hparams_search=lr", "sweep.objective_folds=5", override)
    with pytest.raises(ZooError, match=rf"^sweep.objective_folds=5 .*{message}"):
        sweeps.objective_folds(cfg)


def test_more_folds_than_the_rows_allow_is_one_line(make_cfg, tmp_path):
    cfg = make_cfg("hparams_search=lr", "dataset=german", "sweep.objective_folds=400")
    with pytest.raises(
        ZooError, match=r"^sweep.objective_folds=400, fold 0: 400-fold needs at least 400"
    ) as err:
        train_folds(cfg, tmp_path, 400)
    assert "\n" not in str(err.value)


def test_the_sweep_stops_on_a_bad_value_before_its_first_trial(tmp_path, zoo_train_here):
    proc = zoo_train_here(
        "-m", "hparams_search=lr", "trainer=fast", "logger=none", "sweep.objective_folds=0", cwd=tmp_path
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: sweep.objective_folds=0, expected null or a whole number of folds >= 2 "
        "(1 is the same as null: one validation split)"
    ]
    assert not list((tmp_path / "multirun" / "sweeps" / "lr_german").glob("trial_*"))
