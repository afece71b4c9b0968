"""attention_rules: the attention network's masking, a planted rule found and selected, every
selected rule within the constraints, a JSON checkpoint that predicts identically, reason codes,
and a real run that writes rules.md / rules.csv, rule figures in metrics.json and `zoo predict`
reasons."""

from __future__ import annotations

import functools
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from zoo.models.attention_rules import AttentionRules
from zoo.predict import predict_file
from zoo.rules.attention import AttentionFit, RuleAttention, fit_attention
from zoo.rules.extract import coverage
from zoo.rules.select import rule_stats
from zoo.rules.terms import rules_from_json
from zoo.testing import build, default_config, planted_batch, tiny_spec, to_arrays
from zoo.train import train


@functools.cache
def shipped() -> dict:
    return default_config("attention_rules")


def make(spec, **overrides) -> AttentionRules:
    model = build(shipped(), spec, overrides)  # with the contract's TINY_OVERRIDES
    assert isinstance(model, AttentionRules)
    return model


def planted_rows(spec, n: int, seed: int) -> dict[str, np.ndarray]:
    """High risk (90% bad) when cat_0 = 'c0_1' and num_0 > 110, low (10%) elsewhere."""
    rows = to_arrays(planted_batch(spec, n, seed, raw_values=True))
    planted = (rows["x_cat"][:, 0] == 3) & (rows["x_raw"][:, 0] > 110)
    noise = np.random.default_rng(seed).random(n)
    rows["y"] = np.where(planted, noise < 0.9, noise < 0.1).astype(np.float32)
    return rows


@functools.cache
def planted_fit() -> tuple[AttentionRules, dict[str, np.ndarray]]:
    spec = tiny_spec(crosses=False)
    train_rows, val_rows = planted_rows(spec, 800, 2), planted_rows(spec, 400, 3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = make(spec, n_trees=60)
        model.fitted = model.fit_model(train_rows, val_rows)
    return model, train_rows


def test_attention_is_masked_to_the_rules_a_row_satisfies():
    torch.manual_seed(0)
    net = RuleAttention(n_rules=4, cardinalities=[5], n_numeric=2)
    with torch.no_grad():
        net.values.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]))
    active = torch.tensor([[True, False, True, False], [False, False, False, False], [True] * 4])
    x_cat, x_num = torch.tensor([[2], [3], [4]]), torch.randn(3, 2)
    logits, attention = net(x_cat, x_num, active)
    assert torch.all(attention[~active] == 0)
    torch.testing.assert_close(attention[0].sum(), torch.tensor(1.0))
    torch.testing.assert_close(logits[1], net.bias)  # no rule: the base log-odds alone
    # uniform attention is the additive rule model: bias + the sum of the active rules' values
    with torch.no_grad():
        net.keys.zero_()
    logits, _ = net(x_cat, x_num, active)
    torch.testing.assert_close(logits[2], net.bias + net.values.sum())
    torch.testing.assert_close(logits[0], net.bias + 1.5)


def test_the_planted_rule_is_selected():
    model, rows = planted_fit()
    texts = model.fitted["table"]["rule"]
    both = [t for t in texts if re.search(r"cat_0 = 'c0_1'", t) and re.search(r"num_0 > 1(0\d|1\d)", t)]
    assert both, texts
    # its canonical form covers the planted rows
    planted = (rows["x_cat"][:, 0] == 3) & (rows["x_raw"][:, 0] > 110)
    rules = rules_from_json(model.fitted["rules"])
    found = coverage([rules[texts.index(both[0])]], model.feature_spec, rows)[:, 0]
    assert (found & planted).sum() / (found | planted).sum() > 0.9
    points = model.fitted["points"][texts.index(both[0])]
    assert points > 1.0, "the planted rule raises the risk"


