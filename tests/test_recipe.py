"""The shared training recipe: convergence of linear models, optimiser and schedule from config,
checkpoint selection, calibration outputs and the split options."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from zoo.data.datamodule import CreditDataModule
from zoo.optim import warmup_cosine
from zoo.train import train
from zoo.trainer import patience_epochs


def _one_hot(dm: CreditDataModule, split: str) -> np.ndarray:
    """The LR design matrix: one-hot of every categorical index (reserved ones included) + x_num."""
    arrays = dm.arrays[split]
    blocks = []
    for j, cardinality in enumerate(dm.feature_spec.cardinalities):
        block = np.zeros((len(arrays["y"]), cardinality))
        block[np.arange(len(arrays["y"])), arrays["x_cat"][:, j]] = 1.0
        blocks.append(block)
    return np.hstack([*blocks, arrays["x_num"]])


def test_lr_converges_to_the_solution_scikit_learn_finds(tmp_path, make_cfg):
    from sklearn.linear_model import LogisticRegression

    l2 = 2e-3
    cfg = make_cfg("model=lr", f"model.l2={l2}", "trainer.max_epochs=3")
    result = train(cfg, tmp_path)
    dm = CreditDataModule(cfg.dataset, seed=0)
    dm.build()
    n_train = len(dm.arrays["train"]["y"])
    # The same objective: mean log-loss + l2/2 |w|^2  <=>  sum log-loss + |w|^2 / (2C), C = 1/(l2 n).
    reference = LogisticRegression(C=1 / (l2 * n_train), tol=1e-10, max_iter=10_000)
    reference.fit(_one_hot(dm, "train"), dm.arrays["train"]["y"])
    expected = reference.predict_proba(_one_hot(dm, "test"))[:, 1]
    scored = pd.read_parquet(tmp_path / "predictions.parquet").query("split == 'test'")
    got = scored.set_index("row").loc[dm.arrays["test"]["row"], "prob"].to_numpy()
    np.testing.assert_allclose(got, expected, atol=2e-4)
    assert result["model"] == "lr"


def test_mode_follows_the_monitor_and_patience_counts_steps():
    from omegaconf import OmegaConf

    stop = OmegaConf.create({"monitor": "val/loss", "mode": None, "patience": 10, "patience_steps": 300})
    assert patience_epochs(stop, steps_per_epoch=3) == 100  # 1,000 rows at batch 256
    assert patience_epochs(stop, steps_per_epoch=4000) == 10  # 1M rows
    assert patience_epochs(stop, steps_per_epoch=1, full_batch=True) == 10  # L-BFGS: each epoch solves


def test_warmup_cosine_rises_then_decays_to_the_floor():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = warmup_cosine(optimizer, total_steps=100, warmup=0.1, final_ratio=0.0)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.1) and max(rates) == pytest.approx(1.0)
    assert rates.index(max(rates)) == 9 and rates[-1] < 0.01
    assert all(a >= b for a, b in zip(rates[9:], rates[10:], strict=False))


@pytest.mark.parametrize("optim", ["adamw", "adamw_onecycle", "adamw_plateau", "adam"])
def test_each_optimiser_config_trains(tmp_path, make_cfg, optim):
    result = train(make_cfg("model=dnn", f"optim={optim}"), tmp_path)
    assert np.isfinite(result["test"]["logloss"])


def test_calibration_is_fitted_on_validation_and_reported(tmp_path, make_cfg):
    result = train(make_cfg("model=dnn", "calibration=isotonic"), tmp_path)
    assert result["calibration"] == "isotonic"
    # Isotonic on validation rows cannot make validation log-loss worse than before it.
    assert result["val"]["brier"] <= result["uncalibrated"]["val"]["brier"] + 1e-9
    assert json.loads((tmp_path / "calibration.json").read_text())["method"] == "isotonic"
    table = pd.read_csv(tmp_path / "reliability.csv")
    assert set(table["split"]) == {"val", "test"} and table.groupby("split")["count"].sum().to_dict() == {
        "test": 200,
        "val": 200,
    }
    assert (tmp_path / "reliability.png").stat().st_size > 1000
    assert 0 <= result["test"]["ece"] <= 1


def test_a_split_column_decides_the_rows(tmp_path, make_cfg):
    from importlib import resources

    with resources.as_file(resources.files("zoo.datasets").joinpath("german_credit.csv")) as path:
        frame = pd.read_csv(path)
    parts = np.array(["train"] * 500 + ["val"] * 250 + ["test"] * 250)
    frame["part"] = parts
    source = tmp_path / "german.csv"
    frame.to_csv(source, index=False)
    overrides = ["dataset=csv", f"dataset.path={source}", "dataset.target=creditability"]
    overrides += ["dataset.bad_value=bad", "data.split_column=part", "model=lr"]
    result = train(make_cfg(*overrides), tmp_path / "run")
    assert result["rows"] == {"train": 500, "val": 250, "test": 250}
    saved = json.loads((tmp_path / "run" / "preprocessing.json").read_text())
    assert "part" not in saved["categorical"] and "part" in saved["ignored"]  # never a feature
    rows = pd.read_parquet(tmp_path / "run" / "predictions.parquet").query("split == 'test'")["row"]
    assert rows.min() >= 750


def test_out_of_time_trains_on_the_earliest_rows(tmp_path, make_cfg):
    from importlib import resources

    with resources.as_file(resources.files("zoo.datasets").joinpath("german_credit.csv")) as path:
        frame = pd.read_csv(path)
    frame["opened"] = pd.date_range("2015-01-01", periods=len(frame), freq="D").astype(str)[::-1]
    source = tmp_path / "german.csv"
    frame.to_csv(source, index=False)
    overrides = ["dataset=csv", f"dataset.path={source}", "dataset.target=creditability"]
    overrides += ["dataset.bad_value=bad", "data.date_column=opened", "model=lr"]
    train(make_cfg(*overrides), tmp_path / "run")
    test_rows = pd.read_parquet(tmp_path / "run" / "predictions.parquet").query("split == 'test'")["row"]
    assert test_rows.max() < 200  # dates run backwards: the latest rows are the first ones


def test_the_split_seed_is_separate_from_the_training_seed(tmp_path, make_cfg):
    a = train(make_cfg("model=dnn", "seed=1", "data.split_seed=7"), tmp_path / "a")
    b = train(make_cfg("model=dnn", "seed=2", "data.split_seed=7"), tmp_path / "b")
    rows = [
        pd.read_parquet(tmp_path / name / "predictions.parquet").query("split == 'test'")["row"].tolist()
        for name in ("a", "b")
    ]
    assert rows[0] == rows[1] and a["split_seed"] == b["split_seed"] == 7
    assert a["test"]["auc"] != b["test"]["auc"]  # initialisation differs


@pytest.mark.parametrize("kind", ["periodic", "piecewise_linear"])
def test_dnn_with_learned_numeric_embeddings_keeps_the_contract(tmp_path, kind):
    from zoo.testing import check_checkpoint_round_trip, check_learns_planted_signal

    check_learns_planted_signal("dnn", tmp_path, overrides={"numeric_embedding": kind})
    check_checkpoint_round_trip("dnn", tmp_path, overrides={"numeric_embedding": kind})


def test_plain_adam_has_no_weight_decay_in_any_group():
    from zoo.models.mlp import DNN
    from zoo.optim import adam
    from zoo.testing import tiny_spec

    model = DNN(feature_spec=tiny_spec(), weight_decay=0.1)
    assert any(g["weight_decay"] == 0.1 for g in model.parameter_groups())
    optimizer = adam(model.parameter_groups(), lr=1e-3)
    assert isinstance(optimizer, torch.optim.Adam) and not isinstance(optimizer, torch.optim.AdamW)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.0] * len(optimizer.param_groups)


def test_the_afcc_table3_experiment_composes_with_the_papers_settings(make_cfg):
    cfg = make_cfg("experiment=afcc_table3", "model=lstm")
    assert cfg.optim.optimizer._target_ == "zoo.optim.adam" and cfg.optim.scheduler is None
    assert cfg.model.learning_rate == 3e-3  # Table 2: LSTM at 3e-3
    assert list(cfg.experiment_charts) == ["accuracy", "auc"]
    assert cfg.reference.afcc.auc == 0.7418


@pytest.mark.parametrize(
    ("model", "paper"),
    [
        ("afcc", {"slot_norm": "none", "numeric_embedding": None}),  # H as the paper forms it
        ("ncf", {"learning_rate": 5e-3, "numeric_embedding": None, "pretrain_epochs": 0}),  # Table 2: 5e-3
        ("rnn", {"recurrent_init": "torch", "numeric_embedding": None}),  # torch's own start
        ("armnet", {"learning_rate": 5e-3, "numeric_embedding": None}),  # Table 2: ARM at 5e-3
        ("resnet", {"normalization": "batch", "learning_rate": 3e-3}),  # the paper's BatchNorm
        ("fm", {"first_order": "linear", "numeric_embedding": None, "d_embedding": 8}),  # Rendle's w_j x_j
        ("deepfm", {"first_order": "linear", "numeric_embedding": None}),
        ("lstm", {"readout": "last", "numeric_embedding": None}),  # the head on the last state
        ("sae", {"learning_rate": 3e-3, "numeric_embedding": None}),  # Table 2: SAE at 3e-3
    ],
)
def test_afcc_table3_sets_the_papers_settings_where_the_everyday_defaults_differ(make_cfg, model, paper):
    everyday = make_cfg(f"model={model}").model
    cfg = make_cfg("experiment=afcc_table3", f"model={model}").model
    assert {key: cfg[key] for key in paper} == paper
    assert {key: everyday[key] for key in paper} != paper


def test_the_wide_deep_table2_experiment_runs_plain_adam_without_clipping(make_cfg):
    cfg = make_cfg("experiment=wide_deep_table2", "model=wide_deep_cross")
    # Table 1 names Adam: torch.optim.Adam, no weight decay, constant rate, no gradient clipping
    assert cfg.optim.optimizer._target_ == "zoo.optim.adam" and cfg.optim.scheduler is None
    assert cfg.optim.gradient_clip is None
    assert cfg.model.learning_rate == 1e-4 and cfg.model.wide_learning_rate is None
    assert cfg.data.batch_size == 256 and cfg.trainer.max_epochs == 35
