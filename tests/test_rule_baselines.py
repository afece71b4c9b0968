"""The rule baselines (rulefit, cart): checkpoints that score identically, rules that mean on the
raw data exactly what the fitted model computes, CART leaves that partition the rows, a planted
rule found, and the rules table in the run directory."""

from __future__ import annotations

import functools
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from zoo.errors import ZooError
from zoo.models.rule_baselines import CART, RuleFit
from zoo.models.sklearn_trees import logit_of
from zoo.rules.extract import coverage
from zoo.testing import build, default_config, edge_specs, fit_tree, planted_batch, tiny_spec, to_arrays

#: RuleFit made fast for tiny data: fewer trees, the weakest L1 penalty within max_rules (no CV).
FAST_RULEFIT = {"n_estimators": 10, "cv": False}


@functools.cache
def shipped_config(name: str) -> dict:
    return default_config(name)


def make(name: str, spec=None, **overrides):
    settings = {**(FAST_RULEFIT if name == "rulefit" else {}), **overrides}
    return build(shipped_config(name), spec or tiny_spec(), settings)


def arrays(spec, n: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    return to_arrays(planted_batch(spec, n, seed, raw_values=True))


def fitted(name: str, spec=None, n: int = 200, **overrides):
    spec = spec or tiny_spec()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = make(name, spec, **overrides)
        fit_tree(
            model, planted_batch(spec, n, 0, raw_values=True), planted_batch(spec, 100, 1, raw_values=True)
        )
    return model.eval()


class TrainOnly:
    """The part of the DataModule `write_artifacts` reads: `loader("train")`."""

    def __init__(self, batch):
        self.batch = batch

    def loader(self, split: str):
        assert split == "train"
        return [self.batch]


@pytest.mark.parametrize("name", ["rulefit", "cart"])
def test_dump_and_load_give_identical_predictions(name):
    for label, spec in edge_specs().items():
        model = fitted(name, spec, n=150)
        fresh = make(name, spec)
        fresh.fitted = fresh.load(model.dump())
        rows = arrays(spec, 60, seed=5)
        np.testing.assert_array_equal(fresh.predict_logit(rows), model.predict_logit(rows), err_msg=label)
        assert fresh.rule_summary() == model.rule_summary(), label


def test_rulefit_scores_as_imodels_does():
    model = fitted("rulefit")
    assert isinstance(model, RuleFit) and model.fitted.rules, "a fitted model with rules"
    state, estimator = model.fitted, model.estimator
    rows = arrays(model.feature_spec, 300, seed=3)
    matrix = model.matrix(rows, state.medians, state.indicated)
    # the log-odds of imodels' logistic regression, and the rules it holds
    np.testing.assert_allclose(
        model.predict_logit(rows), estimator._predict_continuous_output(matrix), rtol=0, atol=1e-10
    )
    rules = [str(r) for r in estimator.rules_without_feature_names_]
    np.testing.assert_array_equal(state.covered(matrix), estimator.transform(matrix, rules).astype(bool))


def test_rulefit_rules_read_in_field_names_and_mean_what_the_model_computes():
    spec = tiny_spec()
    model = fitted("rulefit", spec, n=300, max_rules=40)
    assert model.fitted.indicated == ("num_1",), "the numeric with missing values gets its column"
    texts = [r.text() for r in model.rules()]
    assert texts and not any(re.search(r"\bX_?\d", t) for t in texts), texts
    assert all(re.search(r"\b(cat|num)_\d", t) for t in texts), texts
    # imodels' own rule strings use the readable column names too
    assert all("X_" not in r.rule for r in model.estimator.rules_)
    # Each canonical rule, evaluated on the raw values (NaN for missing), selects exactly the rows
    # its imodels rule selects on the imputed matrix: thresholds, labels and missingness agree.
    rows = arrays(spec, 400, seed=9)
    assert np.isnan(rows["x_raw"]).any(), "rows with missing values"
    state = model.fitted
    on_matrix = state.covered(model.matrix(rows, state.medians, state.indicated))
    np.testing.assert_array_equal(coverage(model.rules(), spec, rows), on_matrix)
    summary = model.rule_summary()
    assert summary["n_rules"] == len(state.rules) == int(np.count_nonzero([r.coef for r in state.rules]))
    assert summary["mean_length"] == pytest.approx(np.mean([r.length for r in model.rules()]))


def test_rulefit_refuses_a_checkpoint_that_is_not_its_state():
    model = fitted("rulefit")
    with pytest.raises(ZooError, match="is not a zoo.rulefit/1 JSON state"):
        model.load(b"PK\x03\x04 not json")
    data = json.loads(model.dump())
    data["columns"][0] = "other_field"
    with pytest.raises(ZooError, match="reads columns .* expected"):
        model.load(json.dumps(data).encode())


def test_cart_leaf_rules_partition_the_rows_and_score_the_leaf_log_odds():
    spec = tiny_spec()
    for smoothing in (0.0, 20.0):
        model = fitted("cart", spec, n=400, leaf_smoothing=smoothing, min_samples_leaf=10)
        assert isinstance(model, CART)
        leaves = model.leaves()
        assert len(leaves) > 4, "a tree with several leaves"
        rows = arrays(spec, 500, seed=4)
        covered = coverage([r for _, r in leaves], spec, rows)  # RuleEncoder on the raw values
        assert (covered.sum(1) == 1).all(), "every row satisfies exactly one leaf rule"
        nodes = np.array([node for node, _ in leaves])
        np.testing.assert_array_equal(nodes[covered.argmax(1)], model.fitted.apply(model.features(rows)))
        table = model.rules_table(rows)
        assert len(table) == len(leaves) and table["support"].sum() == pytest.approx(1.0)
        # points: the leaf's log-odds less the root's, so the base plus a row's points is its logit
        relative = model.leaf_points()[nodes] - model.leaf_points()[0]
        points = dict(zip((r.text() for _, r in leaves), relative, strict=True))
        np.testing.assert_array_equal(table["points"], table["rule"].map(points))
        on_train = model.rules_table(arrays(spec, 400, seed=0))
        assert ((on_train["points"] > 0) == (on_train["lift"] > 1)).all(), "risk up = above the bad rate"
        tree = model.fitted
        if smoothing == 0.0:  # raw leaf rates: the tree's own probabilities
            expected = logit_of(tree.predict_proba(model.features(rows))[:, 1])
            np.testing.assert_allclose(model.predict_logit(rows), expected, rtol=0, atol=1e-9)
        else:  # m-estimate from the training rows of each leaf
            train = arrays(spec, 400, seed=0)
            leaf = tree.apply(model.features(train))
            labels = train["y"].astype(np.float64)
            prior = labels.mean()
            for node in nodes:
                y = labels[leaf == node]
                p = (y.sum() + smoothing * prior) / (len(y) + smoothing)
                assert model.leaf_points()[node] == pytest.approx(np.log(p / (1 - p)), rel=1e-9)


def test_cart_finds_a_planted_rule():
    # high risk when cat_0 = 'c0_1' and num_0 > 110 (90% bad), low risk elsewhere (10% bad)
    spec = tiny_spec(crosses=False)
    rows = arrays(spec, 800, seed=2)
    planted = (rows["x_cat"][:, 0] == 3) & (rows["x_raw"][:, 0] > 110)
    noise = np.random.default_rng(0).random(len(planted))
    rows["y"] = np.where(planted, noise < 0.9, noise < 0.1).astype(np.float32)
    both_terms = r"cat_0 = 'c0_1' AND num_0 > 1(09\.9|10)"
    # depth 2: the riskiest leaf is the planted rule itself
    model = make("cart", spec, max_depth=2)
    model.fitted = model.fit_model(rows, rows)
    top = model.rules_table(rows).iloc[0]
    assert re.fullmatch(both_terms + r"\d* *(or missing)?", top["rule"]), top["rule"]
    found = next(r for _, r in model.leaves() if r.text() == top["rule"])
    np.testing.assert_array_equal(coverage([found], spec, rows)[:, 0], planted)
    # depth 4 (the default) refines it: the high-risk leaves all state it and together cover it
    model = make("cart", spec)
    model.fitted = model.fit_model(rows, rows)
    table = model.rules_table(rows)
    risky = table[table["bad_rate"] > 0.5]["rule"].tolist()
    assert risky and all(re.match(both_terms, text) for text in risky), risky
    leaves = [r for _, r in model.leaves() if r.text() in risky]
    covered = coverage(leaves, spec, rows).any(1)
    assert (covered & planted).sum() / (covered | planted).sum() > 0.95, "covers the planted rows"


@pytest.mark.parametrize("name", ["rulefit", "cart"])
def test_write_artifacts_writes_the_rules_table(name, tmp_path):
    spec = tiny_spec()
    model = fitted(name, spec)
    batch = planted_batch(spec, 200, 0, raw_values=True)
    model.write_artifacts(tmp_path, TrainOnly(batch))
    table = pd.read_csv(tmp_path / "rules.csv")
    assert list(table.columns) == ["rule", "points", "support", "bad_rate", "lift", "length"]
    assert len(table) == model.rule_summary()["n_rules"] > 0
    assert ((table["support"] > 0) & (table["support"] <= 1)).all()
    y = batch["y"].numpy()
    np.testing.assert_allclose(table["lift"], table["bad_rate"] / y.mean())
    text = (tmp_path / "rules.md").read_text()
    assert text.count("| IF ") == len(table) and "THEN risk" in text
    # the figures zoo-train adds to metrics.json
    summary = model.split_summary([batch])
    assert summary["n_rules"] == len(table) and summary["rule_length"] == pytest.approx(
        table["length"].mean()
    )
    assert 0.0 < summary["rule_coverage"] <= 1.0


def test_a_bad_hyperparameter_names_its_value():
    spec = tiny_spec()
    with pytest.raises(ValueError, match="tree_size=1, expected an integer >= 2"):
        RuleFit(feature_spec=spec, tree_size=1)
    with pytest.raises(ValueError, match="alpha=0.0, expected a positive number or null"):
        RuleFit(feature_spec=spec, alpha=0.0)
    with pytest.raises(ValueError, match="class_weight='even', expected null or 'balanced'"):
        CART(feature_spec=spec, class_weight="even")
