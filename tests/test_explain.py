"""Explanations: field importance, contributions and reason codes, partial dependence, model card."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from zoo.errors import ZooError
from zoo.explain import contributions, explain_settings, reason_codes
from zoo.explain.contributions import occlusion
from zoo.explain.fields import field_text, fields_of, model_logits, substitute
from zoo.explain.importance import PERMUTATION, field_importance
from zoo.explain.reference import sample_reference
from zoo.models.base import CreditModel
from zoo.models.linear import LogisticRegression
from zoo.testing import TINY_OVERRIDES, default_config, planted_batch, ready, tiny_batch, tiny_spec
from zoo.train import build_model, train


def arrays(batch):
    return {k: v.numpy() for k, v in batch.items()}


class OneFieldModel(CreditModel):
    """A non-additive model whose logit depends on num_0 alone (through a saturating curve)."""

    def forward(self, batch):
        return 4.0 * torch.tanh(batch["x_num"][:, 0]) + 0.0 * batch["x_cat"][:, 0]


def test_linear_contributions_sum_to_the_logit_minus_the_mean_training_logit():
    spec = tiny_spec()
    torch.manual_seed(0)
    model = LogisticRegression(feature_spec=spec, use_crosses=True).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    rows, reference = arrays(tiny_batch(spec, 40, seed=1)), arrays(tiny_batch(spec, 300, seed=2))
    found = contributions(model, rows, reference)
    assert found.method.startswith("exact linear") and sorted(found.fields) == sorted(
        f.name for f in fields_of(spec)
    )  # one column per field: num_1 and its missing indicator together
    baseline = model_logits(model, reference).mean()
    np.testing.assert_allclose(found.values.sum(1), model_logits(model, rows) - baseline, atol=1e-5)


def test_occlusion_puts_a_planted_field_first_and_gives_the_same_reasons_twice():
    spec = tiny_spec()
    model = OneFieldModel(feature_spec=spec).eval()
    batch = arrays(tiny_batch(spec, 30, seed=3))
    reference = arrays(tiny_batch(spec, 50, seed=4))
    found = contributions(model, batch, reference)
    assert found.method.startswith("occlusion")
    others = [j for j, name in enumerate(found.fields) if name != "num_0"]
    assert np.abs(found.values[:, others]).max() == 0.0  # fields the model ignores get nothing
    raw = pd.DataFrame({"num_0": spec.field("num_0").decode(batch["x_num"][:, 0])})
    table = reason_codes(found, raw, spec, 2)
    pushed = found.values[:, found.fields.index("num_0")] > 0
    assert pushed.any() and (~pushed).any()
    assert table["reason_1"][pushed].str.startswith("num 0: ").all()
    assert (table["reason_1"][~pushed] == "").all() and (table["reason_2"] == "").all()
    # the same applicant, alone and in another batch, gets the same contributions
    again = contributions(model, {k: v[[5, 5]] for k, v in batch.items()}, reference)
    np.testing.assert_array_equal(again.values[0], again.values[1])
    np.testing.assert_allclose(again.values[0], found.values[5], rtol=0, atol=1e-6)


class InteractingModel(CreditModel):
    """A small non-additive model: every field enters, with interactions between fields."""

    def forward(self, batch):
        cat = batch["x_cat"].double()
        num = torch.nan_to_num(batch["x_num"].double())
        cross = batch["x_cross"].double().sum(1)
        return torch.tanh(num[:, 0] * cat[:, 0] / 4) + torch.sin(cat[:, 1] + num[:, 1]) + 0.1 * cross


def test_occlusion_gives_the_straightforward_mean_over_reference_rows_with_fewer_forward_passes():
    spec = tiny_spec()
    model = InteractingModel(feature_spec=spec).eval()
    rows, reference = arrays(tiny_batch(spec, 60, seed=8)), arrays(tiny_batch(spec, 50, seed=9))
    scored = []

    def logit(a):
        scored.append(len(a["x_cat"]))
        return model_logits(model, a)

    fields = fields_of(spec)
    fast = occlusion(logit, rows, reference, fields, n_reference=8)

    # straightforward: every field replaced by each of the first 8 reference rows, in turn
    def replaced(field, r):
        return model_logits(model, substitute(rows, field, reference, np.full(60, r)))

    base = model_logits(model, rows)
    naive = np.stack([base - np.mean([replaced(f, r) for r in range(8)], 0) for f in fields], 1)
    np.testing.assert_allclose(fast, naive, rtol=0, atol=1e-9)
    assert (np.abs(naive).max(0) > 0.01).all()  # every field matters to this model
    # forward rows per field: fewer than 60 x 8 where reference rows share values or rows keep their own
    per_field = dict(zip([f.name for f in fields], scored[1:], strict=True))
    assert per_field["cat_0"] < 300 and per_field["cat_0*cat_1"] < 480 and per_field["num_0"] == 480


def test_reason_codes_read_as_the_row_by_row_text_of_each_rows_top_fields():
    spec = tiny_spec()
    rng = np.random.default_rng(0)
    n, names = 300, ["cat_0", "cat_1", "num_0", "num_1", "cat_0*cat_1"]
    frame = pd.DataFrame(
        {
            "cat_0": rng.choice(["a", "b", None], n),
            "cat_1": rng.choice(["x", "y"], n),
            "num_0": rng.choice([12.0, 48.0, 2.5, np.nan], n),
            "num_1": rng.integers(0, 5, n),
        }
    )
    values = rng.normal(size=(n, len(names)))
    values[:, 2] = np.round(values[:, 2])  # ties between fields, broken by field order
    table = reason_codes(contributions_of(values, names), frame, spec, 3, units={"num_0": "months"})
    for i in range(n):
        expected = []
        for f in np.argsort(-values[i], kind="stable")[:3]:
            if values[i, f] <= 0:
                expected.append("")
            elif names[f] == "cat_0*cat_1":
                first = "(missing)" if pd.isna(frame["cat_0"][i]) else frame["cat_0"][i]
                expected.append(f"cat 0*cat 1: {first} | {frame['cat_1'][i]}")
            else:
                expected.append(field_text(names[f], frame[names[f]][i], {"num_0": "months"}))
        assert table.loc[i, ["reason_1", "reason_2", "reason_3"]].tolist() == expected
    assert "num 0: 48 months" in set(table["reason_1"]) and "num 0: (missing)" in set(table["reason_1"])
    assert (table["reason_method"] == "test").all()


def contributions_of(values, names):
    from zoo.explain import Contributions

    return Contributions(values, names, "test")


def test_permutation_importance_ranks_the_planted_field_first():
    spec = tiny_spec()
    model = OneFieldModel(feature_spec=spec).eval()
    val = arrays(planted_batch(spec, 200, seed=5))
    val["y"] = (
        np.random.default_rng(0).random(200) < 1 / (1 + np.exp(-4 * np.tanh(val["x_num"][:, 0])))
    ).astype(np.float32)
    table = field_importance(model, val, val, repeats=3, seed=0)
    permuted = table[table["method"] == PERMUTATION]
    assert permuted["field"].iloc[0] == "num_0" and permuted["importance"].iloc[0] > 0.1
    assert len(permuted) == len(fields_of(spec)) and (permuted["importance"].iloc[1:] == 0).all()


def test_catboost_shap_contributions_sum_to_the_logit_minus_the_expected_value():
    spec = tiny_spec()
    config = {**default_config("catboost"), "iterations": 30, "thread_count": 1}
    torch.manual_seed(0)
    model = ready(build_model(config, spec))
    rows = arrays(planted_batch(spec, 50, seed=7, raw_values=True))
    found = contributions(model, rows, sample_reference(rows))
    assert found.method.startswith("catboost SHAP") and set(found.fields) == {
        "cat_0",
        "cat_1",
        "num_0",
        "num_1",
    }
    expected = model.booster.get_feature_importance(data=model._pool(rows, labels=False), type="ShapValues")[
        0, -1
    ]
    np.testing.assert_allclose(found.values.sum(1), model.predict_logit(rows) - expected, atol=1e-5)
    native = model.native_importance(rows, rows)
    assert np.isclose(native["importance"].sum(), 100.0)


def test_a_run_writes_importance_partial_dependence_and_a_model_card(make_cfg, tmp_path):
    # The shipped number of fields (make_cfg's quick explanations show two), fewer repeats.
    cfg = make_cfg("model=lr", "dataset=german", "explain.permutation_repeats=2", "explain.top_fields=6")
    result = train(cfg, tmp_path)
    table = pd.read_csv(tmp_path / "importance.csv")
    assert list(table.columns) == ["field", "method", "importance", "std", "rank"]
    permuted = table[table["method"] == PERMUTATION]
    assert len(permuted) == 24 and permuted["rank"].tolist() == list(range(1, 25))  # 20 fields, 4 crosses
    native = table[table["method"] == "linear term std over training rows"]
    assert len(native) == 20 and (native["importance"] >= 0).all()  # lr ignores crosses by default
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for name in ("importance.csv", "importance.png", "partial_dependence.png", "model_card.md"):
        assert name in manifest["artifacts"]
    card = (tmp_path / "model_card.md").read_text()
    for section in (
        "## Data",
        "## Model",
        "## Performance",
        "## Calibration",
        "## Main fields",
        "## Warnings",
    ):
        assert section in card
    assert manifest["data"]["sha256"] in card and f"{result['test']['auc']:.4f} [" in card
    # german's undeclared protected-like columns are the card's only warnings (docs/fairness.md)
    warnings = card.split("## Warnings\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(warnings) == 3 and all("looks like a protected characteristic" in w for w in warnings)
    assert "| train | 600 | 0.300 |" in card


def test_bad_explain_settings_are_refused():
    assert explain_settings(None)["permutation_repeats"] == 5
    with pytest.raises(ZooError, match=r"explain.permutation_repeats=0, expected an integer >= 1"):
        explain_settings({"explain": {"permutation_repeats": 0}})
    with pytest.raises(ZooError, match="explain.repeats is not a setting"):
        explain_settings({"explain": {"repeats": 3}})


def test_tiny_overrides_keep_boosters_small():
    assert TINY_OVERRIDES["iterations"] <= 30  # the CatBoost test above relies on a quick fit


def test_the_permutation_auc_is_scikit_learns_with_ties():
    from sklearn.metrics import roc_auc_score

    from zoo.explain.importance import _auc

    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(5, 300))
        y = np.r_[0.0, 1.0, rng.integers(0, 2, n - 2).astype(float)]
        score = np.round(rng.normal(size=n), 1)  # many ties
        assert _auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert np.isnan(_auc(np.ones(4), np.arange(4.0)))
