"""Per-applicant contributions of each field to the default logit, and reason codes from them.

One mechanism: a model's own `field_contributions(arrays, reference)` hook when it has one
(exact terms of linear and wide parts, CatBoost's SHAP values, rule points), else field-group
occlusion against a sample of training rows, which works for any model.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from zoo.data.spec import FeatureSpec
from zoo.explain.fields import Arrays, Field, fields_of, model_logits, n_rows, substitute, take

#: Reference rows each field is replaced by in occlusion (the run config's explain.occlusion_rows).
OCCLUSION_ROWS = 8
#: Applicant rows per block of occluded copies (bounds memory on large files).
BLOCK_ROWS = 8192
#: Rows per forward pass over occluded copies: small enough to stay in a CPU's cache (on wide_deep,
#: 4,096 rows a pass score ~1.8x as many rows a second as 65,536).
FORWARD_ROWS = 4096


@dataclass
class Contributions:
    """values[i, f]: how far field f moves row i's default logit from the baseline (log-odds)."""

    values: np.ndarray
    fields: list[str]
    method: str


def occlusion(
    logit: Callable[[Arrays], np.ndarray],
    arrays: Arrays,
    reference: Arrays,
    fields: Sequence[Field],
    *,
    n_reference: int = OCCLUSION_ROWS,
) -> np.ndarray:
    """float64[B, F]: logit(x) minus the mean logit with the field's columns taken from each of the
    first `n_reference` reference rows (a seeded sample of training rows): field-group occlusion.

    Exact shortcuts, no approximation: reference rows sharing a field value are scored once and
    weighted by their count, and a copy whose field already equals the row's own value is the row
    itself, so it takes logit(x) without a forward pass."""
    total = n_rows(arrays)
    n_ref = max(1, min(n_reference, n_rows(reference)))
    head = take(reference, np.arange(n_ref))
    donors = [_distinct_rows(head, field) for field in fields]
    out = np.zeros((total, len(fields)))
    for start in range(0, total, BLOCK_ROWS):
        block = take(arrays, np.arange(start, min(total, start + BLOCK_ROWS)))
        base = _forward(logit, block)
        for f, field in enumerate(fields):
            rows, counts = donors[f]
            occluded = np.repeat(base[:, None], len(rows), axis=1)  # [size, distinct values]
            row, donor = np.nonzero(_differs(block, field, take(head, rows)))
            if len(row):
                copies = substitute(take(block, row), field, head, rows[donor])
                occluded[row, donor] = _forward(logit, copies)
            out[start : start + len(base), f] = base - occluded @ counts / n_ref
    return out


