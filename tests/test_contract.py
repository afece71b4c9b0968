"""Every registered model, built-in or plugin, against the model contract of `zoo.testing`; and
the contract's checks against models that each break one rule."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hydra.core.config_store import ConfigStore
from torch import nn

from zoo import registry
from zoo.models.base import Batch, CreditModel
from zoo.models.mlp import DNN
from zoo.testing import (
    CONTRACT_CHECKS,
    check_batch_of_one,
    check_builds_from_edge_specs,
    check_checkpoint_round_trip,
    check_config_matches_constructor,
    check_forward_gives_logits,
    check_learns_planted_signal,
    check_writes_importance,
    default_config,
    tiny_batch,
    tiny_spec,
)


@pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("model_name", registry.names())
def test_contract(model_name, check, tmp_path):
    check(model_name, tmp_path)


def test_tiny_batches_follow_their_spec():
    spec = tiny_spec()
    batch = tiny_batch(spec, 50, seed=3, raw_values=True)
    assert batch["x_cat"].dtype == batch["x_cross"].dtype == batch["row"].dtype == torch.int64
    assert batch["x_cat"].shape == (50, spec.n_categorical) and batch["x_cross"].shape == (50, spec.n_crosses)
    assert batch["x_num"].dtype == batch["x_raw"].dtype == batch["y"].dtype == torch.float32
    assert batch["x_num"].shape == (50, spec.n_numeric) and batch["x_raw"].shape == (
        50,
        len(spec.raw_numeric),
    )
    assert (batch["x_cat"] < torch.tensor(spec.cardinalities)).all()
    assert (batch["x_cross"] < torch.tensor(spec.cross_cardinalities)).all()
    # Raw values are the encoded ones in raw units, NaN where the indicator marks them missing.
    indicator = spec.numeric_names.index("num_1__missing")
    missing = batch["x_raw"][:, 1].isnan()
    assert missing.any() and torch.equal(missing.float(), batch["x_num"][:, indicator])
    decoded = spec.field("num_0").decode(batch["x_num"][:, 0].numpy())
    torch.testing.assert_close(torch.from_numpy(decoded).float(), batch["x_raw"][:, 0])
    assert "x_raw" not in tiny_batch(spec)
    assert spec.wide == ("cat_0", "cat_1", "cat_0*cat_1")
    assert spec.deep == ("cat_0", "cat_1", "num_0", "num_1", "num_1__missing")


def test_default_config_is_the_one_zoo_train_composes(make_cfg):
    composed = {k: v for k, v in make_cfg("model=dnn").model.items() if k != "description"}
    assert default_config("dnn") == composed  # less `zoo models`' description, not a hyperparameter
    assert "defaults" not in default_config("lr")


# --- each check catches the fault it is for ---------------------------------------------------


class SmallDNN(DNN):
    """A small DNN to break in one way at a time."""

    def __init__(
        self,
        *,
        feature_spec: Any,
        hidden: tuple[int, ...] = (16,),
        d_embedding: int = 4,
        dropout: float = 0.0,
        use_crosses: bool = False,
        learning_rate: float = 1e-2,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(
            feature_spec=feature_spec,
            hidden=hidden,
            d_embedding=d_embedding,
            dropout=dropout,
            use_crosses=use_crosses,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
        )
        self.break_it()

    def break_it(self) -> None:
        """Where a subclass adds its fault to the constructor (explicit signatures stay intact)."""


class ColumnLogits(SmallDNN):
    def forward(self, batch: Batch) -> torch.Tensor:
        return super().forward(batch)[:, None]


class UnusedParameter(SmallDNN):
    def break_it(self) -> None:
        self.spare = nn.Linear(2, 1)


class NeedsCategoricals(SmallDNN):
    def break_it(self) -> None:
        if not self.feature_spec.categorical:
            raise ValueError("no categorical fields")


class SqueezesTheBatch(SmallDNN):
    def forward(self, batch: Batch) -> torch.Tensor:
        return self.mlp(torch.cat([self.embed(batch["x_cat"]).flatten(1), batch["x_num"]], 1)).squeeze()


class NeverLearns(SmallDNN):
    def forward(self, batch: Batch) -> torch.Tensor:
        return 0.0 * super().forward(batch)


class ForgetsItsScale(SmallDNN):
    def break_it(self) -> None:
        self.register_buffer("scale", torch.rand(()) + 0.5, persistent=False)  # not in the checkpoint

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.scale * super().forward(batch)


class NamesAStrangeField(SmallDNN):
    def native_importance(self, val: Any, reference: Any) -> Any:
        import pandas as pd

        return pd.DataFrame({"field": ["nope"], "method": "made up", "importance": [1.0]})


class TakesKwargs(SmallDNN):
    def __init__(self, *, feature_spec: Any, **hparams: Any) -> None:
        super().__init__(feature_spec=feature_spec, **hparams)


BROKEN = [
    (ColumnLogits, check_forward_gives_logits, r"shape \(16, 1\)"),
    (UnusedParameter, check_forward_gives_logits, r"without a gradient .*spare\.weight"),
    (NeedsCategoricals, check_builds_from_edge_specs, "no_categorical"),
    (SqueezesTheBatch, check_batch_of_one, r"shape \(\)"),
    (NeverLearns, check_learns_planted_signal, r"held-out AUC 0\.500 .*expected at least 0\.7"),
    (ForgetsItsScale, check_checkpoint_round_trip, "differ"),
    (TakesKwargs, check_config_matches_constructor, r"\*\['hparams'\]"),
    (NamesAStrangeField, check_writes_importance, r"fields the spec does not have: \['nope'\]"),
]


def register(monkeypatch, cls: type, defaults_of: type = SmallDNN) -> str:
    """Register `cls` under a name of its own, with `defaults_of`'s hyperparameters as its config."""
    name = f"broken_{cls.__name__.lower()}"
    get = registry.get
    monkeypatch.setattr(registry, "get", lambda n: cls if n == name else get(n))
    store = ConfigStore.instance()
    monkeypatch.setitem(store.repo, "model", dict(store.repo.get("model", {})))
    store.store(group="model", name=name, node={"name": name, **registry.default_hparams(defaults_of)})
    return name


@pytest.mark.parametrize(("cls", "check", "message"), BROKEN, ids=lambda v: getattr(v, "__name__", ""))
def test_each_check_catches_its_fault(cls, check, message, tmp_path, monkeypatch):
    with pytest.raises(AssertionError, match=message):
        check(register(monkeypatch, cls), tmp_path)


class BiasOnly(CreditModel):
    """The base rate alone: one bias, started far from it, so its loss falls by half as it learns."""

    def __init__(self, *, feature_spec: Any, learning_rate: float = 0.1, weight_decay: float = 0.0) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        self.bias = nn.Parameter(torch.tensor(2.0))

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.bias.expand(len(batch["y"]))


def test_a_model_of_the_base_rate_does_not_learn_the_planted_signal(tmp_path, monkeypatch):
    name = register(monkeypatch, BiasOnly, BiasOnly)
    with pytest.raises(AssertionError, match=r"held-out AUC 0\.500 .*expected at least 0\.7"):
        check_learns_planted_signal(name, tmp_path)
    check_learns_planted_signal("lr", tmp_path)  # a real model, beside it
