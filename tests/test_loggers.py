"""The experiment loggers of conf/logger/, against real local stores: MLflow's SQLite store read
back with the MLflow client, TensorBoard's event files read back with its own reader."""

from __future__ import annotations

import pytest

from zoo.config_targets import check_targets
from zoo.train import train


@pytest.mark.parametrize("name", ["csv", "none", "tensorboard", "mlflow"])
def test_every_shipped_logger_config_is_allowed(make_cfg, name):
    cfg = make_cfg(f"logger={name}")
    check_targets(dict(cfg.logger) if cfg.logger else None, "logger")


def test_a_run_logs_its_metrics_and_hyperparameters_to_a_local_mlflow_store(make_cfg, tmp_path):
    pytest.importorskip("mlflow", reason="the `loggers` extra (mlflow-skinny) is not installed")
    from mlflow import MlflowClient

    result = train(make_cfg("model=lr", "logger=mlflow"), tmp_path)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("credit-zoo")
    assert experiment is not None
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "lr_german_seed0" and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "val/auc")
    assert len(history) == result["epochs"]  # one value per validation epoch
    assert max(m.value for m in history) >= result["val"]["auc"] - 1e-6  # the best checkpoint is one of them
    assert "val/loss" in run.data.metrics
    assert float(run.data.params["l2"]) == 1e-3 and run.data.params["use_crosses"] == "False"
    assert not (tmp_path.parent / "mlruns").exists()  # nothing outside the run directory


def test_a_run_logs_its_metrics_to_tensorboard_event_files(make_cfg, tmp_path):
    pytest.importorskip("tensorboard", reason="the `loggers` extra (tensorboard) is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(make_cfg("model=lr", "logger=tensorboard"), tmp_path)
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    scalars = events.Tags()["scalars"]
    assert {"val/auc", "val/loss"} <= set(scalars) and "hp_metric" not in scalars
