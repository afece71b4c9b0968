"""Partial dependence: the model's mean predicted probability of default on the validation rows
with one numeric field set to each point of a grid of its training quantiles (raw units)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo.data.spec import FeatureSpec
from zoo.explain.fields import Arrays, Field, model_logits, n_rows, stack
from zoo.outputs import write_atomic

PDP_FILE = "partial_dependence.png"
GRID_POINTS = 20


def grid(spec: FeatureSpec, name: str, points: int = GRID_POINTS) -> np.ndarray:
    """Distinct raw training quantiles of a numeric field at `points` evenly spaced probabilities."""
    quantiles = np.asarray(spec.field(name).quantiles, dtype=np.float64)  # type: ignore[union-attr]
    if not len(quantiles):
        return quantiles
    picks = np.linspace(0, len(quantiles) - 1, min(points, len(quantiles))).round().astype(int)
    return np.unique(quantiles[picks])


def _set_value(arrays: Arrays, spec: FeatureSpec, field: Field, value: float) -> Arrays:
    out = dict(arrays)
    x_num = arrays["x_num"].copy()
    for j in field.columns["x_num"]:
        numeric = spec.numeric[j]
        x_num[:, j] = 0.0 if numeric.is_indicator else float(numeric.encode(np.array([value]))[0])
    out["x_num"] = x_num
    if "x_raw" in arrays:
        x_raw = arrays["x_raw"].copy()
        x_raw[:, field.columns["x_raw"][0]] = value
        out["x_raw"] = x_raw
    return out


def partial_dependence(model: Any, val: Arrays, field: Field) -> pd.DataFrame:
    """value (raw units) -> mean predicted probability over the validation rows."""
    spec = model.feature_spec
    values = grid(spec, field.name)
    if not len(values):
        return pd.DataFrame({"value": [], "prob": []})
    logits = model_logits(model, stack([_set_value(val, spec, field, v) for v in values]))
    probs = 1.0 / (1.0 + np.exp(-logits.reshape(len(values), n_rows(val))))
    return pd.DataFrame({"value": values, "prob": probs.mean(1)})


def write_partial_dependence(run_dir: Path, curves: dict[str, pd.DataFrame], *, title: str) -> Path | None:
    """One grid of line charts, a panel per field; nothing when no numeric field is among the top."""
    curves = {name: c for name, c in curves.items() if len(c)}
    if not curves:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_cols = min(3, len(curves))
    n_rows_ = -(-len(curves) // n_cols)
    fig = Figure(figsize=(max(5.0, 3.6 * n_cols), 2.8 * n_rows_ + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows_, n_cols, squeeze=False).ravel()
    for ax, (name, curve) in zip(axes, curves.items(), strict=False):
        ax.plot(curve["value"], curve["prob"], marker=".", color="tab:blue")
        ax.set_xlabel(name, fontsize=8)
        ax.set_ylabel("mean P(default)", fontsize=8)
    for ax in axes[len(curves) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=9)
    path = Path(run_dir) / PDP_FILE
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
