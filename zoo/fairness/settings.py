"""The `fairness:` block of conf/config.yaml and the `dataset.protected` / `dataset.allow_protected`
keys: checked before any work, each bad value one line."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from zoo.config_targets import plain as _plain
from zoo.errors import ZooError

#: The `fairness:` block's keys and defaults (docs/fairness.md).
DEFAULTS: dict[str, Any] = {
    "min_group": 30,  # test rows a group needs to be given numbers; fewer: reported as too small
    "air_threshold": 0.8,  # the four-fifths rule: an adverse impact ratio below it is flagged
    "bins": {},  # {numeric protected column: [edges]}, e.g. {age_in_years: [25, 40, 60]}
    "age_bins": [25, 40, 60],  # edges of a numeric protected column named like an age: <25, 25-40, 40-60, 60+
    "proxies": 5,  # features reported per protected attribute, best predictors of it first
}


def as_columns(value: Any, key: str) -> list[str]:
    """A list of column names from a config value (None: none); anything else is one line."""
    value = _plain(value)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(c, str) and c for c in value):
        raise ZooError(f"dataset.{key}={value!r}, expected a list of column names, e.g. [race, sex]")
    if len(set(value)) != len(value):
        twice = next(c for c in value if value.count(c) > 1)
        raise ZooError(f"dataset.{key} names {twice!r} twice")
    return list(value)


def protected_columns(dataset: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """`dataset.protected` and `dataset.allow_protected`, checked against each other: a column
    allowed as a feature must first be declared protected."""
    protected = as_columns(dataset.get("protected"), "protected")
    allowed = as_columns(dataset.get("allow_protected"), "allow_protected")
    for name in allowed:
        if name not in protected:
            raise ZooError(
                f"dataset.allow_protected names {name!r}, which is not in dataset.protected "
                f"({', '.join(protected) or 'empty'}); declare it protected first: "
                f"'dataset.protected=[{','.join([*protected, name])}]'"
            )
    return protected, allowed


def check_protected_columns(protected: Iterable[str], columns: Iterable[Any], *, target: Any) -> None:
    """Every declared protected column is a column of the data, and not the target."""
    present = [str(c) for c in columns]
    for name in protected:
        if name == target:
            raise ZooError(
                f"dataset.protected names the target column {name!r}; the target is never a feature"
            )
        if name not in present:
            raise ZooError(
                f"dataset.protected names {name!r}, which is not a column of the data; "
                f"columns are: {', '.join(present)}"
            )


def fairness_settings(cfg: Any) -> dict[str, Any]:
    """The run's `fairness:` settings over DEFAULTS, each checked."""
    given = dict(_plain(cfg.get("fairness") if cfg is not None else None) or {})
    unknown = [k for k in given if k not in DEFAULTS]
    if unknown:
        raise ZooError(f"fairness.{unknown[0]} is not a setting; expected one of: {', '.join(DEFAULTS)}")
    out = {**DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
    for key in ("min_group", "proxies"):
        value = out[key]
        low = 2 if key == "min_group" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ZooError(f"fairness.{key}={value!r}, expected an integer >= {low}")
    air = out["air_threshold"]
    if isinstance(air, bool) or not isinstance(air, int | float) or not 0 < air <= 1:
        raise ZooError(f"fairness.air_threshold={air!r}, expected a number in (0, 1], e.g. 0.8")
    out["air_threshold"] = float(air)
    out["age_bins"] = check_edges(out["age_bins"], "fairness.age_bins")
    bins = out["bins"]
    if not isinstance(bins, dict):
        raise ZooError(f"fairness.bins={bins!r}, expected {{column: [edges]}}, e.g. {{age: [25, 40, 60]}}")
    out["bins"] = {str(k): check_edges(v, f"fairness.bins.{k}") for k, v in bins.items()}
    return out


def check_edges(value: Any, key: str) -> list[float]:
    """Bin edges: a non-empty, strictly increasing list of finite numbers."""
    ok = isinstance(value, list | tuple) and len(value) > 0
    ok = ok and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not ok or any(b <= a for a, b in zip(value, value[1:], strict=False)):
        raise ZooError(f"{key}={value!r}, expected strictly increasing finite numbers, e.g. [25, 40, 60]")
    return [float(v) for v in value]