def test_every_selected_rule_meets_every_constraint():
    model, rows = planted_fit()
    c = model.constraints
    rules = rules_from_json(model.fitted["rules"])
    assert 1 <= len(rules) <= c.max_rules
    covered = coverage(rules, model.feature_spec, rows)
    support, _, lift = rule_stats(covered, rows["y"])
    assert all(r.length <= c.max_length for r in rules)
    assert np.all(support >= c.min_support) and np.all(support <= 1 - c.min_support)
    assert np.all(np.abs(lift) >= c.min_lift)
    for i in range(len(rules)):
        for j in range(i):
            a, b = covered[:, i], covered[:, j]
            assert (a & b).sum() / (a | b).sum() <= c.max_overlap
    summary = model.fitted["summary"]
    assert summary["n_rules"] == len(rules) and 0 <= summary["rule_stability"] <= 1


def test_checkpoint_is_json_and_predicts_identically():
    model, rows = planted_fit()
    blob = model.dump()
    json.loads(blob)  # plain JSON, nothing pickled
    fresh = make(model.feature_spec)
    fresh.fitted = fresh.load(blob)
    np.testing.assert_array_equal(fresh.predict_logit(rows), model.predict_logit(rows))
    bad = json.dumps({**json.loads(blob), "version": 99}).encode()
    with pytest.raises(ValueError, match="format 99"):
        fresh.load(bad)


def test_score_is_the_intercept_plus_the_points_of_the_satisfied_rules():
    model, rows = planted_fit()
    covered = coverage(rules_from_json(model.fitted["rules"]), model.feature_spec, rows)
    expected = model.fitted["intercept"] + covered @ np.array(model.fitted["points"])
    np.testing.assert_allclose(model.predict_logit(rows), expected, rtol=1e-5, atol=1e-5)
    reasons = model.satisfied_rules(rows, top=len(model.fitted["points"]))
    texts = model.fitted["table"]["rule"]
    for row, reason in zip(covered[:50], reasons[:50], strict=True):
        assert sorted(t for t in texts if t in reason) == sorted(
            t for t, hit in zip(texts, row, strict=True) if hit
        )


def attention_fit(seed: int, device: str = "cpu") -> AttentionFit:
    """A short fit of the attention network on 160 random rows and 6 random rules."""
    gen = torch.Generator().manual_seed(11)

    def rows(n: int) -> dict[str, torch.Tensor]:
        return {
            "x_cat": torch.randint(0, 5, (n, 2), generator=gen),
            "x_num": torch.randn(n, 2, generator=gen),
            "R": torch.rand(n, 6, generator=gen) < 0.4,
            "y": (torch.rand(n, generator=gen) < 0.3).float(),
        }

    train_rows, val_rows = rows(160), rows(80)
    settings = {"d_attention": 4, "hidden": 8, "learning_rate": 1e-2, "l1": 1e-3, "entropy": 1e-3}
    return fit_attention(
        train_rows,
        val_rows,
        cardinalities=[5, 5],
        n_numeric=2,
        batch_size=32,
        max_epochs=5,
        patience=5,
        seed=seed,
        device=device,
        **settings,
    )


def test_the_attention_fit_depends_on_its_seed_alone_and_leaves_torch_random_state():
    before = torch.get_rng_state()
    first, again, other = attention_fit(1), attention_fit(1), attention_fit(2)
    assert torch.equal(torch.get_rng_state(), before)
    np.testing.assert_array_equal(first.weight, again.weight)
    np.testing.assert_array_equal(first.value, again.value)
    assert not np.array_equal(first.value, other.value)


@pytest.mark.gpu
def test_the_attention_fit_runs_on_cuda_with_the_cpu_order():
    on_cpu, on_cuda = attention_fit(1), attention_fit(1, device="cuda")
    assert on_cuda.epochs == on_cpu.epochs
    np.testing.assert_allclose(on_cuda.value, on_cpu.value, atol=1e-3)


