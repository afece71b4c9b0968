"""Synthetic mode "messy": the pathologies of real credit files, each at the share its knob asks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from zoo.data.sources import load_frame
from zoo.data.synthetic import make_synthetic
from zoo.errors import ZooError

SENTINELS = {
    "months_since_last_delinq": 999,
    "n_inquiries_6m": 99,
    "n_dependents": 9,
    "months_employed": -1,
    "months_at_address": 999_999,
}
AMOUNTS = ["income", "loan_amount", "revolving_balance"]
CONFIG = Path(__file__).resolve().parents[1] / "conf" / "dataset" / "synthetic_messy.yaml"


def messy(**kwargs: object) -> pd.DataFrame:
    return make_synthetic(mode="messy", **{"n_rows": 20_000, "seed": 0, **kwargs})


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return messy(n_rows=200_000, sentinel_rate=0.1, missing_rate=0.1)


def test_columns_and_dtypes() -> None:
    small = messy(n_rows=1_000)
    assert len(small) == 1_000 and small.columns[-1] == "default"
    assert small["default"].dtype == np.int8 and set(small["default"].unique()) == {0, 1}
    numeric = small.drop(columns=["region_code", "product_code", "purpose", "default"])
    assert (numeric.dtypes == np.float32).all()
    assert small["region_code"].dtype.kind == "i" and small["product_code"].dtype.kind == "i"
    assert set(small["region_code"]) <= set(range(1, 13)) and set(small["product_code"]) <= {
        10,
        20,
        30,
        40,
        50,
    }
    assert isinstance(small["purpose"].dtype, pd.CategoricalDtype)
    for name in ["has_mortgage", "is_self_employed", "prior_default", "has_phone"]:
        assert set(small[name].unique()) == {0.0, 1.0}, name


def test_deterministic_for_a_seed() -> None:
    a = messy(n_rows=5_000, seed=3, missing_rate=0.1)
    pd.testing.assert_frame_equal(a, messy(n_rows=5_000, seed=3, missing_rate=0.1))
    b = messy(n_rows=5_000, seed=4, missing_rate=0.1)
    assert not a["income"].equals(b["income"]) and not a["default"].equals(b["default"])


def test_sizes_and_bad_rate(frame: pd.DataFrame) -> None:
    assert len(messy(n_rows=1_000, bad_rate=0.1)) == 1_000
    n = len(frame)
    assert n == 200_000
    assert frame["default"].mean() == pytest.approx(0.2, abs=4 * np.sqrt(0.2 * 0.8 / n))


def test_sentinel_share_is_as_asked_and_far_outside_the_bulk(frame: pd.DataFrame) -> None:
    n = len(frame)
    for name, code in SENTINELS.items():
        is_code = frame[name] == code
        assert is_code.mean() == pytest.approx(0.1, abs=4 * np.sqrt(0.1 * 0.9 / n)), name
        bulk = frame.loc[~is_code, name].dropna()
        if code < 0:
            assert code < bulk.min(), name  # -1 in a column of counts from 0
        else:
            assert code >= 2 * bulk.quantile(0.99), name
    assert (
        not (messy(n_rows=5_000, sentinel_rate=0.0)[list(SENTINELS)] == list(SENTINELS.values())).any().any()
    )


def test_sentinel_rows_carry_signal_of_their_own(frame: pd.DataFrame) -> None:
    unknown = frame["months_since_last_delinq"] == 999
    rates = frame.groupby(unknown)["default"].mean()
    assert rates[True] - rates[False] > 0.03  # measured 0.06 (seed 0)


def test_missing_values_depend_on_other_columns(frame: pd.DataFrame) -> None:
    by_self_employed = frame["income"].isna().groupby(frame["is_self_employed"]).mean()
    assert by_self_employed[1.0] > 2.5 * by_self_employed[0.0]  # weights 4 vs 1 (and 2 for product 50)
    by_age = frame["months_employed"].isna().groupby(frame["age"] < 25).mean()
    assert by_age[True] > 2 * by_age[False]  # weight 3 under 25
    assert frame["income"].isna().mean() == pytest.approx(0.1, abs=0.005)
    delinq = frame["months_since_last_delinq"]
    known = delinq != 999
    assert (delinq[known].isna() == (frame["n_late_payments"][known] == 0)).all()  # never late: no month
    assert not messy(n_rows=5_000, missing_rate=0.0)[["income", "months_employed"]].isna().any().any()


def test_label_noise_flips_its_share_and_keeps_the_bad_rate() -> None:
    clean = messy(label_noise=0.0)
    noisy = messy(label_noise=0.1)
    features = clean.columns.drop("default")
    pd.testing.assert_frame_equal(clean[features], noisy[features])  # only the labels move
    flipped = (clean["default"] != noisy["default"]).mean()
    assert flipped == pytest.approx(0.1, abs=0.01)
    assert noisy["default"].mean() == pytest.approx(clean["default"].mean(), abs=0.01)


def test_amounts_are_heavy_tailed_and_ratios_pass_one(frame: pd.DataFrame) -> None:
    for name in AMOUNTS:
        values = frame[name].dropna()
        assert values.skew() > 10, name  # measured 39 to 84 (seed 0)
        assert values.max() > 15 * values.quantile(0.99), name  # measured 160 to 240
    assert (frame["debt_to_income"] > 1).any() and (frame["utilisation"] > 1).any()


def test_steps_and_non_monotone_codes(frame: pd.DataFrame) -> None:
    late = frame.groupby(frame["n_late_payments"].clip(upper=4))["default"].mean()
    assert late[3] - late[2] > 0.15
    dti = frame.groupby(pd.cut(frame["debt_to_income"], [0, 0.38, 0.43, 0.48, 9]), observed=True)["default"]
    rate = dti.mean()
    assert rate.iloc[2] - rate.iloc[1] > 0.1  # across 0.43
    for name in ["region_code", "product_code"]:
        by_code = frame.groupby(name)["default"].mean().to_numpy()
        steps = np.sign(np.diff(by_code))
        assert (steps > 0).any() and (steps < 0).any(), name  # up and down: a category, not a number


def test_the_config_builds_the_frame() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    loaded = load_frame(config)
    assert len(loaded) == config["params"]["n_rows"] == 5_000
    pd.testing.assert_frame_equal(loaded, make_synthetic(**config["params"], target=config["target"]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sentinel_rate": 0.6}, r"sentinel_rate must be a number within \[0, 0.5\], got 0.6"),
        ({"tail": 0.0}, r"tail must be a number within \(0, 3\], got 0.0"),
        ({"label_noise": -0.1}, r"label_noise must be a number within \[0, 0.5\], got -0.1"),
        ({"label_noise": 0.3, "bad_rate": 0.1}, r"label_noise=0.3 must be at most .* = 0.2"),
        ({"missing_rate": 0.25}, r"missing_rate must be a number within \[0, 0.2\], got 0.25"),
        ({"bad_rate": 0.0}, r"bad_rate must be a number within \(0, 1\), got 0.0"),
        ({"n_numeric": 3}, "n_numeric=3 has no effect with mode='messy', expected the default 8"),
        ({"interaction_pairs": 1}, "interaction_pairs=1 has no effect with mode='messy'"),
        ({"target": "income"}, "target must differ from the feature names, got 'income'"),
        ({"mode": "trees", "tail": 2.0}, "tail=2.0 has no effect with mode='trees'"),
        (
            {"mode": "interactions", "sentinel_rate": 0.1},
            "sentinel_rate=0.1 has no effect with mode='interactions'",
        ),
    ],
)
def test_bad_arguments_raise_naming_the_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ZooError, match=message) as info:
        make_synthetic(**{"mode": "messy", "n_rows": 10, **kwargs})
    assert "\n" not in str(info.value)
