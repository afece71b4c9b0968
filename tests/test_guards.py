"""Data guards (label leakage, ids, dates, repeated rows) and the dataset config's reading options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from zoo.data import splits
from zoo.data.datamodule import CreditDataModule
from zoo.data.guards import feature_aucs
from zoo.data.sources import DATASET_KEYS
from zoo.errors import ZooError
from zoo.train import config_dir, train


def _loans(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Loans with an honest signal in `income` and a text `grade`; `status` is bad or good."""
    rng = np.random.default_rng(seed)
    bad = rng.random(n) < 0.3
    return pd.DataFrame(
        {
            "grade": rng.choice(list("ABCD"), n),
            "income": rng.normal(50, 10, n) - 5 * bad,
            "status": np.where(bad, "bad", "good"),
        }
    )


def _csv_cfg(make_cfg, path: Path, *overrides: str):
    return make_cfg(
        "dataset=csv",
        f"dataset.path={path}",
        "dataset.target=status",
        "dataset.bad_value=bad",
        "model=lr",
        *overrides,
    )


def _module(frame: pd.DataFrame, **dataset) -> CreditDataModule:
    dm = CreditDataModule({"name": "t", "target": "status", "bad_value": "bad", **dataset}, frame=frame)
    dm.build()
    return dm


@pytest.mark.parametrize("copy", ["number", "text"])
def test_a_copy_of_the_target_is_refused_by_name_unless_allowed(make_cfg, tmp_path, copy):
    frame = _loans()
    is_bad = frame["status"] == "bad"
    frame["outcome"] = np.where(is_bad, 1, 0) if copy == "number" else np.where(is_bad, "D", "P")
    path = tmp_path / "loans.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ZooError, match=r"label leakage: column 'outcome' \(AUC 1\.000\)") as info:
        train(_csv_cfg(make_cfg, path), tmp_path / "refused")
    assert "\n" not in str(info.value) and "dataset.allow_leaky=[outcome]" in str(info.value)
    if copy == "text":
        return  # one training run is enough to show the override
    result = train(_csv_cfg(make_cfg, path, "dataset.allow_leaky=[outcome]"), tmp_path / "kept")
    assert result["val"]["auc"] > 0.99
    assert any("allow_leaky" in w and "outcome" in w for w in result["warnings"])
    saved = json.loads((tmp_path / "kept" / "metrics.json").read_text())
    assert saved["warnings"] == result["warnings"]


def test_a_strong_honest_feature_and_a_many_valued_category_are_not_refused():
    rng = np.random.default_rng(1)
    n = 1000
    bad = rng.random(n) < 0.3
    frame = pd.DataFrame(
        {
            "score": rng.normal(0, 1, n) + 1.8 * bad,  # AUC about 0.9
            "postcode": rng.choice([f"P{i:03d}" for i in range(400)], n),  # no signal, ~1.5 rows each
            "status": np.where(bad, "bad", "good"),
        }
    )
    dm = _module(frame)
    train = dm.arrays["train"]["row"]
    aucs = feature_aucs(frame.iloc[train][["score", "postcode"]], bad[train], categorical=["postcode"])
    assert 0.85 < aucs["score"] < 0.95
    # in-sample bad rates of a category with one or two rows would score close to 1
    assert aucs["postcode"] < 0.6
    assert dm.warnings == []


def test_leakage_is_judged_on_every_labelled_row_whatever_the_split():
    """A column that is the label on the validation and test rows, and nearly so on the training
    rows (AUC about 0.985 there), is refused: the guard reads all labelled rows (AUC about 0.995),
    so which rows a seed or fold trains on cannot change its decision."""
    frame = _loans(600)
    y = (frame["status"] == "bad").to_numpy().astype(np.int8)
    train, val, test = splits.train_val_test(y, seed=0)  # the split the module will make
    leak = 10.0 * y
    leak[train] = 3.07 * y[train] + np.random.default_rng(2).normal(size=len(train))
    with pytest.raises(ZooError, match=r"label leakage: column 'later' .* all 600 labelled rows"):
        _module(frame.assign(later=leak))


def test_id_like_columns_are_ignored_listed_and_skipped_when_scoring(make_cfg, tmp_path):
    from zoo.predict import predict_file

    frame = _loans(400)
    n = len(frame)
    rng = np.random.default_rng(3)
    frame["loan_ref"] = [f"L{i:06d}" for i in rng.permutation(n)]  # text, distinct per row
    frame["row_no"] = np.arange(n) + 1  # dense whole numbers
    frame["customer_id"] = rng.choice(10**9, n, replace=False)  # sparse, but named an id
    frame["amount"] = rng.choice(10**9, n, replace=False)  # sparse whole numbers: an amount
    frame["ratio"] = rng.random(n)  # continuous: distinct per row, never an id
    path = tmp_path / "loans.csv"
    frame.to_csv(path, index=False)
    result = train(_csv_cfg(make_cfg, path), tmp_path / "run")
    id_like = ["loan_ref", "row_no", "customer_id"]
    lines = [w for w in result["warnings"] if "id-like" in w]
    assert len(lines) == 1 and all(c in lines[0] for c in id_like) and "amount" not in lines[0]
    saved = json.loads((tmp_path / "run" / "preprocessing.json").read_text())
    assert saved["ignored"] == id_like
    numeric = {field["name"] for field in saved["numeric"]}
    assert not set(id_like) & (set(saved["categorical"]) | numeric)
    assert {"amount", "ratio"} <= numeric
    summary = predict_file(tmp_path / "run", path, tmp_path / "scores.parquet")
    assert summary.rows == n and set(id_like) <= set(summary.extra_columns)
    # a column declared as a feature is kept, whatever it looks like
    dm = _module(frame.drop(columns=["loan_ref"]), roles={"numeric": ["row_no"]})
    assert "row_no" in dm.feature_spec.numeric_names and "customer_id" in dm.schema()["ignored"]


