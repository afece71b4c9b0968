"""Special values: numeric codes that stand for a state, not a quantity (999 "unknown", -1 "no
record", 999999 "not applicable"), found on training rows so that models read them as categories.

Credit files are full of them, and one sentinel can set a column's standard deviation and squash
every real value to about zero. A code becomes missing (imputed) plus its own 0/1 indicator, as
scorecard libraries treat special codes. Found values are reported; users can declare codes too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from zoo.errors import ZooError

#: A candidate code is repeated in at least this share of a field's observed training values.
MIN_SHARE = 0.005
#: ...and at least this many rows, so that its indicator can be learned.
MIN_ROWS = 10
#: The values left once codes are taken out need this many distinct values to be "a distribution".
MIN_DISTINCT_REST = 5
#: At most this many codes per field.
MAX_CODES = 4
#: The rest's spread is measured between these quantiles.
REST_QUANTILES = (0.01, 0.99)


def is_nines(value: float) -> bool:
    """9, 99, 999, ... (also 999999.375: the integer part is what marks the code)."""
    whole = math.floor(abs(value))
    return value > 0 and whole >= 9 and set(str(whole)) == {"9"}


def _is_code(value: float, rest: np.ndarray) -> bool:
    """A repeated value is a code when it lies far outside the rest of the field's values.

    Far means beyond every other value by a gap at least the rest's 1-99% spread; the classic codes
    (9...9 above the rest's maximum and at least twice its 99th percentile, and negative values in a
    field that is otherwise never negative) need only lie outside the rest.
    """
    low, high = np.quantile(rest, REST_QUANTILES)
    spread = float(high - low)
    top, bottom = float(rest.max()), float(rest.min())
    if value > top:
        if is_nines(value) and value >= 2 * max(float(high), 0.0):
            return True
        return spread > 0 and value - top >= spread
    if value < bottom:
        if value < 0 <= bottom:
            return True
        return spread > 0 and bottom - value >= spread
    return False


def detect(values: np.ndarray) -> list[float]:
    """Special codes among a field's observed (non-missing) training values, outermost first.

    Candidates are values repeated in >= MIN_SHARE of rows; they are peeled from the outside in,
    each judged against the values that remain once it and the codes already found are removed.
    Real tails are left alone: their large values are not repeated, or sit next to other values.
    """
    values = values[np.isfinite(values)]
    if values.size < MIN_ROWS:
        return []
    distinct, counts = np.unique(values, return_counts=True)
    frequent = (counts >= max(MIN_ROWS, MIN_SHARE * values.size)) & (counts < values.size)
    candidates = distinct[frequent]
    found: list[float] = []
    for side in (candidates[::-1], candidates):  # from the top down, then from the bottom up
        for value in side:
            if float(value) in found:
                continue
            if len(found) >= MAX_CODES:
                break
            rest = values[~np.isin(values, [*found, value])]
            if np.unique(rest).size < MIN_DISTINCT_REST or not _is_code(float(value), rest):
                break  # the next candidate inwards is no further out than this one
            found.append(float(value))
    return sorted(set(found), key=found.index)


def declared_codes(setting: Any, numeric: Sequence[str]) -> dict[str, list[float]]:
    """`dataset.special_values` ({field: [codes], default: [codes]}) as codes per numeric field."""
    if setting is None:
        return {}
    if not isinstance(setting, Mapping):
        raise ZooError(
            f"dataset.special_values={setting!r}, expected a mapping such as "
            "{income: [999999], default: [-1, 999]}"
        )
    unknown = [k for k in setting if k != "default" and k not in numeric]
    if unknown:
        raise ZooError(
            f"dataset.special_values names {unknown[0]!r}, which is not a numeric field; "
            f"numeric fields are: {', '.join(numeric) or '(none)'}"
        )
    out = {}
    for name in numeric:
        codes = setting.get(name, setting.get("default", []))
        codes = [codes] if isinstance(codes, int | float) and not isinstance(codes, bool) else codes
        if not isinstance(codes, Sequence) or isinstance(codes, str):
            raise ZooError(f"dataset.special_values.{name}={codes!r}, expected a list of numbers")
        for code in codes:
            if isinstance(code, bool) or not isinstance(code, int | float) or not math.isfinite(code):
                raise ZooError(f"dataset.special_values.{name} holds {code!r}, expected finite numbers")
        out[name] = [float(c) for c in codes]
    return out


def check_detect_setting(value: Any) -> bool:
    """`dataset.detect_special_values`: true or false."""
    if not isinstance(value, bool):
        raise ZooError(f"dataset.detect_special_values={value!r}, expected true or false")
    return value


def format_code(value: float) -> str:
    """A code as text for names and reports: 999 rather than 999.0."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
