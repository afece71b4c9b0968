"""Checks on a raw frame before any model sees it: target, column roles, missing and infinite values."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from zoo.errors import ZooError

log = logging.getLogger(__name__)

ROLES = ("categorical", "numeric", "id", "ignore")
#: The largest magnitude a numeric value may have: model inputs are float32, and a larger value
#: would become infinite there. Training and scoring refuse such values alike (docs/faults.md).
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: Text read as numbers written with a separator: '1,234' or '1,234,567.5' (thousands), '1,5'
#: (a decimal comma), beside plain numbers.
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
#: Rows of a text column looked at for numbers with separators (the first ones, no sort).
SEPARATOR_ROWS = 20_000


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _matches(column: pd.Series, values: list[Any]) -> np.ndarray:
    """Membership that treats 1, 1.0 and '1' as the same label (CSV readers disagree on types);
    decided once per distinct value."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    distinct = pd.Series(uniques)
    as_text = distinct.astype("string").str.strip()
    wanted = {str(v).strip() for v in values}
    wanted_numbers = {float(v) for v in values if _is_number(v)}
    hit = as_text.isin(wanted).to_numpy(dtype=bool, na_value=False)
    if wanted_numbers:
        numeric = pd.to_numeric(distinct, errors="coerce")
        hit = hit | numeric.isin(wanted_numbers).to_numpy(dtype=bool, na_value=False)
    return np.append(hit, False)[codes]  # code -1 (missing) takes the appended False


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def check_unique_columns(columns: Iterable[Any], what: str) -> None:
    """Two columns of one name are an error: a reader would rename the second (`x.1`) or pick
    one, and a model would score or train on a column nobody chose."""
    seen: set[str] = set()
    for name in columns:
        if str(name) in seen:
            raise ZooError(f"{what} has column {str(name)!r} twice, expected unique column names")
        seen.add(str(name))


