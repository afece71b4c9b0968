"""The scikit-learn trees (dt, rf, gbdt): skops persistence that trusts only listed types, finite
logits from pure leaves, missing and unseen values, validation-driven depth and early stopping, and
real runs that `zoo predict` can score."""

from __future__ import annotations

import functools
import io
import json
import zipfile
from importlib import resources

import numpy as np
import pandas as pd
import pytest
import skops.io
import torch

from zoo.data.spec import MISSING_INDEX, UNSEEN_INDEX
from zoo.errors import ZooError
from zoo.models.sklearn_trees import PROB_CLIP, DecisionTree, HistGradientBoosting, SklearnTreeModel
from zoo.predict import predict_file
from zoo.testing import (
    TINY_OVERRIDES,
    build,
    default_config,
    edge_specs,
    fit_tree,
    planted_batch,
    tiny_spec,
    to_arrays,
)
from zoo.train import train

MODELS = ["dt", "rf", "gbdt"]


@functools.cache
def shipped_config(name: str) -> dict:
    """`conf/model/<name>.yaml` as zoo-train composes it (composed once: Hydra is slow)."""
    return default_config(name)


def make(name: str, spec=None, **overrides) -> SklearnTreeModel:
    """The model of the shipped config with the contract's `TINY_OVERRIDES` (30 trees or rounds,
    one thread) and `overrides` on top."""
    model = build(shipped_config(name), spec or tiny_spec(), overrides)
    assert isinstance(model, SklearnTreeModel)
    return model


def fitted(name: str, spec=None, **overrides) -> SklearnTreeModel:
    spec = spec or tiny_spec()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = make(name, spec, **overrides)
        train, val = (planted_batch(spec, n, seed, raw_values=True) for seed, n in ((0, 200), (1, 100)))
        fit_tree(model, train, val)
    return model.eval()


def arrays(spec, n: int = 50, seed: int = 5) -> dict[str, np.ndarray]:
    return to_arrays(planted_batch(spec, n, seed, raw_values=True))


@pytest.mark.parametrize("name", MODELS)
def test_dump_and_load_give_identical_predictions_for_every_spec(name):
    # Every edge spec: the hard-coded trusted types must cover what each fitted estimator holds.
    rounds = {k: 10 for k in ("n_estimators", "iterations") if k in shipped_config(name)}
    for label, spec in edge_specs().items():
        model = fitted(name, spec, **rounds)
        blob = model.dump()
        assert blob[:2] == b"PK", "a skops zip archive, not a pickle"
        fresh = make(name, spec)
        fresh.fitted = fresh.load(blob)
        rows = arrays(spec)
        np.testing.assert_array_equal(fresh.predict_logit(rows), model.predict_logit(rows), err_msg=label)


def test_loading_a_different_estimator_is_refused():
    tree = make("dt")
    forest = fitted("rf").dump()  # only trusted types, but not a decision tree
    with pytest.raises(ZooError, match="is a RandomForestClassifier, expected a DecisionTreeClassifier"):
        tree.load(forest)
    booster = fitted("gbdt").dump()  # types a decision tree's checkpoint never holds
    with pytest.raises(ZooError, match=r"untrusted types \[.*TreePredictor"):
        tree.load(booster)


