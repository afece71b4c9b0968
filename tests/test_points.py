"""Scores in points: the PDO scaling against a hand computation, scorecards whose attribute points
sum to the score row by row, the `score` column of `zoo predict`, reason codes by points lost, and
bad settings."""

from __future__ import annotations

import json
import math
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from zoo.cli import main as zoo_main
from zoo.errors import ZooError
from zoo.explain.fields import field_text, model_logits
from zoo.points import (
    BASE_ROW,
    POINTS_LOST_METHOD,
    ScoreScaling,
    check_additive,
    points_lost,
    row_points,
    scaling_from,
    scorecard_table,
)
from zoo.predict import load_run, predict_file
from zoo.testing import build, default_config, ready, tiny_batch, tiny_spec, to_arrays
from zoo.train import train

GERMAN = resources.files("zoo.datasets") / "german_credit.csv"
#: The run below is scaled this way, not by the defaults, so `zoo predict` must read the run's own.
RUN_SCALING = ScoreScaling(base_points=500.0, base_odds=20.0, pdo=40.0)


# --- the scaling ------------------------------------------------------------------------------


def test_points_follow_the_hand_computation():
    scaling = ScoreScaling()  # 600 points at good:bad odds 50:1, 20 points per doubling
    assert scaling.factor == pytest.approx(20 / math.log(2))
    assert scaling.offset == pytest.approx(600 - 20 * math.log2(50))
    # good:bad odds 50 is a probability of default of 1/51
    assert scaling.from_prob(1 / 51) == pytest.approx(600, abs=1e-9)
    for doublings in (-3, -1, 1, 2):
        odds = 50 * 2.0**doublings
        assert scaling.from_prob(1 / (1 + odds)) == pytest.approx(600 + 20 * doublings, abs=1e-9)
    # the logit of default is minus the log-odds of good
    assert scaling.from_logit(-math.log(50)) == pytest.approx(600, abs=1e-9)
    other = ScoreScaling(base_points=500, base_odds=20, pdo=40)
    assert other.from_prob([1 / 21, 1 / 41]) == pytest.approx([500, 540], abs=1e-9)
    # saturated float32 probabilities stay finite, a missing one stays missing
    ends = scaling.from_prob(np.array([0.0, 1.0, np.nan], dtype=np.float32))
    assert np.isfinite(ends[:2]).all() and ends[0] > 1000 > 0 > ends[1] and np.isnan(ends[2])


@pytest.mark.parametrize(
    "block, message",
    [
        ({"pdo": 0}, r"score.pdo=0, expected a number > 0"),
        ({"pdo": -20}, r"score.pdo=-20, expected a number > 0"),
        ({"base_odds": 0.0}, r"score.base_odds=0.0, expected a number > 0"),
        ({"base_points": float("inf")}, r"score.base_points=inf, expected a finite number"),
        ({"pdo": "twenty"}, r"score.pdo='twenty', expected a finite number"),
        ({"pdo": True}, r"score.pdo=True, expected a finite number"),
        ({"points": 600}, r"score.points is not a setting"),
    ],
)
def test_bad_scalings_are_refused(block, message):
    with pytest.raises(ZooError, match=message):
        scaling_from(block)


@pytest.mark.parametrize(
    "override, shown",
    [
        ("score.pdo=0", "score.pdo=0.0, expected a number > 0"),
        ("score.base_odds=-1", "score.base_odds=-1.0, expected a number > 0"),
        ("score.pdo=nan", "score.pdo=nan, expected a finite number"),
        ("score.base_points=abc", "score.base_points"),
    ],
)
def test_bad_score_settings_are_one_line_and_exit_2(zoo_train_here, tmp_path, override, shown):
    run_dir = tmp_path / "run"
    done = zoo_train_here(
        "model=lr", "trainer=fast", "logger=none", override, f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and shown in lines[0], lines
    assert not (run_dir / "metrics.json").exists()


# --- attribute points sum to the score ------------------------------------------------------------


def randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The model with every parameter drawn at random (a fitted-looking scorecard, no training)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=gen) * 0.5)
    return model.eval()


