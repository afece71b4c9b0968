"""Fair-lending metrics per group, at a run's threshold, with fairlearn's MetricFrame.

Convention (as in fair-lending practice): the favourable outcome is approval, `prob <= threshold`
(the complement of the run's decision `prob > threshold`, which predicts default); a creditworthy
applicant is one who repaid (label 0). So, per group:

- approval rate: P(approve); the adverse impact ratio (AIR) divides it by the most favoured
  group's, and is flagged below `air_threshold` (0.8, the four-fifths rule);
- TPR: P(approve | repaid) (equal opportunity), FPR: P(approve | defaulted) (with TPR, equalised
  odds); the gaps are the largest difference between groups, as fairlearn's `difference()`;
- SMD: the standardized mean difference of the probability of default against the most favoured
  group, (mean_g - mean_ref) / pooled standard deviation (positive: scored riskier);
- AUC of the score within the group, and calibration: bad rate against mean PD.

Groups with fewer than `min_group` rows are reported as too small, with no numbers, and take no
part in the gaps, ratios or the choice of the most favoured group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Per-group figures, in the order tables show them.
GROUP_FIGURES = ("approval_rate", "air", "smd", "tpr", "fpr", "auc", "bad_rate", "mean_pd")


def _auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """ROC AUC, NaN for a group with one class (where it is undefined)."""
    from sklearn.metrics import roc_auc_score

    y_true = np.asarray(y_true)
    if len(np.unique(y_true)) < 2:
        return float("nan")
    return float(roc_auc_score(y_true, y_score))


def _mean_true(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true)) if len(y_true) else float("nan")


def _mean_pred(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_pred)) if len(y_pred) else float("nan")


def _var_pred(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.var(y_pred, ddof=1)) if len(y_pred) > 1 else float("nan")


def metric_frames(
    y: np.ndarray | None, prob: np.ndarray, groups: pd.Series, threshold: float
) -> pd.DataFrame:
    """fairlearn MetricFrame figures per group (index: group): count, approval_rate, and with labels
    tpr, fpr, auc, bad_rate; mean_pd and var_pd of the score."""
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    prob = np.asarray(prob, dtype=np.float64)
    approved = (prob <= threshold).astype(int)
    features = pd.Series(np.asarray(groups, dtype=object), name="group")
    labelled = y is not None
    good = (1 - np.asarray(y, dtype=int)) if labelled else np.zeros(len(prob), dtype=int)
    decisions: dict[str, Any] = {"count": count, "approval_rate": selection_rate}
    if labelled:
        decisions |= {"tpr": true_positive_rate, "fpr": false_positive_rate}
    on_decisions = MetricFrame(
        metrics=decisions, y_true=good, y_pred=approved, sensitive_features=features
    ).by_group
    scores: dict[str, Any] = {"mean_pd": _mean_pred, "var_pd": _var_pred}
    if labelled:
        scores |= {"auc": _auc, "bad_rate": _mean_true}
    bad = np.asarray(y, dtype=int) if labelled else np.zeros(len(prob), dtype=int)
    on_scores = MetricFrame(metrics=scores, y_true=bad, y_pred=prob, sensitive_features=features).by_group
    table = pd.concat([on_decisions, on_scores], axis=1)
    table["count"] = table["count"].astype(int)
    return table


def _number(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def group_metrics(
    y: np.ndarray | None,
    prob: np.ndarray,
    groups: pd.Series,
    *,
    threshold: float,
    min_group: int = 30,
    air_threshold: float = 0.8,
    order: Sequence[str] | None = None,
) -> dict[str, Any]:
    """One protected attribute's fair-lending figures (see the module docstring): per group, and the
    attribute's worst AIR, largest |SMD|, TPR, FPR and AUC gaps. `y` None: the file has no labels,
    so only approval rate, AIR and SMD (which need none) are given."""
    table = metric_frames(y, prob, groups, threshold)
    order = list(order) if order is not None else sorted(table.index)
    sized = [g for g in order if table.loc[g, "count"] >= min_group]
    reference = None
    if sized:
        rates = table.loc[sized, "approval_rate"]
        reference = str(rates.idxmax())  # the most favoured group (first of equals, in order)
    best = float(table.loc[reference, "approval_rate"]) if reference is not None else float("nan")
    rows: list[dict[str, Any]] = []
    for group in order:
        figures = table.loc[group]
        n = int(figures["count"])
        row: dict[str, Any] = {"group": str(group), "count": n}
        if group not in sized:
            rows.append({**row, "too_small": True})
            continue
        air = figures["approval_rate"] / best if best > 0 else float("nan")
        smd = float("nan")
        if reference is not None:
            ref = table.loc[reference]
            n_ref = int(ref["count"])
            pooled = ((n - 1) * figures["var_pd"] + (n_ref - 1) * ref["var_pd"]) / (n + n_ref - 2)
            if pooled > 0:
                smd = (figures["mean_pd"] - ref["mean_pd"]) / np.sqrt(pooled)
        row |= {"approval_rate": _number(figures["approval_rate"]), "air": _number(air)}
        row["air_flag"] = bool(np.isfinite(air) and air < air_threshold)
        row["smd"] = _number(smd)
        for key in ("tpr", "fpr", "auc", "bad_rate"):
            if key in figures:
                row[key] = _number(figures[key])
        row["mean_pd"] = _number(figures["mean_pd"])
        rows.append(row)
    numbers = [r for r in rows if not r.get("too_small")]

    def gap(key: str) -> float | None:
        values = [r[key] for r in numbers if r.get(key) is not None]
        return float(max(values) - min(values)) if len(values) > 1 else None

    airs = [r["air"] for r in numbers if r["air"] is not None]
    smds = [abs(r["smd"]) for r in numbers if r["smd"] is not None]
    out: dict[str, Any] = {
        "reference_group": reference,
        "worst_air": float(min(airs)) if len(airs) > 1 else None,
        "max_abs_smd": float(max(smds)) if len(smds) > 1 else None,
    }
    out["air_flagged"] = out["worst_air"] is not None and out["worst_air"] < air_threshold
    if y is not None:
        out["tpr_gap"], out["fpr_gap"], out["auc_gap"] = gap("tpr"), gap("fpr"), gap("auc")
        both = [g for g in (out["tpr_gap"], out["fpr_gap"]) if g is not None]
        out["equalized_odds_gap"] = max(both) if both else None
        out["calibration_gap"] = gap_of_calibration(numbers)
    out["too_small"] = [r["group"] for r in rows if r.get("too_small")]
    out["groups"] = rows
    return out


def gap_of_calibration(rows: list[dict[str, Any]]) -> float | None:
    """The largest |mean PD - bad rate| of a group: how far its scores are from its outcomes."""
    gaps = [abs(r["mean_pd"] - r["bad_rate"]) for r in rows if r.get("bad_rate") is not None]
    return float(max(gaps)) if gaps else None
