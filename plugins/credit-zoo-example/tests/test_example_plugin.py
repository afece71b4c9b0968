"""The installed plugin: registered as `nam`, follows the batch contract, trains through credit-zoo."""

from __future__ import annotations

import json

import pytest
import torch
from credit_zoo_example import NeuralAdditiveModel
from hydra import compose, initialize_config_dir

from zoo import registry
from zoo.data.spec import CategoricalField, FeatureSpec
from zoo.models.base import CreditModel
from zoo.train import config_dir, train

SPEC = FeatureSpec(categorical=(CategoricalField("a", 5), CategoricalField("b", 4)), numeric=("x", "z"))


def _batch(n_rows: int = 6, n_numeric: int = 2) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "x_cat": torch.randint(0, 4, (n_rows, 2), generator=generator),
        "x_num": torch.randn(n_rows, n_numeric, generator=generator),
        "x_cross": torch.zeros(n_rows, 0, dtype=torch.long),
        "y": torch.zeros(n_rows),
        "row": torch.arange(n_rows),
    }


def test_registered_under_its_entry_point_by_its_distribution():
    registry.refresh()
    assert "nam" in registry.names()
    assert registry.discover()["nam"].distribution == "credit-zoo-example"
    assert registry.get("nam") is NeuralAdditiveModel
    assert issubclass(NeuralAdditiveModel, CreditModel)
    row = registry.describe("nam")
    assert row["family"] == "additive" and row["distribution"] == "credit-zoo-example 0.1.0"
    assert row["description"].startswith("Neural additive model")


def test_forward_returns_one_logit_per_row():
    model = NeuralAdditiveModel(feature_spec=SPEC)
    assert model(_batch()).shape == (6,)
    no_numerics = NeuralAdditiveModel(feature_spec=FeatureSpec(categorical=SPEC.categorical))
    assert no_numerics(_batch(n_numeric=0)).shape == (6,)


def test_each_numeric_feature_acts_alone():
    """Additivity: changing x_j moves the logit by f_j alone, whatever the other features are."""
    model = NeuralAdditiveModel(feature_spec=SPEC, dropout=0.0).eval()
    with torch.no_grad():
        for layer in model.curves:  # random curves, so the check is not trivially zero
            if hasattr(layer, "weight"):
                torch.nn.init.normal_(layer.weight)
        batch = _batch()
        moved = {**batch, "x_num": batch["x_num"].clone()}
        moved["x_num"][:, 0] += 1.5
        shift = model(moved) - model(batch)
        expected = model.contributions(moved["x_num"])[:, 0] - model.contributions(batch["x_num"])[:, 0]
    torch.testing.assert_close(shift, expected)
    assert shift.abs().max() > 0


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
        NeuralAdditiveModel(feature_spec=SPEC, **hparams)


def test_trains_end_to_end_with_its_default_config(tmp_path):
    registry.refresh()
    assert "nam" in registry.store_configs(config_dir())
    with initialize_config_dir(config_dir=str(config_dir())):
        cfg = compose("config", overrides=["model=nam", "trainer=fast", "logger=none"])
    assert cfg.model == {"name": "nam", **registry.default_hparams(NeuralAdditiveModel)}
    result = train(cfg, tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["model"] == "nam" and 0.5 < saved["test"]["auc"] <= 1
    assert saved["test"]["auc"] == pytest.approx(result["test"]["auc"])
    loaded = NeuralAdditiveModel.load_from_checkpoint(tmp_path / saved["best_checkpoint"], weights_only=True)
    assert loaded.feature_spec.n_categorical == 13 and list(loaded.hparams["hidden"]) == [32, 16]
