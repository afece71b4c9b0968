"""Checks on a raw frame before any model sees it: target, column roles, missing and infinite values."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from zoo.errors import ZooError

log = logging.getLogger(__name__)

ROLES = ("categorical", "numeric", "id", "ignore")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _matches(column: pd.Series, values: list[Any]) -> np.ndarray:
    """Membership that treats 1, 1.0 and '1' as the same label (CSV readers disagree on types)."""
    as_text = column.astype("string").str.strip()
    wanted = {str(v).strip() for v in values}
    numeric = pd.to_numeric(column, errors="coerce")
    wanted_numbers = {float(v) for v in values if _is_number(v)}
    hit = as_text.isin(wanted).to_numpy(dtype=bool, na_value=False)
    if wanted_numbers:
        hit = hit | numeric.isin(wanted_numbers).to_numpy(dtype=bool, na_value=False)
    return hit


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def resolve_target(
    frame: pd.DataFrame, *, target: str, bad_value: Any, good_value: Any = None
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Split off the target as 0/1 (1 = default); rows with a missing target are dropped.

    Returns the features and labels of the kept rows, and their positions in `frame`.

    Without `good_value` the target must hold exactly two classes. With it, rows whose target is
    neither good nor bad (e.g. loans still open) are dropped and counted in the log.
    """
    if target not in frame.columns:
        raise ZooError(
            f"target column {target!r} is not in the data; columns are: {', '.join(map(str, frame.columns))}"
        )
    column = frame[target]
    present = column.notna().to_numpy()
    if not present.any():
        raise ZooError(f"target column {target!r} is empty (all values missing)")
    if not present.all():
        log.warning("dropping %d rows whose target %r is missing", int((~present).sum()), target)
    bad_values = _as_list(bad_value)
    if not bad_values:
        raise ZooError(f"dataset.bad_value is not set: name the value of {target!r} that means default")
    is_bad = _matches(column, bad_values)
    if not is_bad.any():
        seen = ", ".join(map(repr, sorted(map(str, column.dropna().unique()))[:10]))
        raise ZooError(f"bad_value {bad_value!r} never occurs in target {target!r}; values seen: {seen}")
    if good_value is not None:
        is_good = _matches(column, _as_list(good_value)) & ~is_bad
        keep = present & (is_bad | is_good)
        if (present & ~keep).any():
            log.info("dropping %d rows whose target is neither good nor bad", int((present & ~keep).sum()))
    else:
        classes = column[present].astype("string").str.strip().unique()
        if len(classes) != 2:
            shown = ", ".join(map(repr, sorted(map(str, classes))[:10]))
            raise ZooError(
                f"target {target!r} has {len(classes)} classes ({shown}), expected exactly 2; "
                "set dataset.good_value to keep only some of them"
            )
        keep = present
    y = is_bad[keep].astype(np.int8)
    if y.min() == y.max():
        raise ZooError(f"target {target!r} holds a single class after filtering, expected good and bad rows")
    features = frame.loc[keep].drop(columns=[target]).reset_index(drop=True)
    return features, y, np.flatnonzero(keep)


def infer_roles(frame: pd.DataFrame, roles: Mapping[str, Iterable[str]] | None) -> dict[str, str]:
    """Role of every column: as configured ({role: [columns]}), else numeric for numbers and
    categorical otherwise."""
    given: dict[str, str] = {}
    for role, columns in dict(roles or {}).items():
        if role not in ROLES:
            raise ZooError(f"dataset.roles.{role} is not a role; expected one of {', '.join(ROLES)}")
        for name in _as_list(columns):
            if name not in frame.columns and role == "ignore":
                continue  # ignoring an absent column is harmless (file variants differ)
            if name not in frame.columns:
                raise ZooError(
                    f"dataset.roles.{role} names column {name!r}, which is not in the data; "
                    f"columns are: {', '.join(map(str, frame.columns))}"
                )
            if name in given and given[name] != role:
                raise ZooError(f"column {name!r} is given two roles: {given[name]} and {role}")
            given[name] = role
    out: dict[str, str] = {}
    for name in frame.columns:
        if name in given:
            out[str(name)] = given[name]
            continue
        dtype = frame[name].dtype
        is_number = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        out[str(name)] = "numeric" if is_number else "categorical"
    if not any(r in ("categorical", "numeric") for r in out.values()):
        raise ZooError("no feature columns left: every column is the target, an id or ignored")
    return out


def check_features(
    frame: pd.DataFrame, roles: Mapping[str, str], *, allow_empty: bool = False
) -> pd.DataFrame:
    """Reject all-missing columns (unless `allow_empty`: scoring a small file) and infinite numbers;
    coerce numeric columns to float."""
    out = {}
    for name, role in roles.items():
        if role not in ("categorical", "numeric"):
            continue
        column = frame[name]
        if column.isna().all() and not allow_empty:
            raise ZooError(f"column {name!r} is entirely missing; drop it or list it in dataset.roles.ignore")
        if role == "numeric":
            values = pd.to_numeric(column, errors="coerce")
            bad_text = values.isna() & column.notna()
            if bad_text.any():
                example = column[bad_text].iloc[0]
                raise ZooError(
                    f"numeric column {name!r} holds non-numeric value {example!r}; "
                    f"expected numbers, or list it in dataset.roles.categorical"
                )
            array = values.to_numpy(dtype=np.float64, na_value=np.nan)
            n_inf = int(np.isinf(array).sum())
            if n_inf:
                raise ZooError(
                    f"numeric column {name!r} holds {n_inf} infinite values, expected finite numbers "
                    "or missing values"
                )
            out[name] = array
        else:
            out[name] = column
    return pd.DataFrame(out, index=frame.index)
