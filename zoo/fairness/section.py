"""The `fairness` section of a run's metrics.json: for each protected attribute, the fair-lending
metrics of the test split at the run's threshold, and the features that proxy it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from zoo.fairness.groups import group_labels, is_age_name, needs_bins, order_groups, quartile_edges
from zoo.fairness.metrics import group_metrics
from zoo.fairness.proxies import proxy_table
from zoo.fairness.settings import fairness_settings

SPLIT = "test"


def attribute_edges(name: str, train: pd.Series, settings: dict[str, Any]) -> list[float] | None:
    """The bin edges of a protected column: set in fairness.bins; for other numbers with many
    values, fairness.age_bins when named like an age, else the training quartiles; None: by value."""
    if name in settings["bins"]:
        return list(settings["bins"][name])
    if not needs_bins(train):
        return None
    return list(settings["age_bins"]) if is_age_name(name) else quartile_edges(train)


def fairness_section(
    cfg: Any, dm: Any, test: dict[str, np.ndarray], threshold: float
) -> dict[str, Any] | None:
    """Fair-lending metrics per protected attribute (dataset.protected) on the test predictions
    `test` (prob, y, row), or None when the dataset declares none."""
    columns = list(getattr(dm, "protected_columns", None) or [])
    if not columns:
        return None
    settings = fairness_settings(cfg)
    values = dm.protected[SPLIT]
    # the test predictions' rows (positions in the input frame) in the DataModule's order
    position = pd.Series(np.arange(len(dm.arrays[SPLIT]["row"])), index=dm.arrays[SPLIT]["row"])
    at = position.loc[np.asarray(test["row"])].to_numpy()
    y, prob = np.asarray(test["y"], dtype=np.float64), np.asarray(test["prob"], dtype=np.float64)
    sample = dm.protected_sample
    features = sample[[c for c in sample.columns if not str(c).startswith("protected:")]]
    categorical = [c for c in features.columns if dm.roles.get(c) == "categorical"]
    attributes: dict[str, Any] = {}
    for name in columns:
        edges = attribute_edges(name, dm.protected["train"][name], settings)
        groups = group_labels(values[name], edges).iloc[at].reset_index(drop=True)
        report = group_metrics(
            y,
            prob,
            groups,
            threshold=threshold,
            min_group=settings["min_group"],
            air_threshold=settings["air_threshold"],
            order=order_groups(list(groups), edges),
        )
        train_groups = group_labels(sample[f"protected:{name}"], edges)
        others = features.drop(columns=[name], errors="ignore")
        proxies = proxy_table(
            others,
            train_groups,
            categorical=[c for c in categorical if c != name],
            top=settings["proxies"],
            min_group=settings["min_group"],
        )
        attributes[name] = {
            "used_as_feature": name in dm.allowed_protected,
            "bins": edges,
            **report,
            "proxies": proxies,
        }
    return {
        "split": SPLIT,
        "threshold": float(threshold),
        "approve": "prob <= threshold",
        "min_group": settings["min_group"],
        "air_threshold": settings["air_threshold"],
        "excluded": [c for c in columns if c not in dm.allowed_protected],
        "used_as_features": list(dm.allowed_protected),
        "dropped_for_protected": list(getattr(dm, "dropped_for_protected", [])),
        "attributes": attributes,
    }


def add_fairness(result: dict[str, Any], cfg: Any, dm: Any, predictions: dict[str, Any]) -> None:
    """Put the fairness section into `result` (what metrics.json holds) when the dataset declares
    protected columns; the run's threshold is `result["threshold"]`."""
    section = fairness_section(cfg, dm, predictions[SPLIT], float(result["threshold"]))
    if section is not None:
        result["fairness"] = section
