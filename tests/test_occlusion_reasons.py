"""Reason codes: every model writes the common columns, and occlusion honours the run's
`explain.occlusion_rows` (wide_deep's deep part included)."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest

from zoo.explain import read_reference
from zoo.explain.contributions import contributions, occlusion
from zoo.explain.fields import fields_of
from zoo.predict import load_run, predict_file
from zoo.train import train

COMMON = ["row", "prob", "decision", "score", "reason_1", "reason_2", "reason_3", "reason_method"]


def german_head(tmp_path, rows: int = 30):
    with resources.as_file(resources.files("zoo.datasets").joinpath("german_credit.csv")) as path:
        frame = pd.read_csv(path).head(rows)
    source = tmp_path / "applicants.csv"
    frame.to_csv(source, index=False)
    return source


def test_wide_deep_reasons_use_the_runs_occlusion_rows(tmp_path, make_cfg):
    run_dir = tmp_path / "run"
    train(make_cfg("model=wide_deep", "dataset=german", "explain.occlusion_rows=2"), run_dir)
    out = tmp_path / "scores.csv"
    predict_file(run_dir, german_head(tmp_path), out, reasons=3)
    scores = pd.read_csv(out, keep_default_na=False)
    assert list(scores.columns) == COMMON
    assert scores["reason_method"].str.endswith("deep part by occlusion against 2 training rows").all()

    run = load_run(run_dir)
    reference = read_reference(run_dir)
    frame = pd.read_csv(german_head(tmp_path))
    arrays = run.preprocessor.transform(frame[[*run.preprocessor.categorical, *run.preprocessor.numeric]])
    two = contributions(run.model, arrays, reference, n_reference=2)
    eight = contributions(run.model, arrays, reference, n_reference=8)
    # The deep part alone differs with the setting; the wide part (exact) does not depend on it.
    deep_two = two.values - eight.values
    assert np.abs(deep_two).max() > 1e-6
    deep_fields = [n for n in two.fields if n not in run.model.wide_terms(arrays)]
    assert deep_fields  # fields only the deep part sees carry occlusion alone: check one exactly
    field = next(f for f in fields_of(run.model.feature_spec) if f.name == deep_fields[0])
    direct = occlusion(run.model.deep_logit, arrays, reference, [field], n_reference=2)[:, 0]
    np.testing.assert_allclose(two.values[:, two.fields.index(field.name)], direct, atol=1e-9)


@pytest.mark.parametrize("reasons", [0, 3])
def test_attention_rules_predictions_have_only_the_common_columns(tmp_path, make_cfg, reasons):
    run_dir = tmp_path / "run"
    cfg = make_cfg(
        "model=attention_rules",
        "dataset=german",
        "model.n_trees=10",
        "model.n_bootstrap=1",
        "model.max_epochs=3",
    )
    train(cfg, run_dir)
    out = tmp_path / "scores.csv"
    predict_file(run_dir, german_head(tmp_path), out, reasons=reasons)
    scores = pd.read_csv(out, keep_default_na=False)
    assert list(scores.columns) == (COMMON if reasons else ["row", "prob", "decision", "score"])
    if reasons:
        assert scores["reason_method"].str.startswith("rule points vs intercept").all()
        assert (scores["reason_1"] != "").any()  # some applicant meets a rule pushing towards default
