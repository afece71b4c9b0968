"""Value encodings fitted on training rows: category keys that ignore the column's dtype, and
numeric encodings (standard, robust clipping, quantile-normal, smooth clipping) that invert back
to raw units."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from zoo.data.spec import INDICATOR, NUMERIC_ENCODINGS, SPECIAL, NumericField
from zoo.errors import ZooError

#: Raw training quantiles kept per numeric field: many for quantile-normal encoding (its
#: mapping), fewer otherwise (bin edges for piecewise-linear embeddings, reports).
N_QUANTILES = {"quantile_normal": 1001}
N_QUANTILES_DEFAULT = 65
#: Robust clipping bounds, as training quantiles.
CLIP_QUANTILES = (0.005, 0.995)
_EPS = 1e-7  # quantile-normal: keep probabilities off 0 and 1 (|z| <= 5.2)
#: Smooth clipping x / sqrt(1 + (x / c)^2) bounds robust-scaled values to (-c, c) (RealMLP-TD).
SMOOTH_CLIP = 3.0


# --- categories -------------------------------------------------------------------------------


def category_key(value: Any) -> str | None:
    """One value's category key: the same for 1, 1.0, '1 ' and a categorical holding 1.

    Integral floats become integer text, text is stripped (blank text is missing), booleans
    become 'True'/'False' (as pandas writes them), anything else its `str`.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        if number.is_integer() and abs(number) < 2**63:
            return str(int(number))
        return repr(number)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value).strip()
    return text or None


def category_keys(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, keys): `keys[codes[i]]` is row i's key; code -1 is missing. Keys are computed once
    per distinct value, so a million-row column costs one factorisation."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    raw_keys = [category_key(v) for v in np.asarray(uniques, dtype=object)]
    keys = np.array([k if k is not None else "" for k in raw_keys], dtype=object)
    blank = np.array([k is None for k in raw_keys], dtype=bool)
    if blank.any():  # values whose key is missing (e.g. '  ') join the missing code
        codes = np.where(blank[np.maximum(codes, 0)] & (codes >= 0), -1, codes)
    return codes.astype(np.int64), keys


def sort_keys(keys: list[str]) -> list[str]:
    """Numbers in numeric order, then text: labels read naturally in reports."""

    def order(key: str) -> tuple[int, float, str]:
        try:
            return (0, float(key), key)
        except ValueError:
            return (1, 0.0, key)

    return sorted(keys, key=order)


# --- numerics ---------------------------------------------------------------------------------