def score_from_table(table: pd.DataFrame, spec, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Each row's score rebuilt from a scorecard table alone: the base points, the points of the
    row's category of each categorical and cross, a numeric's slope times its encoded value, and
    a flag's points when set. A field absent from the table (the deep part's) adds nothing."""
    base = table.loc[table["field"] == BASE_ROW, "points"]
    assert len(base) == 1
    total = np.full(len(arrays["x_num"]), float(base.iloc[0]))
    points = {(r.field, r.attribute, r.kind): r.points for r in table.itertuples(index=False)}
    in_table = set(table["field"])
    for key, kind, fields in (("x_cat", "categorical", spec.categorical), ("x_cross", "cross", spec.crosses)):
        for j, field in enumerate(fields):
            if field.name in in_table:
                total += [points[(field.name, field.label(int(i)), kind)] for i in arrays[key][:, j]]
    for j, field in enumerate(spec.numeric):
        if field.is_indicator and field.source in in_table:
            total += points[(field.source, "(missing)", "flag")] * arrays["x_num"][:, j]
        elif field.name in in_table:
            slope = table[(table["field"] == field.name) & (table["kind"] == "slope")]["points"]
            total += float(slope.iloc[0]) * arrays["x_num"][:, j]
    return total


@pytest.mark.parametrize("name", ["lr", "lr_cross"])
def test_the_points_of_a_rows_attributes_sum_to_its_score_for_linear_models(name):
    spec = tiny_spec(3, 2)
    model = randomised(build(default_config(name), spec), seed=1)
    arrays = to_arrays(tiny_batch(spec, 200, seed=2))
    scaling = ScoreScaling()
    exact = scaling.from_logit(model_logits(model, arrays))
    table = scorecard_table(model, scaling)
    np.testing.assert_allclose(score_from_table(table, spec, arrays), exact, atol=1e-3)
    rows = row_points(model, arrays, scaling)
    assert rows is not None and rows.rest is None
    np.testing.assert_allclose(rows.score, exact, atol=1e-3)  # float32 logits: ~1e-5 points apart
    assert sorted(rows.points.columns) == sorted(
        [f.name for f in spec.categorical]
        + [f.name for f in spec.raw_numeric]
        + ([f.name for f in spec.crosses] if name == "lr_cross" else [])
    )


def test_the_wide_part_sums_with_the_deep_parts_points_to_the_score():
    spec = tiny_spec(3, 2)
    model = randomised(build(default_config("wide_deep_cross"), spec), seed=3)
    arrays = to_arrays(tiny_batch(spec, 200, seed=4))
    scaling = ScoreScaling(base_points=700, base_odds=10, pdo=30)
    exact = scaling.from_logit(model_logits(model, arrays))
    rows = row_points(model, arrays, scaling)
    assert rows is not None and rows.rest is not None and np.abs(rows.rest).max() > 1  # deep part matters
    table = scorecard_table(model, scaling)
    assert set(table["kind"]) == {"intercept", "categorical", "cross"}  # the default routing's wide part
    np.testing.assert_allclose(score_from_table(table, spec, arrays) + rows.rest, exact, atol=1e-3)
    np.testing.assert_allclose(rows.score, exact, atol=1e-3)
    with pytest.raises(ZooError, match=r"--reasons-by points needs an additive model .* WideDeep"):
        check_additive(model, arrays)


def test_attention_rules_points_of_the_satisfied_rules_sum_to_the_score():
    spec = tiny_spec(crosses=False)
    model = ready(build(default_config("attention_rules"), spec))
    arrays = to_arrays(tiny_batch(spec, 300, seed=5, raw_values=True))
    scaling = ScoreScaling()
    table = scorecard_table(model, scaling)
    rules = table[table["kind"] == "rule"]
    assert len(rules) == model.fitted["summary"]["n_rules"] >= 1
    satisfied = model._encode(model._scorer()[0], arrays).astype(np.float64)
    base = float(table.loc[table["field"] == BASE_ROW, "points"].iloc[0])
    exact = scaling.from_logit(model.predict_logit(arrays))
    np.testing.assert_allclose(base + satisfied @ rules["points"].to_numpy(), exact, atol=1e-3)
    rows = row_points(model, arrays, scaling)
    assert rows is not None and rows.rest is None
    np.testing.assert_allclose(rows.score, exact, atol=1e-3)


# --- reason codes by points lost --------------------------------------------------------------


def test_points_lost_are_the_best_training_points_of_each_field_minus_the_rows_own():
    spec = tiny_spec(2, 0, crosses=False)  # two categoricals of labels c<j>_0..c<j>_2 (indices 2..4)
    model = build(default_config("lr"), spec).eval()
    with torch.no_grad():  # log-odds of default per index (missing, unseen, three categories)
        model.categorical.weight[:, 0] = torch.tensor([0, 0, -1.0, 0.5, 2.0, 0, 0, 0.0, -0.25, 1.0])
    reference = {"x_cat": np.array([[2, 2], [3, 3], [4, 4]]), "x_num": np.zeros((3, 0), np.float32)}
    arrays = {"x_cat": np.array([[4, 3], [2, 4], [3, 2]]), "x_num": np.zeros((3, 0), np.float32)}
    found = points_lost(model, arrays, reference, ScoreScaling())
    factor = 20 / math.log(2)
    # best: cat_0 at index 2 (-1.0 log-odds), cat_1 at index 3 (-0.25); lost = factor * (w - best w)
    expected = factor * np.array([[3.0, 0.0], [0.0, 1.25], [1.5, 0.25]])
    np.testing.assert_allclose(found.values, expected, atol=1e-5)
    assert found.fields == ["cat_0", "cat_1"] and found.method == POINTS_LOST_METHOD


# --- zoo predict on a trained run -------------------------------------------------------------


@pytest.fixture(scope="module")
def lr_run(tmp_path_factory) -> Path:
    """lr_cross on german with a non-default scaling (read-only for the tests below)."""
    from hydra import compose, initialize_config_dir

    from tests.overrides import QUICK_EXPLAIN
    from zoo import registry
    from zoo.train import config_dir

    registry.store_configs(config_dir())
    run_dir = tmp_path_factory.mktemp("lr_cross")
    scaling = [f"score.{key}={getattr(RUN_SCALING, key)}" for key in ("base_points", "base_odds", "pdo")]
    with initialize_config_dir(config_dir=str(config_dir())):
        cfg = compose(
            "config", overrides=["trainer=fast", "logger=none", *QUICK_EXPLAIN, "model=lr_cross", *scaling]
        )
    train(cfg, run_dir)
    return run_dir


def german_features() -> pd.DataFrame:
    with resources.as_file(GERMAN) as path:
        return pd.read_csv(path)


def test_zoo_predict_writes_the_score_on_the_runs_scaling(lr_run, tmp_path):
    saved = json.loads((lr_run / "score.json").read_text())
    assert saved["pdo"] == 40 and saved["base_points"] == 500 and saved["higher"] == "safer"
    out = tmp_path / "scores.parquet"
    assert zoo_main(["predict", str(lr_run), str(GERMAN), "--out", str(out)]) == 0
    scores = pd.read_parquet(out)
    assert list(scores.columns) == ["row", "prob", "decision", "score"]
    np.testing.assert_allclose(scores["score"], RUN_SCALING.from_prob(scores["prob"]), rtol=0, atol=1e-9)
    order = np.argsort(scores["prob"].to_numpy(), kind="stable")
    prob, score = scores["prob"].to_numpy()[order], scores["score"].to_numpy()[order]
    assert (np.diff(score)[np.diff(prob) > 0] < 0).all() and (np.diff(score) <= 0).all()
    # the scorecard in points rebuilds the score column row by row
    run = load_run(lr_run)
    frame = german_features()
    arrays = run.preprocessor.transform(frame[run.preprocessor.columns])
    table = pd.read_csv(lr_run / "scorecard.csv", keep_default_na=False)
    rebuilt = score_from_table(table, run.model.feature_spec, arrays)
    np.testing.assert_allclose(rebuilt, scores["score"], atol=0.01)  # prob is float32
    assert "(base points)" in (lr_run / "scorecard.md").read_text()


def test_a_run_without_saved_scaling_scores_on_its_config_or_the_defaults_and_says_so(lr_run, tmp_path):
    import yaml

    from zoo.manifest import sha256_file

    old = tmp_path / "old_run"
    shutil.copytree(lr_run, old)
    (old / "score.json").unlink()
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["artifacts"]["score.json"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    summary = predict_file(old, GERMAN, tmp_path / "config.parquet")
    scores = pd.read_parquet(tmp_path / "config.parquet")
    np.testing.assert_allclose(scores["score"], RUN_SCALING.from_prob(scores["prob"]), atol=1e-9)
    assert any("no score.json: score uses its config.yaml's score: block" in line for line in summary.lines())
    # a run from before the score: key: the defaults
    config = yaml.safe_load((old / "config.yaml").read_text())
    del config["score"]
    (old / "config.yaml").write_text(yaml.safe_dump(config))
    manifest["artifacts"]["config.yaml"] = sha256_file(old / "config.yaml")
    (old / "manifest.json").write_text(json.dumps(manifest))
    summary = predict_file(old, GERMAN, tmp_path / "defaults.parquet")
    scores = pd.read_parquet(tmp_path / "defaults.parquet")
    np.testing.assert_allclose(scores["score"], ScoreScaling().from_prob(scores["prob"]), atol=1e-9)
    assert any("no score.json" in line and "pdo=20" in line for line in summary.lines())


def test_reasons_by_points_name_the_fields_losing_most_points(lr_run, tmp_path):
    out = tmp_path / "scores.csv"
    assert zoo_main(["predict", str(lr_run), str(GERMAN), "--out", str(out), "--reasons-by", "points"]) == 0
    scores = pd.read_csv(out, keep_default_na=False).head(200)
    assert (scores["reason_method"] == POINTS_LOST_METHOD).all()
    # points lost by hand: each field's points from the scorecard table, against its best among the
    # run's reference rows
    run = load_run(lr_run)
    spec = run.model.feature_spec
    frame = german_features().head(200)
    arrays = run.preprocessor.transform(frame[run.preprocessor.columns])
    reference = dict(np.load(lr_run / "explain_reference.npz"))
    table = pd.read_csv(lr_run / "scorecard.csv", keep_default_na=False)
    units = dict(run.config.dataset.get("units") or {})

    def field_points(rows: dict[str, np.ndarray]) -> pd.DataFrame:
        out = {}
        for field in [*spec.categorical, *spec.crosses, *spec.raw_numeric]:
            part = table[table["field"].isin([BASE_ROW, field.name])]
            out[field.name] = score_from_table(part, spec, rows) - float(part["points"].iloc[0])
        return pd.DataFrame(out)

    own, best = field_points(arrays), field_points(reference).max()
    lost = (best - own).clip(lower=0)
    for i in range(len(frame)):
        top = lost.iloc[i].sort_values(ascending=False, kind="stable")
        top = top[top > 1e-9].head(4)
        expected = [field_text(name, _raw(frame, name, i), units) for name in top.index]
        assert scores.loc[i, [f"reason_{k + 1}" for k in range(len(expected))]].tolist() == expected, i


def _raw(frame: pd.DataFrame, name: str, i: int) -> object:
    if name in frame.columns:
        return frame[name].iloc[i]
    return " | ".join(str(frame[s].iloc[i]) for s in name.split("*"))
