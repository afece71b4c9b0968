"""Protected values as group labels: categories as they are, numbers (an age) in documented bins."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

#: A numeric column with at most this many distinct values is grouped by value, not binned.
MAX_VALUE_GROUPS = 10
#: The label of rows whose protected value is missing: a group of its own, never dropped.
MISSING = "missing"


def is_age_name(name: str) -> bool:
    """`age`, `age_in_years`, `AGE`, `applicantAge`, `DAYS_BIRTH`: a word age or birth in the name."""
    words = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name)
    return any(w.lower() in ("age", "birth", "dob") for w in words)


def _number(value: float) -> str:
    return f"{value:g}"


def bin_labels(edges: Sequence[float]) -> list[str]:
    """`<25`, `25-40`, `40-60`, `60+` for edges [25, 40, 60] (each bin holds its lower edge)."""
    inner = [f"{_number(a)}-{_number(b)}" for a, b in zip(edges, edges[1:], strict=False)]
    return [f"<{_number(edges[0])}", *inner, f"{_number(edges[-1])}+"]


def needs_bins(values: pd.Series) -> bool:
    """A number column with more distinct values than MAX_VALUE_GROUPS (an age, an income)."""
    dtype = values.dtype
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    return bool(numeric and values.nunique(dropna=True) > MAX_VALUE_GROUPS)


def quartile_edges(values: pd.Series) -> list[float]:
    """Edges at the quartiles of `values` (3 significant figures), for a number without set bins."""
    finite = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if not len(finite):
        return [0.0]
    quartiles = np.quantile(finite, [0.25, 0.5, 0.75])
    return [float(e) for e in np.unique([float(f"{q:.3g}") for q in quartiles])]


def group_labels(values: pd.Series, edges: Sequence[float] | None) -> pd.Series:
    """Each row's group: its bin when `edges` are given (left-closed: 25 is in 25-40), else its
    value as text; missing values are the group MISSING."""
    missing = values.isna().to_numpy()
    if edges is not None:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        index = np.searchsorted(np.asarray(edges, dtype=np.float64), numbers, side="right")
        labels = np.asarray(bin_labels(edges), dtype=object)[np.minimum(index, len(edges))]
    else:
        labels = values.astype(str).to_numpy(dtype=object)
    labels = np.where(missing, MISSING, labels)
    return pd.Series(labels, index=values.index, name=values.name, dtype=object)


def order_groups(labels: Sequence[str], edges: Sequence[float] | None) -> list[str]:
    """Groups in reading order: bins from low to high, values sorted; MISSING last."""
    present = set(labels)
    ordered = (
        [g for g in bin_labels(edges) if g in present] if edges is not None else sorted(present - {MISSING})
    )
    return ordered + ([MISSING] if MISSING in present else [])