def test_rows_repeated_between_training_and_test_are_counted():
    frame = _loans(300)
    frame = pd.concat([frame, frame.iloc[:60]], ignore_index=True)  # 60 rows appear twice
    dm = _module(frame)
    features = frame.drop(columns="status")
    seen = set(features.iloc[dm.arrays["train"]["row"]].itertuples(index=False))
    expected = {
        split: sum(tuple(r) in seen for r in features.iloc[dm.arrays[split]["row"]].itertuples(index=False))
        for split in ("test", "val")
    }
    assert expected["test"] > 0
    share = expected["test"] / len(dm.arrays["test"]["y"])
    lines = [w for w in dm.warnings if "repeat a training row" in w]
    assert len(lines) == 1
    assert lines[0].startswith(f"{expected['test']} test rows ({share:.1%})")
    assert f"{expected['val']} validation rows" in lines[0]
    assert not [w for w in _module(_loans(300)).warnings if "repeat" in w]


def test_text_dates_used_as_categories_are_warned_about():
    frame = _loans(400)
    rng = np.random.default_rng(4)
    days = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 60, len(frame)), unit="D")
    frame["opened"] = days.strftime("%Y-%m-%d")
    frame.loc[::50, "opened"] = None
    frame["term"] = rng.choice(["36 months", "60 months"], len(frame))
    frame["sub_grade"] = rng.choice(["A1", "B2", "C3", "G5"], len(frame))
    dm = _module(frame)
    lines = [w for w in dm.warnings if "dates" in w]
    assert len(lines) == 1 and "opened (100% dates)" in lines[0]
    assert "term" not in lines[0] and "sub_grade" not in lines[0]


def test_a_semicolon_file_with_decimal_commas_reads_like_the_comma_file(make_cfg, tmp_path):
    frame = _loans(300)
    frame.to_csv(tmp_path / "comma.csv", index=False)
    frame.to_csv(tmp_path / "semicolon.csv", index=False, sep=";", decimal=",")
    comma = CreditDataModule(_csv_cfg(make_cfg, tmp_path / "comma.csv", "dataset.sep=','").dataset)
    semicolon = CreditDataModule(
        _csv_cfg(make_cfg, tmp_path / "semicolon.csv", "dataset.sep=';'", "dataset.decimal=','").dataset
    )
    comma.build()
    semicolon.build()
    assert semicolon.preprocessor.to_dict() == comma.preprocessor.to_dict()
    assert "income" in semicolon.feature_spec.numeric_names
    for split in ("train", "test"):
        np.testing.assert_array_equal(semicolon.arrays[split]["x_num"], comma.arrays[split]["x_num"])
    # read with the default separator, the header is one column: the error points at dataset.sep
    with pytest.raises(ZooError, match=r"""separated by ';'; pass "dataset.sep=';'\"""") as info:
        CreditDataModule(_csv_cfg(make_cfg, tmp_path / "semicolon.csv").dataset).build()
    assert "\n" not in str(info.value)


def test_an_unknown_dataset_key_is_one_line_naming_it_and_the_accepted_keys(make_cfg, tmp_path):
    path = tmp_path / "loans.csv"
    _loans().to_csv(path, index=False)
    with pytest.raises(ZooError, match=r"dataset\.seperator is not a dataset key; expected one of: ") as info:
        train(_csv_cfg(make_cfg, path, "+dataset.seperator=';'"), tmp_path / "run")
    message = str(info.value)
    assert "\n" not in message and all(key in message for key in ("sep", "decimal", "encoding"))
    assert not (tmp_path / "run" / "metrics.json").exists()
    with pytest.raises(ZooError, match=r"dataset\.decimal=',,', expected a single character"):
        CreditDataModule(_csv_cfg(make_cfg, path, "dataset.decimal=',,'").dataset).build()


def test_every_key_of_the_shipped_dataset_configs_is_accepted():
    for path in sorted((config_dir() / "dataset").glob("*.yaml")):
        keys = set(yaml.safe_load(path.read_text()))
        assert keys <= set(DATASET_KEYS), (path.name, keys - set(DATASET_KEYS))