def resolve_target(
    frame: pd.DataFrame, *, target: str, bad_value: Any, good_value: Any = None
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Split off the target as 0/1 (1 = default); rows with a missing target are dropped.

    Returns the features and labels of the kept rows, and their positions in `frame`.

    Without `good_value` the target must hold exactly two classes. With it, rows whose target is
    neither good nor bad (e.g. loans still open) are dropped and counted in the log.
    """
    check_unique_columns(frame.columns, "the data")
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
        classes = pd.Series(column[present].unique()).astype("string").str.strip().unique()
        if len(classes) == 1:
            raise ZooError(
                f"target {target!r} holds one value ({classes[0]!r}) in all {int(present.sum())} rows, "
                "expected good and bad loans; check that dataset.target names the outcome column and "
                "that the data holds both outcomes"
            )
        if len(classes) != 2:
            shown = ", ".join(map(repr, sorted(map(str, classes))[:10]))
            raise ZooError(
                f"target {target!r} has {len(classes)} classes ({shown}), expected exactly 2; "
                "set dataset.good_value to keep only some of them"
            )
        keep = present
    y = is_bad[keep].astype(np.int8)
    if (
        y.min() == y.max()
    ):  # all bad (some are, checked above): bad_value matches every row, or good_value none
        seen = ", ".join(map(repr, sorted(map(str, column.dropna().unique()))[:10]))
        raise ZooError(
            f"target {target!r}: every kept row is bad (bad_value={bad_value!r}, "
            f"good_value={good_value!r}; values seen: {seen}); set dataset.bad_value to the value(s) "
            "meaning default and dataset.good_value to those meaning repaid"
        )
    kept = frame if keep.all() else frame.loc[keep]  # no copy of a frame whose rows are all kept
    features = kept.drop(columns=[target]).reset_index(drop=True)
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
        if not is_number:
            check_separated_numbers(frame[name], str(name))
        out[str(name)] = "numeric" if is_number else "categorical"
    if not any(r in ("categorical", "numeric") for r in out.values()):
        raise ZooError("no feature columns left: every column is the target, an id or ignored")
    return out


def check_separated_numbers(column: pd.Series, name: str) -> None:
    """A text column whose values are numbers written with a comma ('1,234', '1,5') is a reading
    mistake, not categories: a one-line error with the reading option that reads them as numbers."""
    if not (pd.api.types.is_object_dtype(column.dtype) or pd.api.types.is_string_dtype(column.dtype)):
        return
    counts = column.iloc[:SEPARATOR_ROWS].value_counts()  # missing values are not counted
    if counts.empty:
        return
    text = pd.Series(counts.index.astype(str), dtype=object).str.strip()
    thousands = text.str.match(_THOUSANDS).to_numpy(dtype=bool)
    decimal = text.str.match(_DECIMAL_COMMA).to_numpy(dtype=bool) & ~thousands
    plain = text.str.match(_PLAIN_NUMBER).to_numpy(dtype=bool)
    rows = counts.to_numpy(dtype=np.float64)
    separated = rows[thousands | decimal].sum()
    if not separated or rows[thousands | decimal | plain].sum() < 0.95 * rows.sum():
        return
    example = text[thousands | decimal].iloc[0]
    as_thousands = "if ',' separates thousands: \"++dataset.thousands=','\""
    as_decimal = "if it is a decimal comma: \"dataset.sep=';'\" \"dataset.decimal=','\""
    first, second = (as_thousands, as_decimal)
    if rows[decimal].sum() > rows[thousands].sum():
        first, second = second, first
    raise ZooError(
        f"column {name!r} holds numbers written with ',' (e.g. {example!r}), read as text, not "
        f"numbers; read them as numbers {first}, or {second}; or list the column in "
        "dataset.roles.categorical to keep it as text"
    )


def integer_categories(
    frame: pd.DataFrame, roles: dict[str, str], rows: np.ndarray, max_distinct: Any
) -> list[str]:
    """Inferred numeric columns that take 3 to `max_distinct` integer values on training rows
    (region, product or grade codes) become categorical; returns their names.

    Only columns whose role was inferred move: a role given in dataset.roles is kept.
    """
    if max_distinct is None:
        return []
    if isinstance(max_distinct, bool) or not isinstance(max_distinct, int) or max_distinct < 3:
        raise ZooError(
            f"dataset.integer_categories={max_distinct!r}, expected null (off) or an integer >= 3: "
            "the most distinct integer values a numeric column may have to be read as categories"
        )
    moved = []
    for name, role in roles.items():
        if role != "numeric":
            continue
        column = frame[name]
        if not pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
            continue
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)[rows]
        values = values[np.isfinite(values)]
        if values.size and np.all(values == np.round(values)) and 3 <= np.unique(values).size <= max_distinct:
            roles[name] = "categorical"
            moved.append(name)
    return moved


def check_features(
    frame: pd.DataFrame, roles: Mapping[str, str], *, allow_empty: bool = False
) -> pd.DataFrame:
    """Reject all-missing columns (unless `allow_empty`: scoring a small file) and infinite numbers;
    coerce numeric columns to float and text categories to pandas categoricals."""
    out = {}
    for name, role in roles.items():
        if role not in ("categorical", "numeric"):
            continue
        column = frame[name]
        if role == "numeric":
            array = _numbers(column, name)
            with np.errstate(invalid="ignore"):
                in_range = np.abs(array) <= FLOAT32_MAX  # NaN is False: one pass in the usual case
            if not in_range.all():  # details only on failure
                missing = np.isnan(array)
                if missing.all() and not allow_empty:
                    raise ZooError(
                        f"column {name!r} is entirely missing; drop it or list it in dataset.roles.ignore"
                    )
                _check_range(array, ~(in_range | missing), frame.index, name)
            out[name] = pd.Series(array, index=frame.index, name=name, copy=False)
        else:
            if column.isna().all() and not allow_empty:
                raise ZooError(
                    f"column {name!r} is entirely missing; drop it or list it in dataset.roles.ignore"
                )
            out[name] = _coded(column)
    return pd.DataFrame(out, index=frame.index, copy=False)  # columns kept apart: no copy


def _check_range(array: np.ndarray, beyond: np.ndarray, index: pd.Index, name: str) -> None:
    """Infinite values, and finite ones beyond float32 (the models' input type), are an error in
    training and scoring alike: the first is named with its row (the frame's index label)."""
    if not beyond.any():
        return
    first = int(np.flatnonzero(beyond)[0])
    value, row = float(array[first]), index[first]
    n_inf = int(np.isinf(array).sum())
    n = n_inf or int(beyond.sum())
    what = f"{n} {'infinite ' if n_inf else ''}value{'s' if n > 1 else ''}"
    what += "" if n_inf else " beyond float32 range"
    raise ZooError(
        f"numeric column {name!r} holds {what} (first: {value:g} at row {row}), expected finite "
        f"numbers within ±{FLOAT32_MAX:.4g} or missing values"
    )


def _coded(column: pd.Series) -> pd.Series:
    """A text column as a pandas categorical: its text hashed once here, so the guards, the fit and
    the transform read integer codes (row takes, factorisations) instead of hashing it again."""
    if pd.api.types.is_object_dtype(column.dtype) or pd.api.types.is_string_dtype(column.dtype):
        return column.astype("category")
    return column


def _numbers(column: pd.Series, name: str) -> np.ndarray:
    """A numeric column as float64 (NaN missing); text that is not a number is a ZooError."""
    dtype = column.dtype
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)  # no copy of float64
    is_object = pd.api.types.is_object_dtype(dtype)
    is_bool = column.map(lambda v: isinstance(v, bool | np.bool_)) if is_object else None
    if pd.api.types.is_bool_dtype(dtype) or (is_bool is not None and is_bool.any()):
        example = column.dropna().iloc[0] if is_bool is None else column[is_bool].iloc[0]
        raise ZooError(
            f"numeric column {name!r} holds booleans (e.g. {bool(example)}), expected numbers: "
            "write them as 1 and 0, or list the column in dataset.roles.categorical"
        )
    values = pd.to_numeric(column, errors="coerce")
    bad_text = values.isna() & column.notna()
    if bad_text.any():
        example = column[bad_text].iloc[0]
        raise ZooError(
            f"numeric column {name!r} holds non-numeric value {example!r}; "
            f"expected numbers, or list it in dataset.roles.categorical"
        )
    return values.to_numpy(dtype=np.float64, na_value=np.nan)
