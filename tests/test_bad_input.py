"""Bad input gets a one-line error naming the bad value, and leaves no run directory behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.errors import ConfigCompositionException

from tests.overrides import QUICK_EXPLAIN, loans_csv
from zoo.errors import ZooError
from zoo.train import train


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "loans.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _loans(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "grade": rng.choice(list("ABC"), n),
            "income": rng.normal(50, 10, n),
            "status": np.where(rng.random(n) < 0.3, "bad", "good"),
        }
    )


def _run(make_cfg, path: Path, *overrides: str, tmp_path: Path) -> dict:
    cfg = make_cfg(*loans_csv(path), *overrides)
    return train(cfg, tmp_path / "run")


@pytest.mark.parametrize(
    ("mutate", "overrides", "message"),
    [
        (lambda f: f, ["dataset.target=nope"], "target column 'nope' is not in the data"),
        (lambda f: f.assign(status=np.resize(["bad", "good", "late"], len(f))), [], "has 3 classes"),
        (lambda f: f, ["dataset.bad_value=default"], "bad_value 'default' never occurs"),
        (lambda f: f.assign(empty=np.nan), [], "column 'empty' is entirely missing"),
        (
            lambda f: f.assign(income=np.r_[np.inf, f["income"].to_numpy()[1:]]),
            [],
            "'income' holds 1 infinite",
        ),
        (lambda f: f.iloc[:12], [], "needs at least .* rows of each class"),
        (lambda f: f, ["+dataset.roles.weird=[grade]"], "dataset.roles.weird is not a role"),
        (lambda f: f, ["+model.depth=3"], "model.depth is not a hyperparameter of 'lr'"),
        (lambda f: f, ["threshold=1.5"], "threshold=1.5, expected a number in"),
        (lambda f: f, ["data.split.train=0.9"], "fractions sum to"),
        (
            lambda f: f.assign(grade2=f["grade"], **{"grade*grade2": "x"}),
            ["+dataset.crosses=[[grade,grade2]]"],
            r"the cross 'grade\*grade2' has the name of an input column",
        ),
        (
            lambda f: f.assign(income=f["income"].mask(f.index % 5 == 0), income__missing=1.0),
            [],
            "the missing indicator 'income__missing' has the name of an input column",
        ),
        (lambda f: f, ["early_stopping.mode=up"], "early_stopping.mode='up' contradicts monitor 'val/loss'"),
        (
            lambda f: f,
            ["early_stopping.monitor=val/loss", "early_stopping.mode=max"],
            "mode='max' contradicts monitor 'val/loss', which is better when lower",
        ),
        (lambda f: f, ["early_stopping.monitor=val/auc", "early_stopping.mode=min"], "set mode to 'max'"),
        (lambda f: f, ["calibration=beta"], "calibration='beta', expected null, 'platt' or 'isotonic'"),
        (lambda f: f, ["data.split_column=nope"], "data.split_column='nope' is not a column"),
        (lambda f: f, ["data.date_column=age_in_years", "data.n_folds=5"], "are both set"),
        (lambda f: f, ["early_stopping.monitor=val/log_loss"], "monitor='val/log_loss', expected one of"),
        (lambda f: f, ["optimized_metric=val/log_loss"], "optimized_metric='val/log_loss', expected val/"),
        (lambda f: f, ["dataset.cross_auto_k=null"], "cross_auto_k=None, expected an integer of at least 2"),
        (
            lambda f: f,
            ["dataset.cross_auto_k=many"],
            "cross_auto_k='many', expected an integer of at least 2",
        ),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, make_cfg, mutate, overrides, message):
    path = _csv(tmp_path, mutate(_loans()))
    with pytest.raises(ZooError, match=message) as info:
        _run(make_cfg, path, *overrides, tmp_path=tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty"), (b"\x00\x01garbage\xff", "could not be read|has no data rows")],
)
def test_empty_or_unreadable_file(tmp_path, make_cfg, content, message):
    path = tmp_path / "broken.parquet" if content else tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(ZooError, match=message):
        _run(make_cfg, path, tmp_path=tmp_path)


def test_missing_file_names_the_path_and_where_to_get_it(tmp_path, make_cfg):
    cfg = make_cfg("dataset=home_credit", f"dataset.path={tmp_path}/application_train.csv")
    with pytest.raises(ZooError, match="application_train.csv' does not exist .*home-credit-default-risk"):
        train(cfg, tmp_path / "run")


def test_unseen_test_categories_are_handled(tmp_path, make_cfg):
    frame = _loans(300)
    frame.loc[250:, "grade"] = "Z"  # only some rows hold Z; it may or may not reach training
    result = _run(make_cfg, _csv(tmp_path, frame), tmp_path=tmp_path)
    assert 0.0 <= result["test"]["auc"] <= 1.0


def test_good_value_filter_drops_open_loans(tmp_path, make_cfg):
    frame = _loans(300)
    frame.loc[::7, "status"] = "current"
    cfg = make_cfg(
        "dataset=csv",
        f"dataset.path={_csv(tmp_path, frame)}",
        "dataset.target=status",
        "dataset.bad_value=bad",
        "dataset.good_value=good",
        "model=lr",
    )
    result = train(cfg, tmp_path / "run")
    assert sum(result["rows"].values()) == int((frame["status"] != "current").sum())


@pytest.mark.parametrize("override", ["model=nope", "dataset=nope", "trainer=nope"])
def test_unknown_config_names_list_the_options(make_cfg, override):
    group = override.split("=")[0]
    with pytest.raises(ConfigCompositionException, match=f"Could not find '{group}/nope'") as info:
        make_cfg(override)
    cause = str(info.value.__cause__ or info.value)
    assert "Available options" in cause


def test_cli_error_is_one_line_and_leaves_no_run_dir(tmp_path):
    # The real process (other CLI tests call zoo-train's main in-process): its exit status is 2 and
    # its stderr, from start-up on, holds the error line alone.
    path = _csv(tmp_path, _loans())
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "zoo.train",
            "dataset=csv",
            f"dataset.path={path}",
            "dataset.target=nope",
            "dataset.bad_value=bad",
            "trainer=fast",
            f"hydra.run.dir={tmp_path}/run",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["error: target column 'nope' is not in the data; columns are: grade, income, status"]
    assert not (tmp_path / "run").exists()


def test_a_bad_job_in_a_multirun_fails_alone(tmp_path, zoo_train_here):
    path = _csv(tmp_path, _loans())
    proc = zoo_train_here(
        "-m",
        "dataset=csv",
        f"dataset.path={path}",
        "dataset.target=status",
        "dataset.bad_value=nope,bad",
        "trainer=fast",
        "logger=none",
        *QUICK_EXPLAIN,
        f"hydra.sweep.dir={tmp_path}/sweep",
        cwd=tmp_path,
    )
    assert proc.returncode != 0  # the sweep reports its failed job
    assert "error: bad_value 'nope' never occurs" in proc.stderr
    assert [p.parent.name for p in (tmp_path / "sweep").glob("*/metrics.json")] == ["1_dnn_csv_seed0"]
    assert not (tmp_path / "sweep" / "0_dnn_csv_seed0").exists()


def test_an_interrupted_run_keeps_its_checkpoint(tmp_path):
    import signal
    import time

    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zoo.train",
            "trainer.max_epochs=100000",
            "early_stopping.patience=100000",
            "logger=none",
            f"hydra.run.dir={run_dir}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env=env,
        # A shell without job control starts background jobs with SIGINT ignored, and the child
        # would inherit that: give it the default disposition, so Python installs its handler.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoints" / "best.ckpt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (run_dir / "checkpoints" / "best.ckpt").exists()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert not (run_dir / "metrics.json").exists()


def test_failed_run_in_an_existing_directory_keeps_its_other_files(tmp_path, zoo_train_here):
    path = _csv(tmp_path, _loans())
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    proc = zoo_train_here(
        "dataset=csv",
        f"dataset.path={path}",
        "dataset.target=nope",
        "dataset.bad_value=bad",
        "trainer=fast",
        f"hydra.run.dir={target}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert (target / "notes.txt").read_text() == "keep me"
