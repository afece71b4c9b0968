"""`zoo study` (summary, plots, best-trial export) and `zoo.pruning` (the trial-pruning callback)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch
from omegaconf import OmegaConf

from tests.overrides import QUICK_EXPLAIN
from zoo import study as zoo_study
from zoo.errors import ZooError
from zoo.pruning import PRUNED_ATTR, OptunaPruning, build_pruner, pruned_epoch, pruning_callbacks
from zoo.sweeps import ERROR_ATTR, HOST_ATTR, PID_ATTR, RUN_DIR_ATTR

optuna.logging.set_verbosity(optuna.logging.WARNING)
LR = optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
HIDDEN = optuna.distributions.CategoricalDistribution(["[64,32]", "[128,64]"])


def _ask(study: optuna.Study, lr: float, hidden: str = "[64,32]") -> optuna.trial.Trial:
    """A RUNNING trial with fixed parameters, as the sweeper asks one (its fixed overrides as user attrs)."""
    study.enqueue_trial({"model.learning_rate": lr, "model.hidden": hidden})
    return study.ask({"model.learning_rate": LR, "model.hidden": HIDDEN})


def _sweep_study(path: Path, pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    return optuna.create_study(
        study_name="lr_german", storage=f"sqlite:///{path}", direction="maximize", pruner=pruner
    )


def _finished(study: optuna.Study, lr: float, curve: list[float]) -> None:
    study.enqueue_trial({"model.learning_rate": lr})
    trial = study.ask({"model.learning_rate": LR})
    for step, value in enumerate(curve):
        trial.report(value, step)
    study.tell(trial, max(curve))


def _fake_trainer(callback: OptunaPruning) -> SimpleNamespace:
    return SimpleNamespace(
        is_global_zero=True,
        sanity_checking=False,
        current_epoch=0,
        callback_metrics={},
        should_stop=False,
        callbacks=[callback],
        strategy=SimpleNamespace(broadcast=lambda obj, src=0: obj),
    )


def _callback(path: Path, trial: optuna.trial.Trial, pruner: optuna.pruners.BasePruner) -> OptunaPruning:
    params = trial.params
    overrides = [f"{k}={v}" for k, v in params.items()] + ["dataset=german", "trainer=fast"]
    return OptunaPruning(
        storage=f"sqlite:///{path}",
        study_name="lr_german",
        overrides=overrides,
        monitor="val/auc",
        pruner=pruner,
        run_dir="/runs/2",
    )


# -- zoo.pruning --------------------------------------------------------------------------------


def test_pruning_reports_each_epoch_and_stops_a_trial_below_the_median(tmp_path):
    path = tmp_path / "s.db"
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    study = _sweep_study(path, pruner)
    _finished(study, 1e-3, [0.70, 0.78, 0.80])
    _finished(study, 2e-3, [0.72, 0.79, 0.81])
    trial, _ = _ask(study, 5e-2), _ask(study, 5e-2, "[128,64]")  # another worker's trial runs too
    callback = _callback(path, trial, pruner)
    trainer = _fake_trainer(callback)
    callback.on_fit_start(trainer, None)
    assert callback.trial is not None and callback.trial._trial_id == trial._trial_id
    trainer.callback_metrics = {"val/auc": torch.tensor(0.60)}
    callback.on_validation_end(trainer, None)  # epoch 0: still warming up
    assert not trainer.should_stop and pruned_epoch(trainer) is None
    trainer.current_epoch, trainer.callback_metrics = 1, {"val/auc": torch.tensor(0.65)}
    callback.on_validation_end(trainer, None)
    assert trainer.should_stop and pruned_epoch(trainer) == 1
    frozen = study.trials[trial.number]
    assert frozen.intermediate_values == pytest.approx({0: 0.60, 1: 0.65})
    assert frozen.user_attrs == {RUN_DIR_ATTR: "/runs/2", PRUNED_ATTR: 1}
    study.tell(trial, float("nan"))  # what the sweeper does with the job's NaN: a FAIL
    counts = zoo_study.trial_counts(study)
    assert (counts["complete"], counts["pruned"], counts["failed"], counts["running"]) == (2, 1, 0, 1)


def test_pruning_lets_a_promising_trial_run(tmp_path):
    path = tmp_path / "s.db"
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1)
    study = _sweep_study(path, pruner)
    _finished(study, 1e-3, [0.70, 0.75, 0.78])
    trial = _ask(study, 5e-3)
    callback = _callback(path, trial, pruner)
    trainer = _fake_trainer(callback)
    callback.on_fit_start(trainer, None)
    for epoch, value in enumerate([0.71, 0.77, 0.80]):
        trainer.current_epoch, trainer.callback_metrics = epoch, {"val/auc": torch.tensor(value)}
        callback.on_validation_end(trainer, None)
    assert not trainer.should_stop and pruned_epoch(trainer) is None
    assert sorted(study.trials[-1].intermediate_values) == [0, 1, 2]


def test_pruning_is_off_when_no_trial_matches(tmp_path):
    path = tmp_path / "s.db"
    study = _sweep_study(path)
    _ask(study, 1e-3)
    callback = OptunaPruning(
        storage=f"sqlite:///{path}",
        study_name="lr_german",
        overrides=["model.learning_rate=0.5"],
        monitor="val/auc",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=0),
    )
    trainer = _fake_trainer(callback)
    callback.on_fit_start(trainer, None)
    trainer.callback_metrics = {"val/auc": torch.tensor(0.1)}
    callback.on_validation_end(trainer, None)
    assert callback.trial is None and not trainer.should_stop


def test_build_pruner_names_the_bad_value():
    assert isinstance(build_pruner("median", {"n_warmup_steps": 2}), optuna.pruners.MedianPruner)
    assert isinstance(build_pruner("successive_halving"), optuna.pruners.SuccessiveHalvingPruner)
    with pytest.raises(ZooError, match="sweep.pruner='hyperband', expected null or one of: median"):
        build_pruner("hyperband")
    with pytest.raises(ZooError, match=r"sweep.pruners.median.patience is not an argument of MedianPruner"):
        build_pruner("median", {"patience": 3})


def test_no_pruning_callback_outside_an_optuna_sweep(make_cfg):
    cfg = make_cfg()
    OmegaConf.update(cfg, "sweep", {"pruner": "median"}, force_add=True)
    assert pruning_callbacks(cfg) == []  # composed without a Hydra run: not a trial


# -- zoo study ----------------------------------------------------------------------------------


def _summary_study(path: Path) -> optuna.Study:
    study = _sweep_study(path)
    _finished(study, 1e-3, [0.70, 0.78])
    _finished(study, 3e-3, [0.72, 0.81])
    pruned = _ask(study, 9e-2)
    pruned.set_user_attr(PRUNED_ATTR, 0)
    study.tell(pruned, float("nan"))
    failed = _ask(study, 2e-2)
    failed.set_user_attr(ERROR_ATTR, "ValueError: loss is NaN")
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    _ask(study, 4e-2)  # running
    return study


def test_summary_counts_trials_by_state_and_names_the_best(tmp_path):
    study = _summary_study(tmp_path / "s.db")
    text = zoo_study.format_summary(study, "sqlite:///s.db")
    assert "trials: 5 (complete 2, pruned 1, failed 1, running 1)" in text
    assert "trial 3 failed: ValueError: loss is NaN" in text
    assert "best: trial 1, value 0.810000" in text
    assert "model.learning_rate = 0.003" in text


def test_cli_writes_pngs_and_best_config(tmp_path, capsys):
    _summary_study(tmp_path / "study.db")  # a sweep directory's storage: the directory names it
    assert zoo_study.main([str(tmp_path), "lr_german", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    for name in ("lr_german_history.png", "lr_german_importances.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    export = tmp_path / "out" / "experiment" / "lr_german_best.yaml"
    assert export.read_text().startswith("# @package _global_\n")
    assert f"zoo-train --config-dir {tmp_path / 'out'} experiment=lr_german_best" in printed
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind


def test_cli_notes_why_importances_are_missing(tmp_path, capsys):
    study = _sweep_study(tmp_path / "s.db")
    _finished(study, 1e-3, [0.7])
    assert zoo_study.main([f"sqlite:///{tmp_path / 's.db'}", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "importances: none (1 complete trial(s), at least 2 needed)" in printed
    assert (tmp_path / "lr_german_history.png").is_file()
    assert not (tmp_path / "lr_german_importances.png").exists()
    _finished(study, 1e-3, [0.8])
    assert zoo_study.importances_note(study) == "no parameter varies across the complete trials"


def test_cli_reads_a_journal_file(tmp_path, capsys):
    journal = optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log"))
    study = optuna.create_study(
        study_name="lr_german", storage=optuna.storages.JournalStorage(journal), direction="maximize"
    )
    _finished(study, 1e-3, [0.7])
    assert zoo_study.main([str(tmp_path / "study.log"), "--out", str(tmp_path)]) == 0
    assert "trials: 1 (complete 1, pruned 0, failed 0, running 0)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("{tmp}/missing.db", "storage '{tmp}/missing.db': no such file; expected a database URL"),
        ("sqlite:///{tmp}/missing.db", "storage 'sqlite:///{tmp}/missing.db': no such file"),
        ("{tmp}/notes.txt", "storage '{tmp}/notes.txt' is neither a SQLite database nor an Optuna journal"),
    ],
)
def test_cli_rejects_a_bad_storage_in_one_line(tmp_path, capsys, argument, message):
    (tmp_path / "notes.txt").write_text("not a study\n")
    assert zoo_study.main([argument.format(tmp=tmp_path), "lr_german"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message.format(tmp=tmp_path)}") and err.count("\n") == 1
    assert not (tmp_path / "missing.db").exists()  # not created by looking


def test_cli_rejects_an_unknown_study_naming_those_there(tmp_path, capsys):
    _sweep_study(tmp_path / "s.db")
    assert zoo_study.main([str(tmp_path / "s.db"), "afcc_german"]) == 2
    err = capsys.readouterr().err
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert err == f"error: study 'afcc_german' not found in {url!r}; studies there: lr_german\n"


def test_best_config_is_the_trials_overrides_as_an_experiment(tmp_path, make_cfg):
    study = _sweep_study(tmp_path / "s.db")
    lr = 0.0020567581032456066
    trial = _ask(study, lr, "[128,64]")
    fixed = {
        "hparams_search": "lr",
        "experiment": "afcc_table3",
        "dataset": "german",
        "trainer": "fast",
        "trainer.max_epochs": "3",
    }
    for key, value in {**fixed, RUN_DIR_ATTR: "/runs/0", HOST_ATTR: "vm", PID_ATTR: 7}.items():
        trial.set_user_attr(key, value)
    study.tell(trial, 0.8)
    path = zoo_study.write_best_config(study, tmp_path / "experiment" / "lr_german_best.yaml")
    config = OmegaConf.load(path)
    assert OmegaConf.to_container(config) == {
        "defaults": [
            "/experiment/afcc_table3",
            {"override /model": "lr"},
            {"override /dataset": "german"},
            {"override /trainer": "fast"},
        ],
        "experiment_name": "lr_german_best",
        "seed": 0,
        "model": {"learning_rate": lr, "hidden": [128, 64]},
        "trainer": {"max_epochs": 3},
    }
    cfg = make_cfg(f"hydra.searchpath=[file://{tmp_path}]", "experiment=lr_german_best")
    assert (cfg.model.name, cfg.model.learning_rate, cfg.trainer.max_epochs) == ("lr", lr, 3)
    assert cfg.optim.optimizer._target_ == "zoo.optim.adam"  # from afcc_table3, which it builds on


def test_model_and_dataset_come_from_the_study_name():
    assert zoo_study._model_and_dataset("wide_deep_cross_credit_data") == ("wide_deep_cross", "credit_data")
    assert zoo_study._model_and_dataset("lr_give_me_some_credit") == ("lr", "give_me_some_credit")
    assert zoo_study._model_and_dataset("my_study") == (None, None)


# -- a real sweep: pruning through the shared storage, and the best trial trained again ----------


def _zoo_train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "zoo.train", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def pruned_sweep(tmp_path_factory) -> tuple[Path, optuna.Study]:
    """Two trials of `lr` (Adam, 2 epochs) on german minimising validation log-loss: one learns
    (lr 0.01), one barely moves (lr 1e-7) and a median pruner that needs one finished trial stops it
    after its first epoch. (Log-loss, not AUC: a linear model's first tiny steps already rank well.)"""
    root = tmp_path_factory.mktemp("sweep")
    proc = _zoo_train(
        "-m",
        "hparams_search=lr",
        "dataset=german",
        "optim=adam",
        "optimized_metric=val/logloss",
        "model.learning_rate=choice(1e-7,0.01)",  # the seeded sampler asks 0.01 first
        "model.l2=1e-4",
        "++sweep.pruner=median",
        "++sweep.pruners.median={n_startup_trials: 1, n_warmup_steps: 0}",
        "trainer=fast",
        "logger=none",
        *QUICK_EXPLAIN,
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.seed=0",
        f"hydra.sweeper.storage=sqlite:///{root / 's.db'}",
        f"hydra.sweep.dir={root / 'sweep'}",
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, optuna.load_study(study_name="lr_german", storage=f"sqlite:///{root / 's.db'}")


def test_sweep_trials_find_their_trial_and_the_slow_one_is_pruned(pruned_sweep):
    _, study = pruned_sweep
    first, second = study.trials
    assert first.params["model.learning_rate"] == 0.01 and first.state.name == "COMPLETE"
    assert sorted(first.intermediate_values) == [0, 1]  # reported each epoch through the storage
    assert second.params["model.learning_rate"] == 1e-7 and second.state.name == "FAIL"
    assert second.user_attrs[PRUNED_ATTR] == 0 and list(second.intermediate_values) == [0]
    assert zoo_study.trial_counts(study)["pruned"] == 1


def test_best_config_reproduces_the_best_trials_validation_metrics(pruned_sweep, zoo_train_here):
    root, study = pruned_sweep
    assert zoo_study.main([str(root / "s.db"), "lr_german", "--out", str(root / "study")]) == 0
    export = root / "study" / "experiment" / "lr_german_best.yaml"
    rerun = root / "rerun"
    proc = zoo_train_here(
        "--config-dir", str(root / "study"), "experiment=lr_german_best", f"hydra.run.dir={rerun}", cwd=root
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((rerun / "metrics.json").read_text())
    assert metrics["experiment"] == "lr_german_best", export.read_text()
    assert math.isclose(metrics["val"]["logloss"], study.best_value, abs_tol=1e-6)
    best_run = Path(study.best_trial.user_attrs[RUN_DIR_ATTR])
    trial_metrics = json.loads((best_run / "metrics.json").read_text())
    assert math.isclose(metrics["val"]["auc"], trial_metrics["val"]["auc"], abs_tol=1e-6)


def test_each_png_has_one_title(tmp_path, monkeypatch):
    """Optuna titles its plots itself (importances on the left): ours replaces it, not overlays it."""
    study = _summary_study(tmp_path / "study.db")
    titles = []

    def record(ax, path, plt):
        titles.append([ax.get_title(loc=loc) for loc in ("left", "center", "right")])
        plt.close(ax.figure)
        return path

    monkeypatch.setattr(zoo_study, "_save", record)
    zoo_study.plot_history(study, tmp_path / "h.png")
    zoo_study.plot_importances(study, tmp_path / "i.png")
    assert titles == [
        ["", "lr_german: optimisation history", ""],
        ["", "lr_german: parameter importances (fANOVA)", ""],
    ]
