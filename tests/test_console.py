"""What a user sees: no warning they cannot act on (while real ones still show), and model cards
that say how each model was really fitted."""

from __future__ import annotations

import json
import logging
import warnings

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from zoo.expected_warnings import quiet_fit
from zoo.manifest import load_checkpoint
from zoo.models.boosting import CatBoostModel
from zoo.train import train

#: What Lightning printed on every run before: none of it is the user's to act on.
EXPECTED = (
    "LeafSpec",
    "smaller than the logging interval",
    "contains no parameters",
    "configure_optimizers` returned `None`",
)


def _run(make_cfg, tmp_path, caplog, *overrides):
    """`train` with every warning recorded (none filtered by pytest's settings) and the log captured."""
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(make_cfg("logger=csv", *overrides), tmp_path)
    said = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    return result, said


def _model_section(card: str) -> str:
    return card.split("## Model\n")[1].split("\n## ")[0]


def test_a_catboost_run_and_its_reload_say_nothing_expected_and_its_card_tells_the_boosting(
    make_cfg, tmp_path, caplog
):
    cfg = ("model=catboost", "model.iterations=60", "model.early_stopping_rounds=5")
    result, said = _run(make_cfg, tmp_path, caplog, *cfg)
    with warnings.catch_warnings(record=True) as caught:  # as `zoo predict` loads the run
        warnings.simplefilter("always")
        model = load_checkpoint(CatBoostModel, tmp_path / "checkpoints" / "best.ckpt")
    said += [str(w.message) for w in caught]
    assert not [m for m in said if any(e in m for e in EXPECTED)], said

    booster = model.fitted
    best, trees = booster.get_best_iteration(), booster.tree_count_
    assert trees == best + 1 < 60  # stopped early, trees after the best dropped
    section = _model_section((tmp_path / "model_card.md").read_text())
    assert f"{trees} trees of depth 6" in section
    assert f"early stopping on validation Logloss (patience 5 rounds), best iteration {best}" in section
    for wrong in ("0 parameters", "epochs", "optimiser", "AdamW", "val/loss"):
        assert wrong not in section, section
    assert json.loads((tmp_path / "metrics.json").read_text())["fit"] == result["fit"]


def test_a_neural_run_says_nothing_expected_and_its_card_keeps_the_recipe(make_cfg, tmp_path, caplog):
    result, said = _run(make_cfg, tmp_path, caplog, "model=dnn", "trainer.max_epochs=1")
    assert not [m for m in said if any(e in m for e in EXPECTED)], said
    assert "fit" not in result
    section = _model_section((tmp_path / "model_card.md").read_text())
    assert f"{result['n_parameters']} parameters" in section and "over 1 epochs" in section
    assert "- optimiser: `torch.optim.AdamW`; early stopping on val/loss" in section


class _Tiny(pl.LightningModule):
    """A module whose `configure_optimizers` returns None and whose step warns."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, width) if width else None

    def training_step(self, batch, batch_idx):
        warnings.warn("a warning of the model's own", UserWarning, stacklevel=1)
        return None

    def configure_optimizers(self):
        return None


@pytest.mark.parametrize("width", [0, 3])
def test_only_the_expected_warnings_are_silenced(width):
    loader = DataLoader(TensorDataset(torch.zeros(4, 2)), batch_size=2)
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = _Tiny(width)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_fit(model):
            trainer.fit(model, loader)
    said = [str(w.message) for w in caught]
    assert any("a warning of the model's own" in m for m in said)
    # No optimiser is expected of a model without parameters only; one with parameters is warned.
    assert any("configure_optimizers` returned `None`" in m for m in said) == bool(width)


def test_the_metrics_table_stays_aligned_with_a_models_own_figures():
    from zoo.console import format_table

    figures = {"auc": 0.75, "rule_coverage": 0.5, "rule_stability": 1.0, "n_rules": 12.0}
    result = {
        "model": "attention_rules",
        "dataset": "german",
        "seed": 0,
        "threshold": 0.5,
        "threshold_method": "fixed",
        "val": {**figures, "ks": None},
        "test": {**figures, "ks": 0.4},
    }
    lines = format_table(result).splitlines()[1:]
    assert len({len(line) for line in lines}) == 1, lines  # every column ends where its header does
    assert lines[0].split() == ["metric", "val", "test"] and lines[-1].split() == ["ks", "n/a", "0.4000"]


@pytest.mark.parametrize("name", ["dt", "rf", "gbdt", "cart", "rulefit", "attention_rules"])
def test_every_direct_fit_card_tells_its_own_fit(make_cfg, tmp_path, name):
    from zoo.testing import TINY_OVERRIDES, default_config

    tiny = [f"model.{k}={v}" for k, v in TINY_OVERRIDES.items() if k in default_config(name)]
    result = train(make_cfg(f"model={name}", *tiny), tmp_path)
    section = _model_section((tmp_path / "model_card.md").read_text())
    assert result["fit"] and f"s: {result['fit']}" in section
    for wrong in ("parameters,", "epochs;", "optimiser", "val/loss"):
        assert wrong not in section, section