def test_attention_rules_fit_their_network_on_the_module_device(monkeypatch):
    class Stop(Exception):
        pass

    devices = []

    def spy(*args, device, **kwargs):
        devices.append(torch.device(device))
        raise Stop

    monkeypatch.setattr("zoo.models.attention_rules.fit_attention", spy)
    spec = tiny_spec(crosses=False)
    model = make(spec).to("meta")  # no parameters of its own: only its device moves
    with pytest.raises(Stop):
        model.fit_model(planted_rows(spec, 300, 2), planted_rows(spec, 150, 3))
    assert devices == [torch.device("meta")]


def test_two_fits_with_the_same_run_seed_give_the_same_rules_and_weights():
    spec = tiny_spec(crosses=False)
    train_rows, val_rows = planted_rows(spec, 300, 2), planted_rows(spec, 150, 3)

    def fitted(seed: int) -> dict:
        model = make(spec, max_epochs=10)
        model.run_seed = seed  # as the DataModule's seed sets it when a Trainer fits the model
        return model.fit_model(train_rows, val_rows)

    first, again, other = fitted(0), fitted(0), fitted(1)
    assert json.dumps(first) == json.dumps(again)
    assert first["table"]["attention_weight"] != other["table"]["attention_weight"]


def test_bad_settings_are_refused():
    spec = tiny_spec()
    with pytest.raises(ValueError, match="ensemble='xgb'"):
        make(spec, ensemble="xgb")
    with pytest.raises(ValueError, match="max_overlap=1.5"):
        make(spec, max_overlap=1.5)
    with pytest.raises(ValueError, match=r"batch_size=0, expected a positive integer"):
        make(spec, batch_size=0)
    with pytest.raises(ValueError, match=r"l1=-0.1, expected a number >= 0"):
        make(spec, l1=-0.1)


def test_a_run_writes_rules_and_reason_codes(make_cfg, tmp_path):
    cfg = make_cfg(
        "model=attention_rules",
        "dataset=german",
        "model.n_trees=30",
        "model.n_bootstrap=2",
        "model.max_epochs=10",
    )
    result = train(cfg, run_dir=tmp_path)
    run_dir = tmp_path
    table = pd.read_csv(run_dir / "rules.csv")
    assert len(table) == result["test"]["n_rules"] >= 1
    assert {"rule", "points", "support", "bad_rate", "lift", "attention_weight", "stability"} <= set(table)
    text = (run_dir / "rules.md").read_text()
    assert "IF " in text and " THEN risk" in text
    assert 0 < result["test"]["rule_coverage"] <= 1 and result["test"]["rule_length"] >= 1
    assert result["test"]["auc"] > 0.6
    # zoo predict --reasons explains each row in the columns every model writes
    from importlib import resources

    source = resources.files("zoo.datasets") / "german_credit.csv"
    out = tmp_path / "scores.csv"
    predict_file(run_dir, source, out, reasons=3)
    scores = pd.read_csv(out, keep_default_na=False)
    assert len(scores) == 1000 and "reasons" not in scores
    assert {"reason_1", "reason_2", "reason_3", "reason_method"} <= set(scores.columns)
    assert (scores["reason_1"] != "").any()


def test_lift_in_the_table_is_the_bad_rate_over_the_base_rate_as_for_the_rule_baselines():
    model, rows = planted_fit()
    table = pd.DataFrame(model.fitted["table"])
    covered = coverage(rules_from_json(model.fitted["rules"]), model.feature_spec, rows)
    y = rows["y"].astype(bool)
    bad_rate = np.array([y[covered[:, j]].mean() for j in range(covered.shape[1])])
    np.testing.assert_allclose(table["bad_rate"], bad_rate)
    # one definition for attention_rules, rulefit and cart: lift = bad rate / base rate (1 = average)
    np.testing.assert_allclose(table["lift"], bad_rate / y.mean())
    assert ((table["lift"] > 1) == (table["bad_rate"] > y.mean())).all()
