"""The population stability index (PSI) of one binned distribution against another, and the bins
it is computed on: score deciles, a numeric field's deciles (with missing and each special code
as bins of their own) and a categorical field's categories (with missing and unseen).

PSI = sum over bins of (new share - reference share) * ln(new share / reference share); the
characteristic stability index (CSI) is the same sum on one input field's bins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zoo.data.spec import RESERVED_LABELS, NumericField
from zoo.data.special import format_code
from zoo.errors import ZooError

Counts = Sequence[float] | np.ndarray
#: The usual rule of thumb: below the first stable, up to the second watch, above it action.
STABLE_BELOW = 0.1
ACTION_ABOVE = 0.25
#: An empty bin's share, as evidently's `get_binned_data(feel_zeroes=True)`: 0.0001, or a millionth
#: of the smallest non-zero share when that is itself at most 0.0001; shares are not renormalised.
EMPTY_SHARE = 0.0001
#: The score's bins: deciles of the reference scores.
SCORE_BINS = 10
#: A numeric field's bins: deciles of its training values, read off the run's saved quantiles.
FIELD_DECILES = 10


def status(psi: float) -> str:
    """'stable' below 0.1, 'watch' from 0.1 to 0.25, 'action' above 0.25."""
    if psi < STABLE_BELOW:
        return "stable"
    return "watch" if psi <= ACTION_ABOVE else "action"


def shares(counts: Counts) -> np.ndarray:
    """Counts as shares of their total, empty bins filled as evidently does (EMPTY_SHARE)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ZooError("a distribution to compare has no rows")
    out = counts / total
    filled = out[out > 0]
    smallest = float(filled.min())
    out[out == 0] = smallest / 10**6 if smallest <= EMPTY_SHARE else EMPTY_SHARE
    return out


def psi_terms(reference_counts: Counts, new_counts: Counts) -> np.ndarray:
    """Each bin's term (new - reference) * ln(new / reference) of the PSI; their sum is the PSI."""
    if len(reference_counts) != len(new_counts):
        raise ZooError(
            f"PSI needs the same bins on both sides, got {len(reference_counts)} and {len(new_counts)}"
        )
    reference, new = shares(reference_counts), shares(new_counts)
    return (new - reference) * np.log(new / reference)


def psi(reference_counts: Counts, new_counts: Counts) -> float:
    """The population stability index of `new_counts` against `reference_counts`, bin by bin."""
    return float(psi_terms(reference_counts, new_counts).sum())


# --- bins ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bins:
    """How one quantity is cut into bins, and the bins' labels.

    kind "score" and "numeric": right-closed intervals on `edges` ((-inf, e0], (e0, e1], ...,
    (e_last, inf)); a numeric field then has a "missing" bin and one bin per special code.
    kind "categorical": "(missing)", "(unseen)", then the run's categories, in index order.
    """

    name: str
    kind: str
    edges: tuple[float, ...] = ()
    special_values: tuple[float, ...] = ()
    categories: tuple[str, ...] = field(default=(), repr=False)

    @property
    def labels(self) -> list[str]:
        if self.kind == "categorical":
            return [*RESERVED_LABELS, *self.categories]
        out = interval_labels(self.edges)
        if self.kind == "numeric":
            out += ["(missing)", *(f"= {format_code(c)} (special)" for c in self.special_values)]
        return out

    def __len__(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "categorical":
            out["categories"] = list(self.categories)
        else:
            out["edges"] = [float(e) for e in self.edges]
        if self.kind == "numeric":
            out["special_values"] = [float(c) for c in self.special_values]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Bins:
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            edges=tuple(float(e) for e in data.get("edges", ())),
            special_values=tuple(float(c) for c in data.get("special_values", ())),
            categories=tuple(str(c) for c in data.get("categories", ())),
        )


def interval_labels(edges: Sequence[float]) -> list[str]:
    if not len(edges):
        return ["all values"]
    text = [f"{e:.6g}" for e in edges]
    middle = [f"({lo}, {hi}]" for lo, hi in zip(text[:-1], text[1:], strict=True)]
    return [f"<= {text[0]}", *middle, f"> {text[-1]}"]


def score_bins(reference_scores: np.ndarray, n_bins: int = SCORE_BINS) -> Bins:
    """Bins at the deciles of the reference scores (NumPy's linear quantiles); tied deciles merge."""
    scores = np.asarray(reference_scores, dtype=np.float64)
    if scores.size == 0:
        raise ZooError("the run has no validation scores to build the score bins from")
    inner = np.quantile(scores, np.arange(1, n_bins) / n_bins)
    return Bins("score", "score", tuple(float(e) for e in np.unique(inner)))


def count_scores(bins: Bins, scores: np.ndarray) -> np.ndarray:
    """Rows per score bin: a score equal to an edge falls in the bin below it."""
    which = np.searchsorted(np.asarray(bins.edges, dtype=np.float64), np.asarray(scores, dtype=np.float64))
    return np.bincount(which, minlength=len(bins.edges) + 1)


def numeric_bins(numeric: NumericField) -> Bins:
    """Bins of a numeric field at the deciles of its training values, read off the quantiles the
    run saved (training values at evenly spaced probabilities) by linear interpolation; edges the
    field's encoding cannot tell apart (ties, clipping) merge."""
    quantiles = np.asarray(numeric.quantiles, dtype=np.float64)
    if quantiles.size < 2:
        return Bins(numeric.name, "numeric", (), tuple(numeric.special_values))
    grid = np.linspace(0.0, 1.0, quantiles.size)
    raw = np.unique(np.interp(np.arange(1, FIELD_DECILES) / FIELD_DECILES, grid, quantiles))
    encoded = encoded_edges(numeric, raw)
    keep = np.concatenate([[True], np.diff(encoded) > 0]) if encoded.size else np.zeros(0, bool)
    return Bins(numeric.name, "numeric", tuple(float(e) for e in raw[keep]), tuple(numeric.special_values))


def encoded_edges(numeric: NumericField, edges: Sequence[float] | np.ndarray) -> np.ndarray:
    """The edges in the model's float32 units, where the values are compared with them."""
    return numeric.encode(np.asarray(edges, dtype=np.float64)).astype(np.float32)


def count_numeric(
    bins: Bins,
    encoded: np.ndarray,
    edges: np.ndarray,
    missing: np.ndarray,
    special: Sequence[np.ndarray],
) -> np.ndarray:
    """Rows per bin of a numeric field from its float32 encoded values, the `encoded_edges`, and
    the masks of missing rows and of each special code (whose encoded values are imputed)."""
    n_intervals = len(bins.edges) + 1
    which = np.searchsorted(edges, np.asarray(encoded, dtype=np.float32))
    which = np.where(missing, n_intervals, which)
    for k, mask in enumerate(special):
        which = np.where(mask, n_intervals + 1 + k, which)
    return np.bincount(which, minlength=len(bins))


def count_raw_numeric(bins: Bins, numeric: NumericField, raw: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Rows per bin of a numeric field from raw values (NaN missing), through the run's encoding."""
    raw = np.asarray(raw, dtype=np.float64)
    special = [raw == code for code in bins.special_values]
    missing = np.isnan(raw)
    encoded = numeric.encode(raw).astype(np.float32)
    return count_numeric(bins, encoded, edges, missing, special)


def count_categories(bins: Bins, index: np.ndarray) -> np.ndarray:
    """Rows per category bin from the run's category indices (0 missing, 1 unseen, 2.. categories)."""
    return np.bincount(np.asarray(index, dtype=np.int64), minlength=len(bins))