def test_loading_a_tampered_or_foreign_blob_is_refused():
    model = fitted("dt")
    blob = model.dump()
    source, out = zipfile.ZipFile(io.BytesIO(blob)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as tampered:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "schema.json":
                schema = data.decode()
                assert '"__module__": "sklearn.tree._tree"' in schema
                schema = schema.replace('"__class__": "Tree"', '"__class__": "system"')
                data = schema.replace('"__module__": "sklearn.tree._tree"', '"__module__": "os"').encode()
            tampered.writestr(item, data)
    with pytest.raises(ZooError, match=r"untrusted types \['os.system'\]"):
        model.load(out.getvalue())
    with pytest.raises(ZooError, match="is not a skops archive"):
        model.load(b"\x80\x04not a zip")
    assert skops.io.get_untrusted_types(data=blob) == ["sklearn.tree._tree.Tree"]  # the list we trust


@pytest.mark.parametrize("name", ["dt", "rf"])
def test_pure_leaves_give_finite_clipped_logits(name):
    spec = tiny_spec()
    train = arrays(spec, 200, seed=0)
    train["y"] = (train["x_cat"][:, 0] >= 3).astype(np.float32)  # separable: every leaf pure
    # dt: raw leaf shares; rf: every tree sees the deciding field, so all trees agree
    certain = {"leaf_smoothing": 0.0} if name == "dt" else {"max_features": 1.0}
    model = make(name, spec, min_samples_leaf=1, **certain)
    model.fitted = model.fit_model(train, train)
    probability = model.fitted.predict_proba(model.features(train))[:, 1]
    assert set(np.unique(probability)) == {0.0, 1.0}
    logits = model.predict_logit(train)
    assert np.isfinite(logits).all()
    np.testing.assert_allclose(np.abs(logits), np.log((1 - PROB_CLIP) / PROB_CLIP))
    np.testing.assert_array_equal(logits > 0, train["y"] == 1)


def test_decision_tree_leaves_are_shrunk_toward_the_training_bad_rate():
    spec = tiny_spec()
    train = arrays(spec, 300, seed=0)
    model = make("dt", spec, max_depth_grid=[4], min_samples_leaf=5, leaf_smoothing=10.0)
    assert isinstance(model, DecisionTree)
    model.fitted = model.fit_model(train, arrays(spec, 100, seed=1))
    leaf = model.fitted.apply(model.features(train))
    prior = train["y"].mean()
    for node in np.unique(leaf):  # from the training rows themselves: (bad + m p0) / (n + m)
        rows = train["y"][leaf == node]
        expected = (rows.sum() + 10.0 * prior) / (len(rows) + 10.0)
        assert model.node_probability(model.fitted)[node] == pytest.approx(expected, rel=1e-6)
    raw = model.fitted.predict_proba(model.features(train))[:, 1]
    smoothed = model.probability(model.fitted, model.features(train))
    assert raw.min() == 0.0 and smoothed.min() > 0.0, "a pure leaf, no longer certain"


@pytest.mark.parametrize("name", MODELS)
def test_missing_values_and_unseen_categories_score(name):
    spec = tiny_spec()
    train = arrays(spec, 200, seed=0)
    assert np.isnan(train["x_raw"]).any(), "the planted rows carry missing numerics"
    model = fitted(name, spec)
    rows = arrays(spec, 4, seed=7)
    rows["x_raw"][:] = np.nan
    rows["x_cat"][:] = [[MISSING_INDEX] * 2, [UNSEEN_INDEX] * 2, [MISSING_INDEX, UNSEEN_INDEX], [3, 4]]
    logits = model.predict_logit(rows)
    assert logits.shape == (4,) and np.isfinite(logits).all()


def test_unseen_categories_go_where_the_booster_sends_missing_values():
    spec = tiny_spec(1, 1, crosses=False, missing_indicator=False)
    model = make("gbdt", spec)
    assert isinstance(model, HistGradientBoosting)
    train = arrays(spec, 300, seed=0)
    train["x_cat"][train["x_cat"] == UNSEEN_INDEX] = 2  # as in real data: no unseen rows in training
    model.fitted = model.fit_model(train, arrays(spec, 100, seed=1))
    rows = arrays(spec, 2, seed=3)
    rows["x_cat"][:, 0] = [UNSEEN_INDEX, 2]
    rows["x_raw"][:] = 100.0
    features = model.features(rows)
    features[1, 0] = np.nan
    unseen, missing = model.fitted.decision_function(features)
    assert unseen == missing


def test_decision_tree_keeps_the_best_depth_on_validation_the_shallower_on_a_tie():
    spec = tiny_spec()
    train, val = arrays(spec, 400, seed=0), arrays(spec, 200, seed=1)
    for part in (train, val):  # an interaction of two numerics: depth 1 cannot express it
        part["y"] = ((part["x_raw"][:, 0] > 100) == (part["x_raw"][:, 1] > 100)).astype(np.float32)
    model = make("dt", spec, max_depth_grid=[1, 3, 8], min_samples_leaf=5)
    assert model.fit_model(train, val).max_depth == 3
    for part in (train, val):  # one threshold on one numeric: depth 1 is already exact
        part["y"] = (part["x_raw"][:, 0] > 100).astype(np.float32)
    assert model.fit_model(train, val).max_depth == 1


def test_gbdt_stops_at_the_best_validation_round_with_the_same_trees():
    spec = tiny_spec()
    model = make("gbdt", spec, iterations=400, learning_rate=0.3)
    assert isinstance(model, HistGradientBoosting)
    train, val = arrays(spec, 200, seed=0), arrays(spec, 100, seed=1)
    model.fitted = model.fit_model(train, val)
    probe = model.booster(400, early_stopping=True)
    probe.fit(model.features(train), train["y"], X_val=model.features(val), y_val=val["y"])
    best = int(np.argmax(probe.validation_score_))
    assert 1 <= best < probe.n_iter_ < 400, "stopped early, past its best round"
    assert model.fitted.n_iter_ == best
    rows = model.features(arrays(spec))
    staged = list(probe.staged_decision_function(rows))[best - 1]
    np.testing.assert_allclose(model.fitted.decision_function(rows), staged, rtol=0, atol=1e-12)


def test_a_bad_hyperparameter_names_its_value():
    spec = tiny_spec()
    with pytest.raises(ValueError, match=r"max_depth_grid=\[0, 3\], expected a non-empty list"):
        DecisionTree(feature_spec=spec, max_depth_grid=[0, 3])
    with pytest.raises(ValueError, match="leaf_smoothing=-1.0, expected a number >= 0"):
        DecisionTree(feature_spec=spec, leaf_smoothing=-1.0)
    with pytest.raises(ValueError, match="max_bins=300, expected an integer in"):
        HistGradientBoosting(feature_spec=spec, max_bins=300)


@pytest.mark.parametrize("name", MODELS)
def test_a_real_run_writes_a_checkpoint_zoo_predict_scores(name, make_cfg, tmp_path):
    extra = [f"model.{k}={v}" for k, v in TINY_OVERRIDES.items() if k in shipped_config(name)]
    run_dir = tmp_path / "run"
    metrics = train(make_cfg(f"model={name}", "dataset=german", *extra), run_dir)
    assert 0.6 < metrics["test"]["auc"] <= 1.0
    with resources.as_file(resources.files("zoo.datasets").joinpath("german_credit.csv")) as path:
        source = tmp_path / "german.csv"
        pd.read_csv(path).to_csv(source, index=False)
    out = tmp_path / "scores.parquet"
    summary = predict_file(run_dir, source, out)
    assert summary.rows == 1000
    saved = pd.read_parquet(run_dir / "predictions.parquet")
    merged = saved.merge(pd.read_parquet(out), on="row", suffixes=("_run", "_scored"))
    assert len(merged) == len(saved) == 400
    np.testing.assert_array_equal(merged["prob_run"].to_numpy(), merged["prob_scored"].to_numpy())
    assert json.loads((run_dir / "metrics.json").read_text())["model"] == name
