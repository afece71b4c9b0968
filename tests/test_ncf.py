"""NCF (NeuMF): the borrower/loan groups from the dataset config, the fallback split rule, GMF as
the element-wise product of the two sides, one-line errors for bad groups, and the paper's
pretraining of GMF and MLP before NeuMF."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from zoo.data.datamodule import CreditDataModule
from zoo.errors import ZooError
from zoo.models.ncf import NCF, PRETRAINING_FILE, ncf_groups
from zoo.testing import planted_batch, tiny_batch, tiny_spec
from zoo.train import train


@pytest.mark.parametrize("dataset", ["german", "credit_data"])
def test_the_dataset_configs_groups_reach_the_model(make_cfg, dataset):
    cfg = make_cfg(f"dataset={dataset}", "model=ncf")
    spec = CreditDataModule(cfg.dataset, seed=0).feature_spec
    model = NCF(feature_spec=spec.to_dict())  # as a checkpoint rebuilds it: the groups survive
    named = {"borrower": list(cfg.dataset.groups.borrower), "loan": list(cfg.dataset.groups.loan)}
    for fields, group in ((model.user_fields, "borrower"), (model.item_fields, "loan")):
        # The yaml's fields in spec order, each numeric with missing values bringing its indicator.
        extra = [f for f in fields if f not in named[group]]
        assert set(named[group]) <= set(fields)
        assert all(f.endswith("__missing") and f.removesuffix("__missing") in named[group] for f in extra)
    if dataset == "german":  # no missing values: exactly the yaml's lists, covering all 20 fields
        assert set(model.user_fields) == set(named["borrower"]) and set(model.item_fields) == set(
            named["loan"]
        )
        assert len(model.user_fields) + len(model.item_fields) == spec.n_categorical + spec.n_numeric == 20
    else:
        assert "Income__missing" in model.user_fields and "Income__missing" not in model.item_fields
    # Each side embeds exactly its own fields: the loan side of german reads purpose and 4 others.
    side = model.gmf_item
    names = [spec.categorical[i].name for i in side.cat_index] + [
        spec.numeric[i].name for i in side.num_index
    ]
    assert sorted(names) == sorted(model.item_fields)
    # The rate chosen on the suite; the AFCC paper's 5e-3 (Table 2) is in experiment=afcc_table3.
    assert model.learning_rate == cfg.model.learning_rate == 1e-3


def test_without_groups_the_fields_split_in_halves_by_the_documented_rule():
    # Fields in spec order, indicators set aside: cat_0 cat_1 num_0 | num_1 num_2; ceil(5/2) = 3
    # to the borrower; num_2's missing indicator follows num_2.
    assert ncf_groups(tiny_spec(2, 3)) == (("cat_0", "cat_1", "num_0"), ("num_1", "num_2", "num_2__missing"))
    assert ncf_groups(tiny_spec(2, 2, missing_indicator=False)) == (("cat_0", "cat_1"), ("num_0", "num_1"))
    # A single field goes to both sides (its indicator with it).
    assert ncf_groups(tiny_spec(1, 0)) == (("cat_0",), ("cat_0",))
    assert ncf_groups(tiny_spec(0, 1)) == (("num_0", "num_0__missing"),) * 2
    # One group named: the other side takes every field it leaves out; crosses only where named.
    spec = tiny_spec(3, 1, missing_indicator=False)
    assert ncf_groups(spec.with_groups(loan=["cat_1", "cat_1*cat_2"])) == (
        ("cat_0", "cat_2", "num_0"),
        ("cat_1", "cat_1*cat_2"),
    )
    assert ncf_groups(spec.with_groups(borrower=["num_0"], loan=["num_0", "cat_0"])) == (
        ("num_0",),
        ("num_0", "cat_0"),
    )
    with pytest.raises(
        ValueError, match=r"field group 'borrower' holds every field, leaving none for 'loan'"
    ):
        ncf_groups(spec.with_groups(borrower=["cat_0", "cat_1", "cat_2", "num_0"]))
    with pytest.raises(ValueError, match=r"field group 'loan' is empty"):
        ncf_groups(spec.with_groups(borrower=["cat_0"], loan=[]))


def test_gmf_is_the_element_wise_product_of_the_two_sides_mean_embeddings():
    torch.manual_seed(0)
    spec = tiny_spec(2, 2, missing_indicator=False)  # borrower: cat_0 cat_1, loan: num_0 num_1
    model = NCF(feature_spec=spec, n_factors=4, layers=(16, 8)).eval()
    batch = tiny_batch(spec, 6)
    user_table = model.gmf_user.tokens.embed.embedding.weight
    offsets = torch.tensor([0, spec.cardinalities[0]])
    p_u = user_table[batch["x_cat"] + offsets].mean(1)
    q_i = (batch["x_num"][..., None] * model.gmf_item.tokens.tokenize.weight).mean(1)
    torch.testing.assert_close(model.gmf(batch), p_u * q_i)
    # The MLP has embeddings of its own, of half the first layer's width, and a tower 16 -> 8.
    assert model.mlp_user.tokens.d_embedding == 8 and model.mlp.d_out == 8
    assert model.head.in_features == 4 + 8
    # Zeroing the loan side's GMF embeddings zeroes the GMF branch: the borrower's GMF
    # embeddings then no longer move the logit, while the MLP's still do.
    with torch.no_grad():
        model.gmf_item.tokens.tokenize.weight.zero_()
    assert (model.gmf(batch) == 0).all()
    before = model(batch)
    with torch.no_grad():
        user_table.normal_()
    torch.testing.assert_close(model(batch), before)
    with torch.no_grad():
        model.mlp_user.tokens.embed.embedding.weight.normal_()
    assert not torch.allclose(model(batch), before)


def test_crosses_named_in_a_group_are_embedded_and_trained():
    spec = tiny_spec(2, 1, missing_indicator=False).with_groups(
        borrower=["cat_0", "cat_0*cat_1"], loan=["num_0"]
    )
    model = NCF(feature_spec=spec)
    assert model.gmf_user.cross_index == [0] and model.gmf_user.cat_index == [0]
    batch = tiny_batch(spec, 8)
    model(batch).sum().backward()
    table = model.gmf_user.tokens.embed.embedding.weight
    cross_rows = table.grad[spec.cardinalities[0] :]
    assert cross_rows.abs().sum() > 0


def test_a_group_naming_an_unknown_field_fails_with_one_line_naming_it():
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame(
        {"x": rng.normal(size=n), "c": rng.choice(["a", "b"], n), "y": rng.integers(0, 2, n)}
    )
    ds = {"name": "t", "target": "y", "bad_value": 1, "groups": {"borrower": ["x", "nope"], "loan": ["c"]}}
    with pytest.raises(
        ZooError, match=r"dataset\.groups\.borrower names 'nope', which is not a feature"
    ) as info:
        CreditDataModule(ds, frame=frame, seed=0).build()
    assert "\n" not in str(info.value)
    # A spec built by hand (not through the preprocessor) is checked by the model itself.
    spec = tiny_spec().with_groups(borrower=["cat_0"], loan=["num_9"])
    with pytest.raises(ValueError, match=r"field group 'loan' names 'num_9', which is not a field") as info:
        NCF(feature_spec=spec)
    assert "\n" not in str(info.value)


# --- pretraining (He et al. 2017, section 3.4.1) ------------------------------------------------


def test_pretraining_fits_gmf_and_mlp_alone_then_sets_neumfs_head_from_theirs():
    torch.manual_seed(0)
    spec = tiny_spec(2, 2, missing_indicator=False)
    train_batches = [planted_batch(spec, 128, seed=s) for s in range(4)]
    val = [planted_batch(spec, 256, seed=9)]
    model = NCF(
        feature_spec=spec, n_factors=4, layers=(16, 8), pretrain_epochs=30, learning_rate=1e-2, alpha=0.25
    )
    heads: list[torch.nn.Linear] = []
    original = model._pretrain_part
    model._pretrain_part = lambda *args: heads.append(original(*args)) or heads[-1]
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    history = model.pretrain(train_batches, val)
    # Each part's validation log-loss falls; NeuMF's head is [alpha h_GMF; (1 - alpha) h_MLP].
    first = history[:, 0]
    best = torch.stack([row[torch.isfinite(row)].min() for row in history])
    assert (best < first - 0.02).all(), history
    gmf, mlp = heads
    torch.testing.assert_close(model.head.weight, torch.cat([0.25 * gmf.weight, 0.75 * mlp.weight], dim=1))
    torch.testing.assert_close(model.head.bias, 0.25 * gmf.bias + 0.75 * mlp.bias)
    # Every part moved; nothing is left with a gradient for the fit's optimiser to trip on.
    moved = {name.split(".")[0] for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert moved == {"gmf_user", "gmf_item", "mlp_user", "mlp_item", "mlp", "head"}
    assert all(p.grad is None for p in model.parameters())
    # The part kept is the epoch of lowest validation log-loss: GMF alone scores it again.
    with torch.no_grad():
        kept = F.binary_cross_entropy_with_logits(gmf(model.gmf(val[0])).squeeze(-1), val[0]["y"])
    torch.testing.assert_close(kept.item(), best[0].item(), atol=1e-5, rtol=0)
    table = model.pretraining_table()
    assert list(table.columns) == ["part", "epoch", "loss"] and set(table["part"]) == {"gmf", "mlp"}
    assert len(table) == int(torch.isfinite(history).sum())


def test_pretraining_stops_a_part_after_its_patience():
    torch.manual_seed(0)
    spec = tiny_spec(1, 1, missing_indicator=False)
    batches = [planted_batch(spec, 64, seed=s) for s in range(2)]
    # At a huge rate validation loss stops improving at once: each part ends `patience` epochs later.
    model = NCF(feature_spec=spec, layers=(8, 4), pretrain_epochs=200, pretrain_patience=3, learning_rate=5.0)
    history = model.pretrain(batches, batches)
    run = torch.isfinite(history).sum(dim=1)
    assert (run < 200).all() and (run >= 4).all(), run
    for row, n in zip(history, run.tolist(), strict=True):
        assert int(torch.argmin(row[:n])) == n - 1 - 3  # the best, then three epochs without a gain


def test_without_validation_rows_pretraining_runs_every_epoch_on_the_training_loss():
    torch.manual_seed(0)
    spec = tiny_spec(1, 1, missing_indicator=False)
    batches = [planted_batch(spec, 64, seed=s) for s in range(2)]
    for val in (None, []):  # no loader, or one with no rows
        model = NCF(
            feature_spec=spec, layers=(8, 4), pretrain_epochs=12, pretrain_patience=2, learning_rate=1e-2
        )
        history = model.pretrain(batches, val)
        assert torch.isfinite(history).all()  # no early stop without a validation loss
        assert (history[:, -1] < history[:, 0]).all()  # the training loss falls


def test_a_fit_pretrains_once_and_old_checkpoints_still_load(tmp_path, make_cfg):
    result = train(
        make_cfg("model=ncf", "dataset=german", "model.pretrain_epochs=3", "trainer.max_epochs=2"), tmp_path
    )
    table = pd.read_csv(tmp_path / PRETRAINING_FILE)
    assert sorted(table["part"].unique()) == ["gmf", "mlp"] and len(table) == 6
    assert 0.5 < result["test"]["auc"] <= 1
    # The best checkpoint keeps the record; one saved before pretraining existed (no record in
    # its state dict, no pretrain_epochs in its hyperparameters) loads as it was trained.
    (ckpt,) = (tmp_path / "checkpoints").glob("best*.ckpt")
    state = torch.load(ckpt, weights_only=True)
    assert torch.isfinite(state["state_dict"]["pretrain_history"]).all()
    del state["state_dict"]["pretrain_history"]
    for key in ("pretrain_epochs", "pretrain_patience", "alpha"):
        del state["hyper_parameters"][key]
    torch.save(state, tmp_path / "old.ckpt")
    old = NCF.load_from_checkpoint(tmp_path / "old.ckpt", weights_only=True)
    assert old.pretrain_history.isnan().all()  # no record: it was not pretrained
    loaded = NCF.load_from_checkpoint(ckpt, weights_only=True)
    batch = tiny_batch(loaded.feature_spec, 16)
    torch.testing.assert_close(old.eval()(batch), loaded.eval()(batch))
    # No pretraining: no record is written.
    plain = tmp_path / "plain"
    train(make_cfg("model=ncf", "dataset=german", "trainer.max_epochs=1", "model.pretrain_epochs=0"), plain)
    assert not (plain / PRETRAINING_FILE).exists()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("pretrain_epochs", -1, r"pretrain_epochs=-1, expected an integer >= 0"),
        ("pretrain_epochs", 2.5, r"pretrain_epochs=2\.5, expected an integer >= 0"),
        ("pretrain_patience", 0, r"pretrain_patience=0, expected a positive integer"),
        ("alpha", 1.5, r"alpha=1\.5, expected a weight 0 <= alpha <= 1"),
        ("alpha", "half", r"alpha='half', expected a weight 0 <= alpha <= 1"),
    ],
)
def test_bad_pretraining_settings_are_refused_in_one_line(key, value, message):
    with pytest.raises(ValueError, match=message):
        NCF(feature_spec=tiny_spec(), **{key: value})


def test_the_everyday_config_pretrains_and_the_afcc_papers_table_does_not(make_cfg):
    assert make_cfg("model=ncf").model.pretrain_epochs == 200
    assert make_cfg("experiment=afcc_table3", "model=ncf").model.pretrain_epochs == 0
