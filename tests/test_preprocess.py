"""Preprocessing is fitted on training rows only; unseen and missing values get reserved indices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zoo.data.preprocess import MISSING_SUFFIX, Preprocessor
from zoo.data.spec import MISSING_INDEX, UNSEEN_INDEX, FeatureSpec
from zoo.errors import ZooError


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "city": ["a", "b", "a", "c", None, "b"],
            "job": ["x", "x", "y", "y", "x", "y"],
            "income": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0],
            "age": [20.0, 30.0, 40.0, 50.0, 60.0, 70.0],
        }
    )


def test_statistics_come_from_training_rows_only():
    frame = _frame()
    train = frame.iloc[:3]
    pre = Preprocessor(categorical=["city", "job"], numeric=["income", "age"]).fit(train)
    # Medians, means and scales are those of the first three rows alone.
    assert pre.medians_["income"] == 1.5
    assert pre.means_["age"] == pytest.approx(30.0)
    assert pre.stds_["age"] == pytest.approx(np.std([20.0, 30.0, 40.0]))
    # 'c' only occurs outside the training rows: it is unseen, not a category.
    assert list(pre.vocabularies_["city"].categories) == ["a", "b"]
    test = pre.transform(frame.iloc[3:])
    assert test["x_cat"][0, 0] == UNSEEN_INDEX  # 'c'
    assert test["x_cat"][1, 0] == MISSING_INDEX  # None
    # Changing only the non-training rows changes nothing that was fitted.
    shifted = frame.copy()
    shifted.loc[3:, "age"] += 1000
    pre2 = Preprocessor(categorical=["city", "job"], numeric=["income", "age"]).fit(shifted.iloc[:3])
    assert pre2.means_ == pre.means_ and pre2.stds_ == pre.stds_ and pre2.medians_ == pre.medians_


def test_numeric_imputation_adds_missing_indicator():
    frame = _frame()
    pre = Preprocessor(categorical=[], numeric=["income", "age"]).fit(frame)
    out = pre.transform(frame)
    spec = pre.feature_spec()
    assert spec.numeric_names == ("income", "age", "income" + MISSING_SUFFIX)
    assert out["x_num"].shape == (6, 3)
    assert out["x_num"].dtype == np.float32
    np.testing.assert_array_equal(out["x_num"][:, 2], [0, 0, 1, 0, 0, 0])
    median = np.median([1.0, 2.0, 4.0, 5.0, 6.0])
    expected = (median - pre.means_["income"]) / pre.stds_["income"]
    assert out["x_num"][2, 0] == pytest.approx(expected, rel=1e-6)
    assert np.isfinite(out["x_num"]).all()


def test_categorical_dtype_matches_text_path():
    frame = _frame()
    as_category = frame.assign(city=frame["city"].astype("category"))
    a = Preprocessor(categorical=["city"], numeric=[]).fit(frame.iloc[:4]).transform(frame)
    b = Preprocessor(categorical=["city"], numeric=[]).fit(as_category.iloc[:4]).transform(as_category)
    np.testing.assert_array_equal(a["x_cat"], b["x_cat"])


def test_crosses_fitted_on_training_rows_with_unseen_bucket():
    frame = _frame()
    pre = Preprocessor(categorical=["city", "job"], numeric=[], crosses=[["city", "job"]]).fit(frame.iloc[:3])
    spec = pre.feature_spec()
    assert spec.crosses[0].name == "city*job"
    # Training rows hold (a,x), (b,x), (a,y): three seen combinations plus two reserved indices.
    assert spec.crosses[0].cardinality == 3 + 2
    out = pre.transform(pd.DataFrame({"city": ["a", "b", "b"], "job": ["x", "y", "x"]}))
    cross = out["x_cross"][:, 0]
    assert cross[0] >= 2 and cross[2] >= 2 and cross[0] != cross[2]
    assert cross[1] == UNSEEN_INDEX  # (b, y) never occurs in training rows


def test_cross_hashing_bounds_cardinality():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"a": rng.integers(0, 200, 5000).astype(str), "b": rng.integers(0, 200, 5000).astype(str)}
    )
    pre = Preprocessor(categorical=["a", "b"], numeric=[], crosses=[["a", "b"]], cross_hash_buckets=64).fit(
        frame
    )
    assert pre.feature_spec().crosses[0].cardinality == 64 + 2
    out = pre.transform(frame)["x_cross"][:, 0]
    assert out.min() >= 2 and out.max() < 66


def test_auto_crosses_pair_the_smallest_fields():
    frame = pd.DataFrame(
        {
            "big": [str(i) for i in range(12)],
            "s1": list("ab" * 6),
            "s2": list("abc" * 4),
            "s3": list("abcd" * 3),
        }
    )
    pre = Preprocessor(categorical=["big", "s1", "s2", "s3"], numeric=[], crosses="auto", cross_auto_k=3).fit(
        frame
    )
    names = [c.name for c in pre.feature_spec().crosses]
    assert names == ["s1*s2", "s1*s3", "s2*s3"]


def test_cross_naming_unknown_field_is_clear():
    with pytest.raises(ZooError, match="'nope'"):
        Preprocessor(categorical=["city", "job"], numeric=[], crosses=[["city", "nope"]]).fit(_frame())


def test_wide_deep_routing_defaults_and_overrides():
    pre = Preprocessor(categorical=["city", "job"], numeric=["income", "age"], crosses=[["city", "job"]]).fit(
        _frame()
    )
    spec = pre.feature_spec()
    assert spec.wide == ("city", "job", "city*job")
    assert spec.deep == ("city", "job", "income", "age", "income" + MISSING_SUFFIX)
    routed = pre.feature_spec({"wide": ["city", "city*job"], "deep": ["income"], "borrower": ["job", "age"]})
    assert routed.deep == ("income", "income" + MISSING_SUFFIX)
    assert routed.indices(routed.wide) == {"x_cat": [0], "x_cross": [0], "x_num": []}
    assert routed.group("borrower") == ("job", "age")  # a named group keeps its order
    with pytest.raises(ZooError, match="'salary'"):
        pre.feature_spec({"deep": ["salary"]})
    with pytest.raises(ZooError, match="groups.loan names 'term'"):
        pre.feature_spec({"loan": ["term"]})
    with pytest.raises(KeyError, match="'loan'.*groups are: wide, deep"):
        spec.group("loan")


def test_feature_spec_round_trips_through_plain_containers():
    pre = Preprocessor(categorical=["city", "job"], numeric=["income"], crosses=[["city", "job"]]).fit(
        _frame()
    )
    spec = pre.feature_spec()
    plain = spec.to_dict()
    assert FeatureSpec.from_dict(plain) == spec
    import json

    json.dumps(plain)  # only plain containers


def test_labels_name_every_category_and_cross_index():
    frame = _frame()
    pre = Preprocessor(categorical=["city", "job"], numeric=["age"], crosses=[["city", "job"]]).fit(frame)
    spec = pre.feature_spec()
    labels = {f.name: list(f.labels) for f in (*spec.categorical, *spec.crosses)}
    arrays = pre.transform(frame)
    assert labels["city"][:2] == ["(missing)", "(unseen)"]
    for i, row in frame.iterrows():
        city = "(missing)" if pd.isna(row["city"]) else row["city"]
        assert labels["city"][arrays["x_cat"][i, 0]] == city
        assert labels["job"][arrays["x_cat"][i, 1]] == row["job"]
        assert labels["city*job"][arrays["x_cross"][i, 0]] == f"{city}|{row['job']}"


# --- category keys do not depend on the column's dtype; the fitted state saves as JSON


def test_the_same_values_map_to_the_same_indices_whatever_the_dtype():
    values = [1, 2, 3, 2, 1, 3]
    train = pd.DataFrame({"code": values})
    pre = Preprocessor(categorical=["code"], numeric=[]).fit(train)
    expected = pre.transform(train)["x_cat"][:, 0]
    assert (expected >= 2).all()
    forms = {
        "int": pd.Series(values),
        "float with NaN": pd.Series([*values, np.nan], dtype=float),
        "string": pd.Series([f" {v}" for v in values]),
        "category": pd.Series(values, dtype="category"),
        "object mix": pd.Series([1, 2.0, "3", "2 ", 1.0, 3], dtype=object),
    }
    for name, column in forms.items():
        got = pre.transform(pd.DataFrame({"code": column}))["x_cat"][:, 0]
        np.testing.assert_array_equal(got[:6], expected, err_msg=name)
        if len(column) > 6:
            assert got[6] == MISSING_INDEX
    # Fitted on float-with-NaN (one blank in a CSV), scoring plain ints still matches.
    floats = Preprocessor(categorical=["code"], numeric=[]).fit(
        pd.DataFrame({"code": [*map(float, values), np.nan]})
    )
    np.testing.assert_array_equal(floats.transform(train)["x_cat"][:, 0], expected)
    booleans = Preprocessor(categorical=["flag"], numeric=[]).fit(pd.DataFrame({"flag": [True, False, True]}))
    text = booleans.transform(pd.DataFrame({"flag": ["True", "False", None]}))["x_cat"][:, 0]
    assert list(text[:2]) == list(booleans.transform(pd.DataFrame({"flag": [True, False]}))["x_cat"][:, 0])
    assert text[2] == MISSING_INDEX


@pytest.mark.parametrize("encoding", ["standard", "robust", "quantile_normal", "none"])
def test_saved_preprocessing_transforms_exactly_as_the_fitted_one(encoding):
    import json

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "city": rng.choice(["a", "b", "c", None], 300),
            "job": rng.choice(["x", "y"], 300),
            "income": np.where(rng.random(300) < 0.1, np.nan, rng.lognormal(10, 1, 300)),
            "flag": rng.integers(0, 2, 300).astype(float),
        }
    )
    pre = Preprocessor(
        categorical=["city", "job"],
        numeric=["income", "flag"],
        crosses=[["city", "job"]],
        numeric_encoding=encoding,
    ).fit(frame.iloc[:200])
    saved = json.loads(json.dumps(pre.to_dict()))  # through JSON text: no pickle, no numpy types
    loaded = Preprocessor.from_dict(saved)
    for raw in (False, True):
        a, b = pre.transform(frame, raw=raw), loaded.transform(frame, raw=raw)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert loaded.feature_spec() == pre.feature_spec()
    assert {"numpy", "pandas"} <= set(saved["versions"])


@pytest.mark.parametrize("encoding", ["standard", "robust", "quantile_normal"])
def test_numeric_fields_turn_encoded_values_back_into_raw_units(encoding):
    rng = np.random.default_rng(1)
    months = rng.integers(4, 72, 500).astype(float)
    pre = Preprocessor(categorical=[], numeric=["duration"], numeric_encoding=encoding).fit(
        pd.DataFrame({"duration": months})
    )
    field = pre.feature_spec().numeric[0]
    assert field.encoding == encoding
    raw = np.array([6.0, 12.0, 24.0, 48.0])
    encoded = pre.transform(pd.DataFrame({"duration": raw}))["x_num"][:, 0]
    np.testing.assert_allclose(field.decode(encoded), raw, rtol=0.02)
    if encoding == "quantile_normal":  # roughly standard normal on the training rows
        z = pre.transform(pd.DataFrame({"duration": months}))["x_num"][:, 0]
        assert abs(z.mean()) < 0.1 and 0.8 < z.std() < 1.2
    assert len(field.bin_edges()) > 10  # bins for piecewise-linear embeddings


def test_numeric_bins_cap_the_piecewise_linear_bins_and_are_saved():
    # 1,001 quantile-normal quantiles of a continuous column: ~1,000 bins uncapped, 48 capped, with
    # the first and last quantiles kept as the outer edges. Saved with the run; a run saved before
    # the setting loads uncapped, as it was trained.
    amounts = np.random.default_rng(2).lognormal(8, 1.5, 5000)
    frame = pd.DataFrame({"amount": amounts})

    def fitted(bins: int | None) -> Preprocessor:
        pre = Preprocessor(
            categorical=[], numeric=["amount"], numeric_encoding="quantile_normal", numeric_bins=bins
        )
        return pre.fit(frame)

    uncapped = fitted(None).feature_spec().numeric[0].bin_edges()
    capped_pre = fitted(48)
    capped = capped_pre.feature_spec().numeric[0].bin_edges()
    assert len(uncapped) == 1001 and len(capped) == 49
    assert capped[0] == uncapped[0] and capped[-1] == uncapped[-1] and set(capped) <= set(uncapped)
    saved = capped_pre.to_dict()
    assert Preprocessor.from_dict(saved).feature_spec().numeric[0].bin_edges() == capped
    for field in saved["numeric"]:
        del field["max_bins"]
    assert Preprocessor.from_dict(saved).feature_spec().numeric[0].bin_edges() == uncapped
    assert FeatureSpec.from_dict(capped_pre.feature_spec().to_dict()) == capped_pre.feature_spec()
    for bad in (0, -3, 2.5, True, "48"):
        with pytest.raises(
            ZooError, match=f"dataset.numeric_bins={bad!r}, expected null or a positive integer"
        ):
            fitted(bad)  # type: ignore[arg-type]


def test_robust_encoding_clips_outliers_at_training_quantiles():
    values = np.r_[np.linspace(0, 1, 999), 1e9]
    pre = Preprocessor(categorical=[], numeric=["amount"], numeric_encoding="robust").fit(
        pd.DataFrame({"amount": values})
    )
    encoded = pre.transform(pd.DataFrame({"amount": [1e12, -1e12]}))["x_num"][:, 0]
    assert np.abs(encoded).max() < 5
    with pytest.raises(ZooError, match="numeric encoding 'log' for 'amount'"):
        Preprocessor(categorical=[], numeric=["amount"], numeric_encoding="log").fit(
            pd.DataFrame({"amount": values})
        )
    with pytest.raises(ZooError, match="numeric_encoding names 'nope'"):
        Preprocessor(categorical=[], numeric=["amount"], numeric_encoding={"nope": "robust"}).fit(
            pd.DataFrame({"amount": values})
        )
