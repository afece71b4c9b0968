"""Field importance: permutation importance for every model (the drop in validation AUC when a
field's columns are shuffled across rows), plus the model's own measure where it has one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo.explain.fields import Arrays, Field, fields_of, model_logits, n_rows, stack, substitute
from zoo.outputs import write_csv

IMPORTANCE_FILE = "importance.csv"
IMPORTANCE_PLOT = "importance.png"
IMPORTANCE_COLUMNS = ["field", "method", "importance", "std", "rank"]
PERMUTATION = "permutation (drop in validation AUC)"


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula with midranks for ties: scikit-learn's
    value, without its per-call validation cost (this runs fields x repeats times per run)."""
    from scipy.stats import rankdata

    positive = np.asarray(y) > 0.5
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def permutation_importance(
    model: Any, val: Arrays, fields: list[Field], *, repeats: int = 5, seed: int = 0
) -> pd.DataFrame:
    """Per field: mean and std over `repeats` seeded permutations of (base AUC - permuted AUC).

    A field's columns (a numeric with its missing indicator and raw column) move together, so
    each permuted row stays a plausible value of that field."""
    y = val["y"]
    base = _auc(y, model_logits(model, val))
    rng = np.random.default_rng(seed)
    size = n_rows(val)
    rows = []
    for field in fields:
        perms = [rng.permutation(size) for _ in range(repeats)]
        logits = model_logits(model, stack([substitute(val, field, val, p) for p in perms]))
        drops = [base - _auc(y, part) for part in logits.reshape(repeats, size)]
        rows.append((field.name, PERMUTATION, float(np.mean(drops)), float(np.std(drops))))
    return pd.DataFrame(rows, columns=IMPORTANCE_COLUMNS[:4])


def native_importance(model: Any, val: Arrays, reference: Arrays) -> pd.DataFrame | None:
    """The model's own field importance (`native_importance(val, reference)` hook), or None.

    The hook returns a frame with columns field, method, importance (and optionally std)."""
    hook = getattr(model, "native_importance", None)
    if not callable(hook):
        return None
    table = hook(val, reference)
    if table is None or not len(table):
        return None
    if "std" not in table:
        table = table.assign(std=np.nan)
    return table[IMPORTANCE_COLUMNS[:4]]


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """Rank within each method (1 = most important), methods in their order, largest first."""
    parts = []
    for method in dict.fromkeys(table["method"]):
        part = table[table["method"] == method].sort_values("importance", ascending=False, kind="stable")
        parts.append(part.assign(rank=np.arange(1, len(part) + 1)))
    return pd.concat(parts, ignore_index=True)[IMPORTANCE_COLUMNS]


def field_importance(
    model: Any, val: Arrays, reference: Arrays, *, repeats: int = 5, seed: int = 0
) -> pd.DataFrame:
    """importance.csv's rows: permutation importance of every field, then the native rows."""
    tables = [permutation_importance(model, val, fields_of(model.feature_spec), repeats=repeats, seed=seed)]
    native = native_importance(model, val, reference)
    if native is not None:
        tables.append(native)
    return ranked(pd.concat(tables, ignore_index=True))


def write_importance(run_dir: Path, table: pd.DataFrame, *, title: str, top: int | None = None) -> None:
    """importance.csv and importance.png (permutation importance with its std, top `top` fields)."""
    from zoo.plots import plot_ranking

    write_csv(Path(run_dir) / IMPORTANCE_FILE, table)
    shown = table[table["method"] == PERMUTATION].head(top or len(table))
    plot_ranking(
        shown["field"],
        shown["importance"],
        Path(run_dir) / IMPORTANCE_PLOT,
        errors=shown["std"].fillna(0.0),
        xlabel="drop in validation AUC when the field is permuted (mean ± std)",
        title=title,
    )
