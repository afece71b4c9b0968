"""Proxies: the features that best predict a protected attribute on the training rows, reported
(never removed) so a reviewer can judge what carries the attribute into the model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from zoo.data.guards import feature_aucs


def proxy_table(
    features: pd.DataFrame,
    groups: pd.Series,
    *,
    categorical: list[str],
    top: int = 5,
    min_group: int = 30,
) -> list[dict[str, Any]]:
    """The `top` features by how well each alone separates one group of the attribute from the rest:
    max(AUC, 1 - AUC) of a number's values or of a category's out-of-fold group rate, as the
    leakage guard measures (zoo.data.guards.feature_aucs), taken over the groups with at least
    `min_group` rows (one-vs-rest). Each entry: feature, auc, and the group it separates best."""
    if top == 0 or features.empty:
        return []
    labels = np.asarray(groups, dtype=object)
    best: dict[str, tuple[float, str]] = {}
    names, counts = np.unique(labels, return_counts=True)
    for group, n in zip(names, counts, strict=True):
        if n < min_group or n > len(labels) - min_group:
            continue  # too few rows in the group or in the rest to measure
        is_group = (labels == group).astype(np.float64)
        for feature, auc in feature_aucs(features, is_group, categorical=categorical).items():
            if feature not in best or auc > best[feature][0]:
                best[feature] = (float(auc), str(group))
    ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[:top]
    return [{"feature": f, "auc": round(auc, 4), "group": g} for f, (auc, g) in ranked]