def _forward(logit: Callable[[Arrays], np.ndarray], arrays: Arrays) -> np.ndarray:
    """logit over `arrays` in passes of FORWARD_ROWS rows, float64[B]."""
    total = n_rows(arrays)
    parts = [
        np.asarray(logit({k: v[s : s + FORWARD_ROWS] for k, v in arrays.items()}), dtype=np.float64)
        for s in range(0, total, FORWARD_ROWS)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


def _distinct_rows(reference: Arrays, field: Field) -> tuple[np.ndarray, np.ndarray]:
    """The first reference row of each distinct value of `field` and how many rows share it."""
    parts = [reference[k][:, list(c)] for k, c in field.columns.items() if k in reference and c]
    first: dict[tuple, int] = {}
    counts: dict[int, int] = {}
    for r in range(n_rows(reference)):
        key = tuple(tuple(p[r].tolist()) for p in parts)  # NaN never equals itself: kept apart
        row = first.setdefault(key, r)
        counts[row] = counts.get(row, 0) + 1
    rows = np.array(list(counts), dtype=np.int64)
    return rows, np.array([counts[r] for r in rows], dtype=np.float64)


def _differs(arrays: Arrays, field: Field, donors: Arrays) -> np.ndarray:
    """bool[B, D]: row i's `field` columns differ from donor d's (NaN counts as different)."""
    out = np.zeros((n_rows(arrays), n_rows(donors)), dtype=bool)
    for key, columns in field.columns.items():
        if key in arrays and key in donors and columns:
            own, donor = arrays[key][:, list(columns)], donors[key][:, list(columns)]
            out |= (own[:, None, :] != donor[None, :, :]).any(-1)
    return out


def linear_terms(
    spec: FeatureSpec,
    arrays: Arrays,
    *,
    categorical: Sequence[tuple[int, Any]] = (),
    crosses: Sequence[tuple[int, Any]] = (),
    numeric: Sequence[tuple[int, float]] = (),
) -> dict[str, np.ndarray]:
    """Each field's additive term of a linear logit, float64[B] per field name: the weight of the
    row's category (x_cat / x_cross column j with its weight vector) or w * x (x_num column j; a
    missing indicator counts toward its numeric field)."""
    terms: dict[str, np.ndarray] = {}

    def add(name: str, value: np.ndarray) -> None:
        terms[name] = terms.get(name, 0.0) + value

    for j, weights in categorical:
        add(spec.categorical[j].name, _numpy(weights)[arrays["x_cat"][:, j]])
    for j, weights in crosses:
        add(spec.crosses[j].name, _numpy(weights)[arrays["x_cross"][:, j]])
    for j, weight in numeric:
        field = spec.numeric[j]
        add(
            field.source if field.is_indicator and field.source else field.name,
            weight * arrays["x_num"][:, j],
        )
    return terms


def additive(terms: dict[str, np.ndarray], reference_terms: dict[str, np.ndarray]) -> np.ndarray:
    """[B, F] terms against their mean over the reference rows (the baseline), in `terms` order."""
    return np.stack([terms[n] - np.mean(reference_terms[n]) for n in terms], 1) if terms else np.zeros((0, 0))


def _numpy(weights: Any) -> np.ndarray:
    if hasattr(weights, "detach"):
        weights = weights.detach().double().cpu().numpy()
    return np.asarray(weights, dtype=np.float64)


def contributions(
    model: Any, arrays: Arrays, reference: Arrays, *, n_reference: int = OCCLUSION_ROWS
) -> Contributions:
    """The model's own contributions (`field_contributions` hook) if it has them, else occlusion.
    A hook that estimates part of them by occlusion names `n_reference` and is given it."""
    native = getattr(model, "field_contributions", None)
    if callable(native):
        if "n_reference" in inspect.signature(native).parameters:
            return native(arrays, reference, n_reference=n_reference)
        return native(arrays, reference)
    fields = fields_of(model.feature_spec)
    values = occlusion(lambda a: model_logits(model, a), arrays, reference, fields, n_reference=n_reference)
    method = f"occlusion against {min(n_reference, n_rows(reference))} training rows"
    return Contributions(values, [f.name for f in fields], method)


def reason_codes(
    contribution: Contributions,
    frame: pd.DataFrame,
    spec: FeatureSpec,
    k: int,
    *,
    units: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Columns reason_1..reason_k (the k fields pushing each row most towards default, as text on
    the row's raw values; empty where fewer fields push that way) and reason_method."""
    values = contribution.values
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    pushed = np.take_along_axis(values, order, axis=1) > 0
    reasons = np.full(order.shape, "", dtype=object)
    for f in np.unique(order[pushed]):
        where = pushed & (order == f)  # a field is at most once in a row's top k
        rows = np.flatnonzero(where.any(axis=1))
        name = contribution.fields[f]
        reasons[where] = _texts(name, _raw_column(frame, spec, name)[rows], units)
    table = pd.DataFrame({f"reason_{i + 1}": reasons[:, i] for i in range(k)}, index=frame.index)
    table["reason_method"] = contribution.method
    return table


def _texts(name: str, values: np.ndarray, units: dict[str, str] | None) -> np.ndarray:
    """`field_text` of each value, formatted once per distinct value (object[B])."""
    from zoo.explain.fields import field_text

    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    return np.array([field_text(name, v, units) for v in distinct], dtype=object)[codes]


def _raw_column(frame: pd.DataFrame, spec: FeatureSpec, name: str) -> np.ndarray:
    """A field's raw values in the input rows; a cross joins its sources' values with ' | '
    (a missing source reads '(missing)')."""
    if name in frame.columns:
        return frame[name].to_numpy(dtype=object)
    cross = next((c for c in spec.crosses if c.name == name), None)
    if cross is None or any(s not in frame.columns for s in cross.sources):
        return np.full(len(frame), None, dtype=object)
    columns = [frame[s] for s in cross.sources]
    parts = [np.where(c.isna(), "(missing)", c.to_numpy(dtype=object).astype(str)) for c in columns]
    return np.array([" | ".join(p) for p in zip(*parts, strict=True)], dtype=object)
