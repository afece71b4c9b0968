"""Probability calibration: expected calibration error, reliability tables and plots, and
post-hoc calibrators (Platt, isotonic) fitted on validation predictions and stored as plain JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from zoo.errors import ZooError
from zoo.outputs import write_atomic

__all__ = [
    "CALIBRATION_METHODS",
    "Calibrator",
    "IsotonicCalibrator",
    "PlattCalibrator",
    "calibrator_from_dict",
    "expected_calibration_error",
    "fit_calibrator",
    "plot_reliability",
    "reliability_table",
]

CALIBRATION_METHODS = ("platt", "isotonic")
_EPS = 1e-6  # probabilities are clipped to [_EPS, 1 - _EPS] before taking a logit


def _first(values: np.ndarray) -> Any:
    """The first element as a plain Python value, for error messages."""
    value = values[0]
    return value.item() if isinstance(value, np.generic) else value


def _as_prob(prob: Any) -> np.ndarray:
    """prob as a 1-D float64 array, or raise unless every value is a probability."""
    values = np.asarray(prob, dtype=np.float64).ravel()
    bad = ~((values >= 0) & (values <= 1))  # also catches NaN
    if bad.any():
        raise ZooError(f"probabilities must lie in [0, 1], got {_first(values[bad])!r}")
    return values


def _as_labels(y: Any, n: int) -> np.ndarray:
    """y as a 1-D int8 array of 0/1 labels (1 = bad) of length n."""
    values = np.asarray(y).ravel()
    if values.shape[0] != n:
        raise ZooError(f"labels and probabilities must have the same length, got {values.shape[0]} and {n}")
    bad = ~np.isin(values, (0, 1))
    if bad.any():
        raise ZooError(f"labels must be 0 (good) or 1 (bad), got {_first(values[bad])!r}")
    return values.astype(np.int8)


def _check_inputs(prob: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    values = _as_prob(prob)
    if values.shape[0] == 0:
        raise ZooError("calibration needs at least one prediction, got none")
    return values, _as_labels(y, values.shape[0])


def _logit(prob: np.ndarray) -> np.ndarray:
    clipped = np.clip(prob, _EPS, 1 - _EPS)
    return np.log(clipped) - np.log1p(-clipped)


def reliability_table(prob: Any, y: Any, *, n_bins: int = 10) -> pd.DataFrame:
    """Predicted vs observed bad rate in equal-width bins on [0, 1]; empty bins have NaN rates.

    Bins are [lower, upper) except the last, which includes 1.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ZooError(f"n_bins must be an integer >= 1, got {n_bins!r}")
    prob, y = _check_inputs(prob, y)
    which = np.minimum((prob * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(which, weights=prob, minlength=n_bins) / count
        observed_rate = np.bincount(which, weights=y, minlength=n_bins) / count
    edges = np.arange(n_bins + 1) / n_bins  # k / n: 0.3 reads 0.3 (linspace gives 0.30000000000000004)
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": count,
            "mean_predicted": mean_predicted,
            "observed_rate": observed_rate,
        }
    )


def expected_calibration_error(prob: Any, y: Any, *, n_bins: int = 10) -> float:
    """ECE: the count-weighted mean of |observed bad rate - mean predicted| over equal-width bins."""
    table = reliability_table(prob, y, n_bins=n_bins)
    filled = table[table["count"] > 0]
    gap = (filled["observed_rate"] - filled["mean_predicted"]).abs()
    return float((filled["count"] * gap).sum() / filled["count"].sum())


def plot_reliability(table: pd.DataFrame, path: Path | str, *, title: str = "") -> Path:
    """Write a PNG of observed vs predicted bad rate per bin, marker area by count, with the diagonal."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    missing = [c for c in ("count", "mean_predicted", "observed_rate") if c not in table.columns]
    if missing:
        raise ZooError(f"reliability table lacks columns {missing}; build it with reliability_table()")
    filled = table[table["count"] > 0]
    fig = Figure(figsize=(4.5, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    if len(filled):
        area = 300 * filled["count"] / filled["count"].max()
        ax.plot(filled["mean_predicted"], filled["observed_rate"], color="tab:blue", linewidth=1)
        ax.scatter(filled["mean_predicted"], filled["observed_rate"], s=np.maximum(area, 8), zorder=3)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability", ylabel="observed bad rate")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return write_atomic(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=120))


@dataclass(frozen=True)
class Calibrator:
    """A fitted map from model probabilities to calibrated ones; `to_dict()` is plain JSON."""

    method: ClassVar[str]

    def transform(self, prob: Any) -> np.ndarray:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class PlattCalibrator(Calibrator):
    """Platt scaling on the logit: p' = sigmoid(a * logit(p) + b)."""

    a: float
    b: float
    method: ClassVar[str] = "platt"

    def transform(self, prob: Any) -> np.ndarray:
        z = self.a * _logit(_as_prob(prob)) + self.b
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid without overflow

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class IsotonicCalibrator(Calibrator):
    """Isotonic regression as its knots, linearly interpolated and clipped at the ends."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    method: ClassVar[str] = "isotonic"

    def transform(self, prob: Any) -> np.ndarray:
        return np.interp(_as_prob(prob), self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "x": list(self.x), "y": list(self.y)}


def fit_calibrator(method: str, prob: Any, y: Any) -> Calibrator:
    """Fit a `method` calibrator ('platt' or 'isotonic') on validation probabilities and labels."""
    if method not in CALIBRATION_METHODS:
        raise ZooError(f"calibration method {method!r} is not one of {', '.join(CALIBRATION_METHODS)}")
    prob, y = _check_inputs(prob, y)
    if np.unique(y).shape[0] < 2:
        raise ZooError(f"calibration needs both classes in the labels, got only {int(y[0])}")
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        # C large: effectively unpenalised (C=inf needs scikit-learn >= 1.8)
        model = LogisticRegression(C=1e10).fit(_logit(prob)[:, None], y)
        return PlattCalibrator(a=float(model.coef_[0, 0]), b=float(model.intercept_[0]))
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(prob, y)
    return IsotonicCalibrator(
        x=tuple(float(v) for v in model.X_thresholds_), y=tuple(float(v) for v in model.y_thresholds_)
    )


def calibrator_from_dict(data: dict[str, Any]) -> Calibrator:
    """Rebuild a calibrator from `Calibrator.to_dict()` output."""
    if not isinstance(data, dict):
        raise ZooError(f"a calibrator must be a dict from Calibrator.to_dict(), got {data!r}")
    method = data.get("method")
    if method not in CALIBRATION_METHODS:
        raise ZooError(f"calibrator method {method!r} is not one of {', '.join(CALIBRATION_METHODS)}")
    try:
        if method == "platt":
            a, b = float(data["a"]), float(data["b"])
            if not (math.isfinite(a) and math.isfinite(b)):
                raise ValueError
            return PlattCalibrator(a=a, b=b)
        x = tuple(float(v) for v in data["x"])
        y = tuple(float(v) for v in data["y"])
    except (KeyError, TypeError, ValueError):
        raise ZooError(f"calibrator dict {data!r} is not a valid {method} calibrator") from None
    if not x or len(x) != len(y) or np.any(np.diff(x) < 0):
        raise ZooError(f"isotonic calibrator needs equally long x and y with x sorted, got {data!r}")
    return IsotonicCalibrator(x=x, y=y)
