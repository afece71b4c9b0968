"""The installed plugin: registered as `nam`, passes credit-zoo's model contract, stays additive."""

from __future__ import annotations

import pytest
import torch
from credit_zoo_example import NeuralAdditiveModel
from hydra import compose, initialize_config_dir

from zoo import registry
from zoo.testing import CONTRACT_CHECKS, tiny_batch, tiny_spec
from zoo.train import config_dir, train


@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda c: c.__name__)
def test_contract(check, tmp_path):
    check("nam", tmp_path)


def test_registered_under_its_entry_point_by_its_distribution():
    registry.refresh()
    assert registry.discover()["nam"].distribution == "credit-zoo-example"
    assert registry.get("nam") is NeuralAdditiveModel
    row = registry.describe("nam")
    assert row["family"] == "additive" and row["distribution"] == "credit-zoo-example 0.1.0"
    assert row["description"].startswith("Neural additive model")


def test_each_numeric_feature_acts_alone():
    """Additivity: changing x_j moves the logit by f_j alone, whatever the other features are."""
    spec = tiny_spec()
    model = NeuralAdditiveModel(feature_spec=spec, dropout=0.0).eval()
    with torch.no_grad():
        for layer in model.curves:  # random curves, so the check is not trivially zero
            if hasattr(layer, "weight"):
                torch.nn.init.normal_(layer.weight)
        batch = tiny_batch(spec)
        moved = {**batch, "x_num": batch["x_num"].clone()}
        moved["x_num"][:, 0] += 1.5
        shift = model(moved) - model(batch)
        expected = model.contributions(moved["x_num"])[:, 0] - model.contributions(batch["x_num"])[:, 0]
    torch.testing.assert_close(shift, expected)
    assert shift.abs().max() > 0


def test_category_points_and_curves_are_decayed_biases_are_not():
    model = NeuralAdditiveModel(feature_spec=tiny_spec(), weight_decay=1e-3)
    decayed = {id(p) for g in model.parameter_groups() if g["weight_decay"] > 0 for p in g["params"]}
    names = {name for name, p in model.named_parameters() if id(p) in decayed}
    assert names == {"categorical.weight", "curves.0.weight", "curves.3.weight", "curves.6.weight"}


@pytest.mark.parametrize(
    ("hparams", "message"),
    [
        ({"hidden": [32, 0]}, r"hidden=\[32, 0\]"),
        ({"hidden": []}, r"hidden=\[\]"),
        ({"dropout": 1.0}, "dropout=1.0"),
    ],
)
def test_bad_hyperparameters_name_the_value(hparams, message):
    with pytest.raises(ValueError, match=message):
        NeuralAdditiveModel(feature_spec=tiny_spec(), **hparams)


def test_trains_end_to_end_on_german_credit(tmp_path):
    registry.store_configs(config_dir())
    with initialize_config_dir(config_dir=str(config_dir())):
        cfg = compose("config", overrides=["model=nam", "trainer=fast", "logger=none"])
    result = train(cfg, tmp_path)
    assert result["model"] == "nam" and 0.5 < result["test"]["auc"] <= 1
