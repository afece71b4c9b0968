"""Fields as explanations see them: the batch columns that make up one field (a categorical, a
numeric with its missing indicator, a cross), and the model's logits on NumPy arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from zoo.data.spec import FeatureSpec

Arrays = dict[str, np.ndarray]
#: Rows per forward pass when scoring stacked copies (occlusion, permutation, partial dependence).
CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class Field:
    """One field and its columns in each batch tensor, e.g. {"x_num": (2, 7), "x_raw": (2,)}."""

    name: str
    kind: str  # "categorical", "numeric" or "cross"
    columns: dict[str, tuple[int, ...]]


def fields_of(spec: FeatureSpec) -> list[Field]:
    """Every field of a spec: categoricals, numerics (with their missing indicators), crosses."""
    out = [Field(f.name, "categorical", {"x_cat": (j,)}) for j, f in enumerate(spec.categorical)]
    for r, numeric in enumerate(spec.raw_numeric):
        columns = [spec.numeric.index(numeric)]
        columns += [j for j, f in enumerate(spec.numeric) if f.is_indicator and f.source == numeric.name]
        out.append(Field(numeric.name, "numeric", {"x_num": tuple(columns), "x_raw": (r,)}))
    out += [Field(f.name, "cross", {"x_cross": (j,)}) for j, f in enumerate(spec.crosses)]
    return out


def substitute(arrays: Arrays, field: Field, source: Arrays, rows: np.ndarray | None = None) -> Arrays:
    """A copy of `arrays` whose `field` columns come from `source` (at `rows`, else row for row)."""
    out = dict(arrays)
    for key, columns in field.columns.items():
        if key not in arrays or not columns:
            continue
        values = arrays[key].copy()
        donor = source[key] if rows is None else source[key][rows]
        values[:, list(columns)] = donor[:, list(columns)]
        out[key] = values
    return out


def stack(parts: list[Arrays]) -> Arrays:
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def take(arrays: Arrays, rows: np.ndarray) -> Arrays:
    return {key: value[rows] for key, value in arrays.items()}


def n_rows(arrays: Arrays) -> int:
    return len(next(iter(arrays.values())))


@torch.no_grad()
def model_logits(model: Any, arrays: Arrays, *, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """The model's logits (log-odds of default) for NumPy arrays, float64[B], in eval mode."""
    from zoo.models.base import CreditModel

    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    total = n_rows(arrays)
    out = []
    for start in range(0, total, chunk_rows):
        part = {k: v[start : start + chunk_rows] for k, v in arrays.items()}
        size = n_rows(part)
        part.setdefault("y", np.zeros(size, dtype=np.float32))
        part.setdefault("row", np.arange(size, dtype=np.int64))
        batch = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in part.items()}
        out.append(CreditModel.logits(model(batch)).double().cpu().numpy().reshape(-1))
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def field_text(name: str, value: Any, units: dict[str, str] | None = None) -> str:
    """A reason in the data's own terms, e.g. "duration in month: 48 months"."""
    label = str(name).replace("_", " ")
    if value is None or (np.ndim(value) == 0 and bool(pd.isna(value))):
        return f"{label}: (missing)"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    elif isinstance(value, float | np.floating):
        value = f"{float(value):.4g}"
    unit = (units or {}).get(name)
    return f"{label}: {value}{' ' + unit if unit else ''}"
