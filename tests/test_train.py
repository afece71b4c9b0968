"""`train(cfg)` end to end: run directory contents, checkpoints, thresholds, multirun."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.overrides import QUICK_EXPLAIN
from zoo import registry
from zoo.metrics import METRIC_NAMES
from zoo.train import train

SMALL_SYNTHETIC = [
    "dataset=synthetic",
    "dataset.params.n_rows=1500",
    "dataset.params.n_categorical=4",
    "dataset.params.n_numeric=4",
]


@pytest.mark.parametrize("model", ["lr", "dnn", "catboost"])
def test_run_directory_holds_metrics_predictions_config_and_checkpoint(tmp_path, make_cfg, model):
    extra = ["model.iterations=50"] if model == "catboost" else []
    result = train(make_cfg(f"model={model}", *extra), tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["model"] == model and saved["dataset"] == "german" and saved["seed"] == 0
    assert set(saved["test"]) == set(METRIC_NAMES) and set(saved["val"]) == set(METRIC_NAMES)
    assert saved["rows"] == {"train": 600, "val": 200, "test": 200}
    assert saved["threshold"] == 0.5 and saved["threshold_method"] == "fixed"
    assert saved["fit_seconds"] > 0
    assert saved["test"]["auc"] == pytest.approx(result["test"]["auc"])
    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    assert list(predictions.columns) == ["split", "row", "label", "prob"]
    assert predictions["split"].value_counts().to_dict() == {"val": 200, "test": 200}
    assert predictions["prob"].between(0, 1).all()
    for name in ("config.yaml", "preprocessing.json", "manifest.json"):
        assert (tmp_path / name).is_file()
    checkpoint = tmp_path / saved["best_checkpoint"]
    assert checkpoint.is_file()
    # Checkpoints load with weights_only=True (the default since torch 2.6) and predict the same.
    cls = registry.get(model)
    loaded = cls.load_from_checkpoint(checkpoint, weights_only=True)
    assert loaded.feature_spec.n_categorical == 13


def test_test_metrics_match_the_written_predictions(tmp_path, make_cfg):
    from sklearn.metrics import roc_auc_score

    result = train(make_cfg("model=lr"), tmp_path)
    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    for split in ("val", "test"):
        rows = predictions[predictions["split"] == split]
        assert result[split]["auc"] == pytest.approx(roc_auc_score(rows["label"], rows["prob"]), abs=1e-6)


def test_youden_threshold_is_chosen_on_validation_and_recorded(tmp_path, make_cfg):
    result = train(make_cfg("model=lr", "threshold=youden"), tmp_path)
    assert result["threshold_method"] == "youden"
    assert 0.0 < result["threshold"] < 1.0
    assert result["threshold"] != 0.5


def test_same_seed_same_result(tmp_path, make_cfg):
    a = train(make_cfg("model=dnn", *SMALL_SYNTHETIC), tmp_path / "a")
    b = train(make_cfg("model=dnn", *SMALL_SYNTHETIC), tmp_path / "b")
    assert a["test"]["auc"] == b["test"]["auc"]


def test_k_fold_split(tmp_path, make_cfg):
    result = train(make_cfg("model=lr", "data.n_folds=5", "data.fold=1"), tmp_path)
    assert result["rows"]["test"] == 200 and result["rows"]["train"] + result["rows"]["val"] == 800


def test_lr_learns_the_bundled_data(tmp_path, make_cfg):
    result = train(make_cfg("model=lr", "trainer.max_epochs=30"), tmp_path)
    assert result["test"]["auc"] > 0.7


def test_multirun_writes_one_run_per_job(tmp_path, zoo_train_here):
    proc = zoo_train_here(
        "-m",
        "model=lr,dnn",
        "seed=0,1",
        "trainer=fast",
        "logger=none",
        *QUICK_EXPLAIN,
        f"hydra.sweep.dir={tmp_path}/sweep",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    assert len(runs) == 4
    seen = {(json.loads(p.read_text())["model"], json.loads(p.read_text())["seed"]) for p in runs}
    assert seen == {("lr", 0), ("lr", 1), ("dnn", 0), ("dnn", 1)}
    assert all(np.isfinite(json.loads(p.read_text())["test"]["auc"]) for p in runs)
