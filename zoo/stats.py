"""Statistics for comparing scorers: DeLong's AUC covariance, AUC intervals and tests, t-intervals.

DeLong, DeLong & Clarke-Pearson (1988) give the covariance of correlated AUCs computed on the same
rows; Sun & Xu (2014) compute it in O(n log n) from midranks. Label 1 is the positive class (a bad
loan), so an AUC is the chance that a random bad row scores above a random good one (ties count 1/2).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as scipy_stats

from zoo.errors import ZooError

__all__ = ["DeLong", "auc_ci", "delong", "delong_test", "mean_ci"]


class DeLong(NamedTuple):
    """AUC of each scorer (shape [k]) and DeLong's estimate of their covariance (shape [k, k])."""

    auc: np.ndarray
    cov: np.ndarray


def _check_level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise ZooError(f"expected a confidence level strictly between 0 and 1, got {level!r}")
    return float(level)


def _labels(y: Any) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ZooError(f"expected a 1-d array of labels, got shape {labels.shape}")
    bad = ~np.isin(labels, (0, 1))
    if bad.any():
        raise ZooError(f"expected labels 0 or 1, got {labels[bad][0].item()!r}")
    labels = labels.astype(bool)
    if labels.all() or not labels.any():
        raise ZooError(f"expected both classes among the labels, got only class {int(labels[0])}")
    return labels


def _scores(prob: Any, n: int, name: str) -> np.ndarray:
    scores = np.asarray(prob, dtype=float)
    if scores.shape != (n,):
        raise ZooError(f"expected {name} of shape ({n},) like the labels, got {scores.shape}")
    if not np.isfinite(scores).all():
        raise ZooError(f"expected finite scores in {name}, got {scores[~np.isfinite(scores)][0].item()!r}")
    return scores


def delong(y: Any, prob_a: Any, prob_b: Any = None) -> DeLong:
    """AUCs of one or two scorers on the same rows and their DeLong covariance (Sun & Xu 2014).

    The structural components are V10 (per positive: the share of negatives it outscores) and V01
    (per negative: the share of positives outscoring it); both come from midranks, never from the
    n_pos x n_neg comparison matrix.
    """
    labels = _labels(y)
    rows = [_scores(prob_a, len(labels), "prob_a")]
    if prob_b is not None:
        rows.append(_scores(prob_b, len(labels), "prob_b"))
    scores = np.vstack(rows)
    pos, neg = scores[:, labels], scores[:, ~labels]
    m, n = pos.shape[1], neg.shape[1]
    rank_pos = scipy_stats.rankdata(pos, axis=1)  # midranks within the positives
    rank_neg = scipy_stats.rankdata(neg, axis=1)
    rank_all = scipy_stats.rankdata(np.hstack([pos, neg]), axis=1)
    v10 = (rank_all[:, :m] - rank_pos) / n
    v01 = 1.0 - (rank_all[:, m:] - rank_neg) / m
    auc = v10.mean(axis=1)
    # np.cov of a [k, m] array is [k, k] (a 0-d array when k == 1: keep it 2-d)
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(rows), len(rows)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(rows), len(rows)))
    return DeLong(auc=auc, cov=s10 / m + s01 / n)


def auc_ci(y: Any, prob: Any, level: float = 0.95) -> tuple[float, float, float]:
    """(auc, lo, hi): the normal interval auc ± z·sd on the AUC scale (no logit transform), with
    DeLong's variance, clipped to [0, 1]."""
    z = scipy_stats.norm.ppf(0.5 + _check_level(level) / 2)
    result = delong(y, prob)
    auc, sd = float(result.auc[0]), math.sqrt(max(float(result.cov[0, 0]), 0.0))
    return auc, max(0.0, auc - z * sd), min(1.0, auc + z * sd)


def delong_test(y: Any, prob_a: Any, prob_b: Any, level: float = 0.95) -> dict[str, float]:
    """DeLong's test of AUC(a) = AUC(b) on the same rows: the difference a - b, its normal interval,
    z and the two-sided p-value. Identical scorers (zero variance of the difference) give z 0, p 1."""
    level = _check_level(level)
    result = delong(y, prob_a, prob_b)
    auc_a, auc_b = (float(a) for a in result.auc)
    var = float(result.cov[0, 0] + result.cov[1, 1] - 2 * result.cov[0, 1])
    return {"auc_a": auc_a, "auc_b": auc_b, **_normal_test(auc_a - auc_b, math.sqrt(max(var, 0.0)), level)}


def _normal_test(diff: float, sd: float, level: float) -> dict[str, float]:
    """diff, its normal interval diff ± z_crit·sd, z = diff / sd and the two-sided p-value; with sd 0,
    z is 0 for no difference and ±inf for any."""
    zcrit = float(scipy_stats.norm.ppf(0.5 + level / 2))
    no_diff = 0.0 if abs(diff) <= 1e-12 else math.copysign(math.inf, diff)
    z = diff / sd if sd > 1e-12 else no_diff
    return {
        "diff": diff,
        "diff_lo": diff - zcrit * sd,
        "diff_hi": diff + zcrit * sd,
        "z": z,
        "p_value": float(2 * scipy_stats.norm.sf(abs(z))),
    }


def mean_ci(values: Any, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): Student's t interval mean ± t(n-1)·s/√n, NaNs ignored; bounds NaN for n < 2."""
    level = _check_level(level)
    x = np.asarray(values, dtype=float).ravel()
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(scipy_stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half
