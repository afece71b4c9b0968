"""Synthetic generator: layout, determinism, planted signal where documented, argument checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zoo.data.synthetic import make_synthetic, planted_pairs


def chi2_homogeneity(frame: pd.DataFrame, by: str | list[str], target: str = "default") -> float:
    """Pearson statistic for 'the bad rate is the same in every group' (df = groups - 1)."""
    overall = frame[target].mean()
    groups = frame.groupby(by, observed=True)[target].agg(["mean", "size"])
    return float((groups["size"] * (groups["mean"] - overall) ** 2).sum() / (overall * (1 - overall)))


def test_columns_and_dtypes() -> None:
    frame = make_synthetic(
        n_rows=500,
        n_categorical=3,
        n_numeric=2,
        cardinality=[2, 5, 30],
        interaction_pairs=1,
        target="bad",
    )
    assert list(frame.columns) == ["cat_0", "cat_1", "cat_2", "num_0", "num_1", "bad"]
    assert len(frame) == 500
    for name, k in [("cat_0", 2), ("cat_1", 5), ("cat_2", 30)]:
        assert isinstance(frame[name].dtype, pd.CategoricalDtype)
        assert list(frame[name].cat.categories) == [f"v{v}" for v in range(k)]
    assert (frame[["num_0", "num_1"]].dtypes == np.float32).all()
    assert frame["bad"].dtype == np.int8
    assert set(frame["bad"].unique()) == {0, 1}
    assert not frame.isna().any().any()


def test_defaults() -> None:
    frame = make_synthetic(n_rows=100)
    assert frame.shape == (100, 17) and frame.columns[-1] == "default"
    assert all(len(frame[f"cat_{i}"].cat.categories) == 10 for i in range(8))
    one = make_synthetic(n_rows=1, n_categorical=0, n_numeric=1, interaction_pairs=0)
    assert list(one.columns) == ["num_0", "default"]


def test_deterministic_for_a_seed() -> None:
    pd.testing.assert_frame_equal(make_synthetic(n_rows=2000, seed=3), make_synthetic(n_rows=2000, seed=3))
    a, b = make_synthetic(n_rows=2000, seed=3), make_synthetic(n_rows=2000, seed=4)
    assert not a["num_0"].equals(b["num_0"])
    assert not a["cat_0"].equals(b["cat_0"])
    assert not a["default"].equals(b["default"])


@pytest.mark.parametrize("bad_rate", [0.03, 0.2, 0.5])
def test_bad_rate(bad_rate: float) -> None:
    n = 50_000
    frame = make_synthetic(n_rows=n, bad_rate=bad_rate, seed=1)
    tolerance = 4 * np.sqrt(bad_rate * (1 - bad_rate) / n)
    assert frame["default"].mean() == pytest.approx(bad_rate, abs=tolerance)


@pytest.mark.parametrize("seed", [0, 1])
def test_interaction_pair_has_no_marginal_effect(seed: int) -> None:
    frame = make_synthetic(n_rows=50_000, seed=seed)
    assert planted_pairs(8, 2) == [(0, 1), (2, 3)]
    # Each paired field alone: bad rates equal up to sampling noise (chi2 with 9 df; 40 ~ p 1e-5).
    for field in ["cat_0", "cat_1", "cat_2", "cat_3"]:
        assert chi2_homogeneity(frame, field) < 40, field
        rates = frame.groupby(field, observed=True)["default"].mean()
        assert (rates - frame["default"].mean()).abs().max() < 0.03, field
    # Jointly the cells differ clearly.
    cells = frame.groupby(["cat_0", "cat_1"], observed=True)["default"].mean()
    assert cells.std() > 0.08 and cells.max() - cells.min() > 0.3
    assert chi2_homogeneity(frame, ["cat_0", "cat_1"]) > 1000
    # A field from different pairs carries nothing jointly with cat_0.
    assert chi2_homogeneity(frame, ["cat_0", "cat_2"]) < 160  # 99 df


def test_numeric_signal_in_first_half_only() -> None:
    frame = make_synthetic(n_rows=50_000, n_numeric=6, seed=2)
    corr = [abs(np.corrcoef(frame[f"num_{j}"], frame["default"])[0, 1]) for j in range(6)]
    assert min(corr[:3]) > 0.05
    assert max(corr[3:]) < 0.03


def test_categorical_main_effect_skips_paired_fields() -> None:
    frame = make_synthetic(n_rows=50_000, categorical_main_effect=1.0, seed=5)
    assert all(chi2_homogeneity(frame, f"cat_{i}") > 200 for i in range(4, 8))
    assert all(chi2_homogeneity(frame, f"cat_{i}") < 40 for i in range(4))
    plain = make_synthetic(n_rows=50_000, seed=5)
    assert all(chi2_homogeneity(plain, f"cat_{i}") < 40 for i in range(8))


def test_missing_rate() -> None:
    full = make_synthetic(n_rows=20_000, seed=6)
    holey = make_synthetic(n_rows=20_000, seed=6, missing_rate=0.1)
    features = holey.drop(columns="default")
    assert features.isna().mean().between(0.09, 0.11).all()
    assert holey["default"].notna().all()
    # Cells go missing after the target is drawn: the rest of the frame is unchanged.
    pd.testing.assert_series_equal(holey["default"], full["default"])
    kept = features.notna()
    for name in features.columns:
        assert (features[name][kept[name]] == full[name][kept[name]]).all(), name


def test_explicit_pairs_and_cardinalities() -> None:
    frame = make_synthetic(
        n_rows=30_000,
        n_categorical=4,
        n_numeric=0,
        cardinality=[3, 4, 5000, 6],
        interaction_pairs=[(3, 0)],
        noise=0.5,
        seed=7,
    )
    assert chi2_homogeneity(frame, ["cat_3", "cat_0"]) > 500
    assert chi2_homogeneity(frame, "cat_3") < 40 and chi2_homogeneity(frame, "cat_0") < 40
    assert frame["cat_2"].cat.codes.between(0, 4999).all()
    assert frame["cat_2"].nunique() > 4000


def test_planted_pairs() -> None:
    assert planted_pairs(8, 0) == []
    assert planted_pairs(5, 2) == [(0, 1), (2, 3)]
    assert planted_pairs(4, [(3, 1), [0, 2]]) == [(3, 1), (0, 2)]


@pytest.mark.parametrize(
    ("n_categorical", "pairs", "message"),
    [
        (4, 3, "interaction_pairs=3 needs 6 categorical fields, got n_categorical=4"),
        (4, -1, "interaction_pairs must be >= 0, got -1"),
        (4, [(0, 4)], r"pair \(0, 4\) must index categorical fields 0..3"),
        (4, [(-1, 2)], r"pair \(-1, 2\)"),
        (4, [(1, 1)], r"pair \(1, 1\) must join two distinct fields"),
        (4, [(0, 1), (1, 0)], r"pair \(1, 0\) is listed twice"),
        (4, [(0, 1, 2)], r"two field indices \(a, b\), got \(0, 1, 2\)"),
        (4, [(0, 1.5)], r"got \(0, 1.5\)"),
        (4, "01", "count or a list of .* got '01'"),
    ],
)
def test_planted_pairs_rejects(n_categorical: int, pairs: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        planted_pairs(n_categorical, pairs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_rows": 0}, "n_rows must be an integer >= 1, got 0"),
        ({"n_rows": 10.0}, "n_rows must be an integer >= 1, got 10.0"),
        ({"n_rows": True}, "n_rows .* got True"),
        ({"n_categorical": -1}, "n_categorical must be an integer >= 0, got -1"),
        ({"n_categorical": 0, "n_numeric": 0, "interaction_pairs": 0}, "must be >= 1, got 0"),
        ({"cardinality": 1}, "cardinality must be an integer >= 2, got 1"),
        ({"cardinality": [10] * 7 + [1]}, "cardinality must be an integer >= 2, got 1"),
        ({"cardinality": [10] * 7}, "one value per categorical field \\(8\\), got 7 values"),
        ({"cardinality": "10"}, "cardinality must be an integer >= 2 or a list .* got '10'"),
        ({"bad_rate": 0.0}, r"bad_rate must be a number within \(0, 1\), got 0.0"),
        ({"bad_rate": 1}, r"bad_rate .* got 1$"),
        ({"bad_rate": float("nan")}, "bad_rate .* got nan"),
        ({"missing_rate": 1.0}, r"missing_rate must be a number within \[0, 1\), got 1.0"),
        ({"missing_rate": -0.1}, "missing_rate .* got -0.1"),
        ({"noise": -1}, r"noise must be a number within \[0, inf\], got -1"),
        ({"main_effect": float("inf")}, "main_effect .* got inf"),
        ({"interaction_strength": -2.0}, "interaction_strength .* got -2.0"),
        ({"categorical_main_effect": "1"}, "categorical_main_effect .* got '1'"),
        ({"interaction_pairs": 5}, "interaction_pairs=5 needs 10 categorical fields"),
        ({"interaction_pairs": [(0, 8)]}, r"pair \(0, 8\) must index categorical fields 0..7"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"target": ""}, "target must be a non-empty column name, got ''"),
        ({"target": "num_0"}, "target must differ from the feature names, got 'num_0'"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_synthetic(**{"n_rows": 10, **kwargs})