def _interp_with_ties(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """np.interp that averages the forward and backward passes, so tied quantiles (binary
    flags, zero-inflated amounts) map to the middle of their probability range."""
    forward = np.interp(x, xp, fp)
    backward = -np.interp(-x, -xp[::-1], -fp[::-1])
    return 0.5 * (forward + backward)


def sorted_quantiles(ordered: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """`np.quantile(values, probs)` (its default linear method) of values already sorted, without
    numpy's partition: the same interpolation, term for term."""
    position = probs * (len(ordered) - 1)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, len(ordered) - 1)
    gamma = position - below
    low, high = ordered[below], ordered[above]
    diff = high - low
    return np.where(gamma >= 0.5, high - diff * (1 - gamma), low + diff * gamma)


def sorted_median(ordered: np.ndarray) -> float:
    """`np.median` of values already sorted."""
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return float(np.mean(ordered[middle - 1 : middle + 1]))


def fit_numeric(
    name: str, raw: np.ndarray, encoding: str, special_values: tuple[float, ...] = ()
) -> NumericField:
    """Fit one numeric field's encoding on its training values (missing as NaN); rows holding one
    of `special_values` count as missing, so no statistic sees a code."""
    if encoding not in NUMERIC_ENCODINGS:
        raise ZooError(
            f"numeric encoding {encoding!r} for {name!r} is not one of {', '.join(NUMERIC_ENCODINGS)}"
        )
    special = np.isin(raw, special_values) if special_values else None
    present = tuple(float(v) for v in special_values if special is not None and np.any(raw == v))
    if special is not None and special.any():
        raw = np.where(special, np.nan, raw)
    observed = raw[~np.isnan(raw)]
    if observed.size == 0:
        raise ZooError(
            f"numeric column {name!r} is entirely missing in the training split; "
            "list it in dataset.roles.ignore"
        )
    if not np.isfinite(observed).all():
        bad = observed[~np.isfinite(observed)][0]
        raise ZooError(f"numeric column {name!r} holds {bad} in the training split, expected finite numbers")
    ordered = np.sort(observed)  # one sort serves the median and every quantile
    median = sorted_median(ordered)
    n_quantiles = min(N_QUANTILES.get(encoding, N_QUANTILES_DEFAULT), max(2, observed.size))
    quantiles = sorted_quantiles(ordered, np.linspace(0.0, 1.0, n_quantiles))
    filled = np.where(np.isnan(raw), median, raw) if observed.size < raw.size else raw
    clip = None
    if encoding == "robust":
        low, high = sorted_quantiles(ordered, np.asarray(CLIP_QUANTILES))
        clip = (float(low), float(high))
        filled = np.clip(filled, low, high)
    mean, std = 0.0, 1.0
    if encoding in ("standard", "robust"):
        with np.errstate(over="ignore", invalid="ignore"):  # reported below as one line
            mean = float(filled.mean())
            spread = float(filled.std())
        std = spread if spread > 0 else 1.0
    elif encoding == "smooth_clip":
        mean, std = median, _robust_scale(ordered)
    for value, label in ((mean, "mean"), (std, "standard deviation")):
        if not math.isfinite(value):
            raise ZooError(
                f"numeric column {name!r} has a {label} of {value} on the training split (values up to "
                f"{ordered[-1]:.3g}), beyond what float64 holds: rescale the column or list it in "
                "dataset.roles.ignore"
            )
    n_missing = raw.size - observed.size - (int(special.sum()) if special is not None else 0)
    return NumericField(
        name=name,
        encoding=encoding,
        median=median,
        mean=mean,
        std=std,
        clip=clip,
        missing_indicator=bool(n_missing > 0),
        quantiles=tuple(float(q) for q in quantiles),
        special_values=present,  # codes that never occur in training get no indicator
    )


def _robust_scale(ordered: np.ndarray) -> float:
    """RealMLP-TD's robust scale: the interquartile range, else half the range, else 1."""
    q1, q3 = sorted_quantiles(ordered, np.asarray([0.25, 0.75]))
    if q3 > q1:
        return float(q3 - q1)
    spread = float(ordered[-1] - ordered[0])
    return 0.5 * spread if spread > 0 else 1.0


def encode_numeric(field: NumericField, raw: np.ndarray) -> np.ndarray:
    """Raw float64 values (NaN missing) -> encoded float64, imputing the training median; special
    codes are missing to the field and flagged by their own indicator."""
    if field.encoding == SPECIAL:
        return (raw == field.code).astype(np.float64)
    if field.is_indicator:
        return np.isnan(raw).astype(np.float64)
    if field.special_values:
        raw = np.where(np.isin(raw, field.special_values), np.nan, raw)
    if field.encoding == "smooth_clip":
        scaled = (np.where(np.isnan(raw), field.median, raw) - field.mean) / field.std
        return scaled / np.sqrt(1.0 + np.square(scaled / SMOOTH_CLIP))
    if field.encoding in ("standard", "robust"):
        # one new array, the rest in place (a million-row column costs little); missing rows take
        # the encoded median, the value the same steps give it
        clip = field.clip if field.encoding == "robust" else None
        fill = np.float64(field.median) if clip is None else np.clip(np.float64(field.median), *clip)
        values = np.subtract(raw if clip is None else np.clip(raw, *clip), field.mean)
        values /= field.std
        missing = np.isnan(raw)
        if missing.any():
            values[missing] = (fill - field.mean) / field.std
        return values
    values = np.where(np.isnan(raw), field.median, raw)
    if field.encoding == "quantile_normal":
        quantiles = np.asarray(field.quantiles)
        probs = np.linspace(0.0, 1.0, len(quantiles))
        u = _interp_with_ties(values, quantiles, probs)
        return ndtri(np.clip(u, _EPS, 1 - _EPS))
    return values


def decode_numeric(field: NumericField, encoded: np.ndarray) -> np.ndarray:
    """Encoded values -> raw units (the inverse of `encode_numeric` inside the clip range)."""
    if field.is_indicator or field.encoding == "none":
        return encoded
    if field.encoding in ("standard", "robust"):
        return encoded * field.std + field.mean
    if field.encoding == "smooth_clip":
        bounded = np.clip(encoded, -SMOOTH_CLIP * (1 - 1e-9), SMOOTH_CLIP * (1 - 1e-9))
        return bounded / np.sqrt(1.0 - np.square(bounded / SMOOTH_CLIP)) * field.std + field.mean
    quantiles = np.asarray(field.quantiles)
    return np.interp(ndtr(encoded), np.linspace(0.0, 1.0, len(quantiles)), quantiles)


def indicator_field(source: NumericField, suffix: str) -> NumericField:
    """The 0/1 column that marks rows where `source` was missing."""
    return NumericField(name=f"{source.name}{suffix}", encoding=INDICATOR, source=source.name)


def special_field(source: NumericField, code: float, name: str) -> NumericField:
    """The 0/1 column that marks rows where `source` held the special code `code`."""
    return NumericField(name=name, encoding=SPECIAL, source=source.name, code=float(code))
