"""Calibration: ECE and reliability tables, the PNG, Platt and isotonic calibrators and their JSON form."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from zoo.calibration import (
    calibrator_from_dict,
    expected_calibration_error,
    fit_calibrator,
    plot_reliability,
    reliability_table,
)
from zoo.errors import ZooError


def calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels drawn from them: calibrated by construction."""
    rng = np.random.default_rng(seed)
    prob = rng.beta(1.0, 3.0, size=n)
    return prob, (rng.random(n) < prob).astype(np.int8)


def brier(prob: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((prob - y) ** 2))


def test_ece_small_when_calibrated_and_large_when_not() -> None:
    prob, y = calibrated(50_000, seed=0)
    assert expected_calibration_error(prob, y) < 0.02
    assert expected_calibration_error(prob**3, y) > 0.1


def test_ece_matches_a_hand_loop() -> None:
    prob, y = calibrated(2_000, seed=1)
    prob = prob**2
    n_bins = 7
    total = 0.0
    for b in range(n_bins):
        lower, upper = b / n_bins, (b + 1) / n_bins
        inside = (prob >= lower) & ((prob < upper) if b < n_bins - 1 else (prob <= upper))
        if inside.any():
            total += inside.sum() * abs(y[inside].mean() - prob[inside].mean())
    assert expected_calibration_error(prob, y, n_bins=n_bins) == pytest.approx(total / len(prob))


def test_reliability_table() -> None:
    prob = np.array([0.05, 0.05, 0.15, 0.95, 1.0])
    y = np.array([0, 1, 0, 1, 1])
    table = reliability_table(prob, y, n_bins=10)
    assert list(table.columns) == ["bin", "lower", "upper", "count", "mean_predicted", "observed_rate"]
    assert table["count"].sum() == 5 and table["count"].tolist()[:2] == [2, 1]
    assert table.loc[9, "count"] == 2 and table.loc[9, "mean_predicted"] == pytest.approx(0.975)
    assert table.loc[0, "observed_rate"] == 0.5
    empty = table[table["count"] == 0]
    assert len(empty) == 7 and empty[["mean_predicted", "observed_rate"]].isna().all().all()
    np.testing.assert_allclose(table["upper"] - table["lower"], 0.1)
    prob, y = calibrated(3_000, seed=2)
    assert reliability_table(prob, y, n_bins=15)["count"].sum() == 3_000


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibrators_fix_a_miscalibrated_model_and_round_trip(method: str) -> None:
    prob, y = calibrated(20_000, seed=3)
    skewed = prob**3  # confident-looking but far too low
    val, test = slice(0, 10_000), slice(10_000, None)
    calibrator = fit_calibrator(method, skewed[val], y[val])
    fixed = calibrator.transform(skewed[test])
    assert brier(fixed, y[test]) < brier(skewed[test], y[test]) - 0.01
    assert (
        expected_calibration_error(fixed, y[test]) < 0.03 < expected_calibration_error(skewed[test], y[test])
    )
    data = json.loads(json.dumps(calibrator.to_dict()))
    assert data["method"] == method
    np.testing.assert_array_equal(calibrator_from_dict(data).transform(skewed), calibrator.transform(skewed))


def test_platt_leaves_calibrated_probabilities_alone() -> None:
    prob, y = calibrated(20_000, seed=4)
    calibrator = fit_calibrator("platt", prob, y)
    assert calibrator.to_dict()["a"] == pytest.approx(1.0, abs=0.1)
    assert calibrator.to_dict()["b"] == pytest.approx(0.0, abs=0.1)
    ends = calibrator.transform([0.0, 1.0])  # clipped before the logit: finite, strictly inside
    assert 0 < ends[0] < ends[1] < 1


def test_isotonic_is_monotone_and_clipped() -> None:
    prob, y = calibrated(5_000, seed=5)
    calibrator = fit_calibrator("isotonic", prob, y)
    grid = np.linspace(0, 1, 1001)
    out = calibrator.transform(grid)
    assert np.all(np.diff(out) >= 0)
    assert out.min() >= 0 and out.max() <= 1


def test_plot_reliability_writes_a_png(tmp_path) -> None:
    prob, y = calibrated(1_000, seed=6)
    path = plot_reliability(reliability_table(prob, y), tmp_path / "plots" / "reliability.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    assert [p.name for p in path.parent.iterdir()] == ["reliability.png"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fit_calibrator("beta", [0.1, 0.9], [0, 1]), "method 'beta' is not one of platt, isotonic"),
        (lambda: fit_calibrator("platt", [0.1, 0.9], [1, 1]), "needs both classes .* got only 1"),
        (lambda: expected_calibration_error([0.1, 1.2], [0, 1]), r"\[0, 1\], got 1.2"),
        (lambda: expected_calibration_error([0.1, np.nan], [0, 1]), "got nan"),
        (lambda: expected_calibration_error([0.1, 0.2], [0, 2]), "0 \\(good\\) or 1 \\(bad\\), got 2"),
        (lambda: expected_calibration_error([0.1], ["bad"]), "got 'bad'"),
        (lambda: expected_calibration_error([0.1, 0.2], [0]), "same length, got 1 and 2"),
        (lambda: expected_calibration_error([], []), "at least one prediction"),
        (lambda: reliability_table([0.1], [0], n_bins=0), "n_bins must be an integer >= 1, got 0"),
        (lambda: calibrator_from_dict({"method": "temp"}), "method 'temp' is not one of"),
        (lambda: calibrator_from_dict({"method": "platt", "a": 1.0}), "not a valid platt calibrator"),
        (lambda: calibrator_from_dict({"method": "isotonic", "x": [0, 1], "y": [0]}), "equally long"),
        (lambda: plot_reliability(pd.DataFrame({"bin": [0]}), "x.png"), "lacks columns"),
    ],
)
def test_bad_input_raises(call, message: str) -> None:
    with pytest.raises(ZooError, match=message):
        call()


def test_reliability_bin_edges_are_round_in_the_csv(tmp_path) -> None:
    table = reliability_table(np.array([0.05, 0.35, 0.95]), np.array([0, 1, 1]), n_bins=10)
    table.to_csv(tmp_path / "r.csv", index=False)
    text = (tmp_path / "r.csv").read_text()
    assert "0.30000000000000004" not in text and ",0.3,0.4," in text
    assert table["upper"].tolist() == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
