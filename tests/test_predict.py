"""Scoring new files with a finished run: saved preprocessing, schema checks, manifest digests."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.overrides import QUICK_EXPLAIN
from zoo.cli import main as zoo_main
from zoo.errors import ZooError
from zoo.predict import load_run, predict_file
from zoo.train import train

FAST = ["trainer=fast"]


def german_frame() -> pd.DataFrame:
    with resources.as_file(resources.files("zoo.datasets").joinpath("german_credit.csv")) as path:
        return pd.read_csv(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One finished run per model family, shared by the tests below (read-only)."""
    from hydra import compose, initialize_config_dir

    from zoo import registry
    from zoo.train import config_dir

    registry.store_configs(config_dir())
    out = {}
    for model, extra in (("wide_deep_cross", []), ("catboost", ["model.iterations=30"])):
        run_dir = tmp_path_factory.mktemp(model)
        with initialize_config_dir(config_dir=str(config_dir())):
            cfg = compose(
                "config", overrides=[*FAST, "logger=none", *QUICK_EXPLAIN, f"model={model}", *extra]
            )
        train(cfg, run_dir)
        out[model] = run_dir
    return out


@pytest.mark.parametrize("model", ["wide_deep_cross", "catboost"])
def test_predicting_the_original_file_reproduces_the_run_predictions(runs, tmp_path, model):
    source = tmp_path / "german.csv"
    german_frame().to_csv(source, index=False)
    out = tmp_path / "scores.parquet"
    summary = predict_file(runs[model], source, out, chunk_rows=300)  # several chunks
    scores = pd.read_parquet(out)
    assert summary.rows == 1000 and len(scores) == 1000
    assert list(scores.columns) == ["row", "prob", "decision", "score"]
    assert summary.extra_columns == ["creditability"]  # the target is ignored, and said so
    saved = pd.read_parquet(runs[model] / "predictions.parquet")
    merged = saved.merge(scores, on="row", suffixes=("_run", "_scored"))
    assert len(merged) == len(saved) == 400
    np.testing.assert_array_equal(merged["prob_run"].to_numpy(), merged["prob_scored"].to_numpy())
    threshold = json.loads((runs[model] / "metrics.json").read_text())["threshold"]
    np.testing.assert_array_equal(scores["decision"], (scores["prob"] > threshold).astype(np.int8))


def test_a_missing_column_is_named_and_nothing_is_written(runs, tmp_path):
    frame = german_frame().drop(columns=["purpose"])
    source = tmp_path / "no_purpose.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / "scores.parquet"
    with pytest.raises(ZooError, match="column 'purpose' is missing"):
        predict_file(runs["wide_deep_cross"], source, out)
    assert not out.exists() and list(tmp_path.iterdir()) == [source]


def test_unseen_categories_are_counted_and_empty_columns_allowed(runs, tmp_path, capsys):
    frame = german_frame().head(5).drop(columns=["creditability"]).assign(extra=1)
    frame.loc[0:1, "purpose"] = "spaceship"
    frame["savings_account_and_bonds"] = np.nan  # entirely missing in a small file: allowed
    source = tmp_path / "new.parquet"
    frame.to_parquet(source)
    out = tmp_path / "scores.csv"
    code = zoo_main(["predict", str(runs["wide_deep_cross"]), str(source), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "purpose: 2" in printed and "ignored columns not used by the model: extra" in printed
    scores = pd.read_csv(out)
    assert len(scores) == 5 and scores["prob"].between(0, 1).all()


def test_a_corrupted_checkpoint_is_refused(runs, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(runs["wide_deep_cross"], run_dir)
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    blob = bytearray(checkpoint.read_bytes())
    rng = np.random.default_rng(0)
    for position in rng.choice(len(blob) // 2, size=2000, replace=False) + len(blob) // 2:
        blob[position] ^= 0xFF
    checkpoint.write_bytes(bytes(blob))
    with pytest.raises(ZooError, match="corrupted or was changed after the run"):
        load_run(run_dir)


def test_manifest_digests_every_artifact_and_the_data(runs):
    manifest = json.loads((runs["catboost"] / "manifest.json").read_text())
    for name in ("checkpoints/best.ckpt", "preprocessing.json", "config.yaml", "metrics.json"):
        assert len(manifest["artifacts"][name]) == 64
    assert manifest["data"]["source"] == "bundled" and len(manifest["data"]["sha256"]) == 64
    assert {"torch", "pandas", "numpy"} <= set(manifest["versions"])


def test_bad_arguments_give_one_line_errors(runs, tmp_path, capsys):
    assert zoo_main(["predict", str(tmp_path / "nope"), str(tmp_path / "x.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    source = tmp_path / "german.csv"
    german_frame().to_csv(source, index=False)
    assert zoo_main(["predict", str(runs["catboost"]), str(source), "--out", str(source)]) == 2
    assert "is the file being scored" in capsys.readouterr().err
    assert zoo_main(["predict", str(runs["catboost"]), str(source), "--out", str(tmp_path / "s.xlsx")]) == 2
    assert "expected .parquet or .csv" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("model", "method"),
    [("wide_deep_cross", "exact wide terms vs training mean + deep part"), ("catboost", "catboost SHAP")],
)
def test_reasons_name_the_fields_pushing_towards_default_in_raw_values(runs, tmp_path, model, method):
    frame = german_frame().head(40)
    frame = pd.concat([frame, frame.iloc[[7]]], ignore_index=True)  # row 40 is row 7 again
    source = tmp_path / "applicants.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / "scores.csv"
    predict_file(runs[model], source, out, reasons=3)
    scores = pd.read_csv(out, keep_default_na=False)
    assert list(scores.columns) == [
        "row",
        "prob",
        "decision",
        "score",
        "reason_1",
        "reason_2",
        "reason_3",
        "reason_method",
    ]
    assert scores["reason_method"].str.startswith(method).all()
    assert (
        scores.loc[7, "reason_1":"reason_method"].tolist()
        == scores.loc[40, "reason_1":"reason_method"].tolist()
    )
    riskiest = scores["prob"].idxmax()
    assert scores.loc[riskiest, "reason_1"]  # the riskiest applicant has a reason
    for text, (_, row) in zip(scores["reason_1"], frame.iterrows(), strict=True):
        if text and "*" not in text.split(":")[0]:
            field, value = text.split(": ", 1)
            assert str(row[field.replace(" ", "_")]) == value  # the applicant's own raw value


def test_reasons_flag_defaults_to_the_runs_setting_and_refuses_zero(runs, tmp_path, capsys):
    source = tmp_path / "few.csv"
    german_frame().head(5).to_csv(source, index=False)
    out = tmp_path / "scores.csv"
    assert zoo_main(["predict", str(runs["catboost"]), str(source), "--out", str(out), "--reasons"]) == 0
    assert [c for c in pd.read_csv(out).columns if c.startswith("reason_")] == [
        "reason_1",
        "reason_2",
        "reason_3",
        "reason_4",
        "reason_method",
    ]
    capsys.readouterr()
    assert zoo_main(["predict", str(runs["catboost"]), str(source), "--out", str(out), "--reasons", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --reasons=0, expected a positive integer"
