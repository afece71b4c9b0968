"""Readable rules from a shallow tree ensemble: fit, extract every root-to-node path, canonicalise.

Steps 1-3 of the attention-rules model (issue 10; after RuleFit, Friedman & Popescu 2008, and
SIRUS, Benard et al. 2021). Both ensembles split on the data's own values, so every path reads as
conditions on raw numerics and category labels:

- CatBoost (`fit_catboost`) on `raw_frame` with every categorical field one-hot split ("field =
  label"), a missing category as the label MISSING and raw numerics with NaN under `nan_mode="Min"`
  (missing values take the `x <= border` side, so that side's term admits missing).
- A random forest (`fit_forest`) on a design matrix of raw numerics (NaN allowed; scikit-learn
  records where missing values go at each split) and one 0/1 column per (field, label).

`catboost_rules` and `forest_rules` turn every path (internal and leaf nodes, root excluded) into a
canonical `Rule`; `candidates` snaps thresholds to a training-quantile grid, deduplicates and
filters by length, support and coverage.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from zoo.data.spec import UNSEEN_INDEX, FeatureSpec
from zoo.models.tree import Arrays, raw_frame
from zoo.rules.encode import RuleEncoder, coverage_bits
from zoo.rules.terms import INF, MISSING, Rule, Term, rule

#: CatBoost's largest `one_hot_max_size`: a categorical field with more labels cannot be one-hot split.
MAX_ONE_HOT = 255


def raw_values(spec: FeatureSpec, arrays: Arrays) -> np.ndarray:
    """float32[N, len(spec.raw_numeric)]: the rows' raw numerics (NaN for missing), `x_raw`."""
    if "x_raw" in arrays:
        return np.ascontiguousarray(arrays["x_raw"], dtype=np.float32)
    if not spec.raw_numeric:
        return np.zeros((len(arrays["x_cat"]), 0), dtype=np.float32)
    raise ValueError("arrays have no 'x_raw' (raw numerics); gather them from a model with uses_raw_values")


# --- CatBoost ---------------------------------------------------------------------------------


def catboost_frame(spec: FeatureSpec, arrays: Arrays) -> pd.DataFrame:
    """`raw_frame` as CatBoost takes it: category labels as text, a missing category as MISSING."""
    frame = raw_frame(spec, arrays)
    for field in spec.categorical:
        frame[field.name] = frame[field.name].fillna(MISSING).astype(str)
    return frame


def _pool(spec: FeatureSpec, frame: pd.DataFrame, y: np.ndarray | None = None, weight: Any = None) -> Any:
    from catboost import Pool  # lazy: importing catboost is slow

    return Pool(frame, y, cat_features=[f.name for f in spec.categorical], weight=weight)


def catboost_pool(spec: FeatureSpec, arrays: Arrays, *, weight: np.ndarray | None = None) -> Any:
    """The rows as a CatBoost Pool (`catboost_frame`), labelled with `y` when the arrays have it."""
    return _pool(spec, catboost_frame(spec, arrays), arrays.get("y"), weight)


def fit_catboost(
    spec: FeatureSpec,
    train: Arrays,
    val: Arrays | None = None,
    *,
    iterations: int = 200,
    depth: int = 3,
    learning_rate: float = 0.1,
    seed: int,
    thread_count: int = 1,
    sample_weight: np.ndarray | None = None,
    early_stopping_rounds: int = 50,
) -> Any:
    """A CatBoostClassifier whose splits all read as rule terms: one-hot categorical splits
    (`one_hot_max_size` = the largest cardinality), raw numerics with `nan_mode="Min"`. With `val`,
    training stops early on it and keeps the best iteration."""
    from catboost import CatBoostClassifier

    for field in spec.categorical:
        if field.cardinality - 1 > MAX_ONE_HOT:  # the unseen index never occurs in training
            raise ValueError(
                f"categorical field {field.name!r} has {field.cardinality - 1} labels; CatBoost "
                f"one-hot splits allow at most {MAX_ONE_HOT}"
            )
    one_hot = max([2, *(f.cardinality for f in spec.categorical)])
    booster = CatBoostClassifier(
        iterations=iterations,
        depth=depth,
        learning_rate=learning_rate,
        one_hot_max_size=min(one_hot, MAX_ONE_HOT),
        nan_mode="Min",
        random_seed=seed,
        thread_count=thread_count,
        allow_writing_files=False,
        verbose=False,
    )
    pool = catboost_pool(spec, train, weight=sample_weight)
    if val is None:
        booster.fit(pool)
    else:
        booster.fit(
            pool,
            eval_set=catboost_pool(spec, val),
            early_stopping_rounds=early_stopping_rounds,
            use_best_model=True,
        )
    return booster


def _label_pool(spec: FeatureSpec) -> Any:
    """A pool holding every label of every categorical field: what CatBoost's JSON export needs to
    name the hashed values of one-hot splits (the hash depends on the label only)."""
    rows = max([1, *(f.cardinality for f in spec.categorical)])
    columns: dict[str, Any] = {}
    for field in spec.categorical:
        columns[field.name] = [field.label(i % field.cardinality) for i in range(rows)]
    for numeric in spec.raw_numeric:
        columns[numeric.name] = np.zeros(rows)
    return _pool(spec, pd.DataFrame(columns))


def catboost_json(booster: Any, spec: FeatureSpec) -> dict[str, Any]:
    """The fitted model in CatBoost's JSON format, with the labels of one-hot split values."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.json")
        booster.save_model(path, format="json", pool=_label_pool(spec))
        with open(path) as handle:
            return json.load(handle)


def catboost_rules(booster: Any, spec: FeatureSpec, *, leaves_only: bool = False) -> list[Rule]:
    """Every root-to-node path of every oblivious tree as a rule (leaves only if `leaves_only`).

    Facts of the JSON export (checked against `calc_leaf_indexes` in the tests): a tree's
    `splits[k]` sets bit k of the leaf index, and splits are listed in the order they were chosen,
    so the nodes at depth k are the 2^k settings of splits[:k]. A float split's bit is
    `x > border` (missing: False, unless `nan_value_treatment` is "AsTrue"); a one-hot split's bit
    is `label == value`, `value` being a signed 32-bit hash of the label.
    """
    model = catboost_json(booster, spec)
    info = model["features_info"]
    labels = {int(h["hash"]): str(h["value"]) for h in info.get("cat_features_hash") or []}
    floats = {int(f["feature_index"]): f for f in info.get("float_features", [])}
    cats = {int(f["feature_index"]): f["feature_name"] for f in info.get("categorical_features", [])}

    def split_terms(split: Mapping[str, Any]) -> tuple[Term, Term]:
        """The terms of bit 0 and bit 1."""
        if split["split_type"] == "FloatFeature":
            feature = floats[int(split["float_feature_index"])]
            border = float(split["border"])
            missing_high = feature.get("nan_value_treatment") == "AsTrue"
            name = feature["feature_name"]
            return (
                Term(name, high=border, missing=not missing_high),
                Term(name, low=border, missing=missing_high),
            )
        if split["split_type"] == "OneHotFeature":
            label = labels[int(split["value"]) & 0xFFFFFFFF]
            name = cats[int(split["cat_feature_index"])]
            return Term(name, exclude=frozenset({label})), Term(name, include=frozenset({label}))
        raise ValueError(
            f"CatBoost split of type {split['split_type']!r}, expected FloatFeature or OneHotFeature "
            "(fit with fit_catboost so that categorical fields are one-hot split)"
        )

    rules: list[Rule] = []
    for tree in model["oblivious_trees"]:
        sides = [split_terms(split) for split in tree["splits"]]
        first = len(sides) if leaves_only else 1
        for level in range(first, len(sides) + 1):
            for prefix in range(2**level):
                found = rule(sides[k][(prefix >> k) & 1] for k in range(level))
                if found is not None:
                    rules.append(found)
    return rules


# --- random forest ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of the forest's design matrix: a raw numeric field (`label` None), or the 0/1
    indicator of one category label of a categorical field."""

    field: str
    label: str | None = None


def design_columns(spec: FeatureSpec) -> tuple[Column, ...]:
    """Raw numerics, then one indicator per (categorical field, label), MISSING included and the
    unseen label left out (it never occurs in training)."""
    numeric = [Column(f.name) for f in spec.raw_numeric]
    indicators = [
        Column(field.name, field.label(i))
        for field in spec.categorical
        for i in range(field.cardinality)
        if i != UNSEEN_INDEX
    ]
    return (*numeric, *indicators)


def design_matrix(spec: FeatureSpec, arrays: Arrays, columns: Sequence[Column]) -> np.ndarray:
    """float32[N, len(columns)]: raw numerics with NaN for missing, 0/1 label indicators."""
    n = len(arrays["x_cat"])
    position = {f.name: j for j, f in enumerate(spec.categorical)}
    raw = {f.name: j for j, f in enumerate(spec.raw_numeric)}
    index = {(field.name, field.label(i)): i for field in spec.categorical for i in range(field.cardinality)}
    values = raw_values(spec, arrays)
    matrix = np.empty((n, len(columns)), dtype=np.float32)
    for k, column in enumerate(columns):
        if column.label is None:
            matrix[:, k] = values[:, raw[column.field]]
        else:
            codes = arrays["x_cat"][:, position[column.field]]
            matrix[:, k] = codes == index[(column.field, column.label)]
    return matrix


def fit_forest(
    spec: FeatureSpec,
    train: Arrays,
    *,
    n_estimators: int = 200,
    max_depth: int = 3,
    seed: int,
    sample_weight: np.ndarray | None = None,
    n_jobs: int = 1,
) -> tuple[Any, tuple[Column, ...]]:
    """A RandomForestClassifier on `design_matrix`, and the columns its split features index."""
    from sklearn.ensemble import RandomForestClassifier

    columns = design_columns(spec)
    forest = RandomForestClassifier(
        n_estimators=n_estimators, max_depth=max_depth, random_state=seed, n_jobs=n_jobs
    )
    forest.fit(design_matrix(spec, train, columns), train["y"], sample_weight=sample_weight)
    return forest, columns


def _split_terms(column: Column, threshold: float, missing_left: bool) -> tuple[Term, Term]:
    """The terms of a scikit-learn split `value <= threshold` (left) and `> threshold` (right)."""
    if column.label is None:
        return (
            Term(column.field, high=threshold, missing=missing_left),
            Term(column.field, low=threshold, missing=not missing_left),
        )
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"split of the 0/1 column {column} at {threshold}, expected a threshold in [0, 1)")
    label = frozenset({column.label})
    return Term(column.field, exclude=label), Term(column.field, include=label)


def forest_rules(forest: Any, columns: Sequence[Column], *, leaves_only: bool = False) -> list[Rule]:
    """Every root-to-node path of every tree as a rule, depth first, left child first; a single
    DecisionTreeClassifier works too. `leaves_only` keeps the leaves' paths only."""
    trees = getattr(forest, "estimators_", [forest])
    rules: list[Rule] = []
    for estimator in trees:
        tree = estimator.tree_
        stack: list[tuple[int, tuple[Term, ...]]] = [(0, ())]
        while stack:
            node, terms = stack.pop()
            left, right = int(tree.children_left[node]), int(tree.children_right[node])
            leaf = left == -1
            if node != 0 and (leaf or not leaves_only):
                found = rule(terms)
                if found is not None:
                    rules.append(found)
            if leaf:
                continue
            column = columns[int(tree.feature[node])]
            to_left, to_right = _split_terms(
                column, float(tree.threshold[node]), bool(tree.missing_go_to_left[node])
            )
            stack.append((right, (*terms, to_right)))
            stack.append((left, (*terms, to_left)))
    return rules


# --- canonicalise and filter ------------------------------------------------------------------


def quantile_grid(spec: FeatureSpec, train: Arrays, *, n_bins: int = 32) -> dict[str, np.ndarray]:
    """Per raw numeric field, the distinct training values at `n_bins + 1` evenly spaced quantiles
    (min and max included; `inverted_cdf`, so every grid value is a value the data holds)."""
    if n_bins < 1:
        raise ValueError(f"n_bins={n_bins}, expected a positive integer")
    grid = {}
    probabilities = np.linspace(0.0, 1.0, n_bins + 1)
    raw = raw_values(spec, train)
    for j, field in enumerate(spec.raw_numeric):
        values = raw[:, j][~np.isnan(raw[:, j])].astype(np.float64)
        if len(values):
            grid[field.name] = np.unique(np.quantile(values, probabilities, method="inverted_cdf"))
        else:
            grid[field.name] = np.empty(0)
    return grid


def _floor(value: float, grid: np.ndarray) -> float:
    """The largest grid value <= value; -inf below the grid (no training value lies there)."""
    if not np.isfinite(value) or not len(grid):
        return value
    k = int(np.searchsorted(grid, value, side="right")) - 1
    return float(grid[k]) if k >= 0 else -INF


def snap(
    found: Rule, grid: Mapping[str, np.ndarray], *, missing_fields: Collection[str] | None = None
) -> Rule | None:
    """The rule with each numeric threshold moved down to the nearest grid value at or below it.

    Thresholds in one grid bin merge, and `x <= t` keeps its training coverage whenever no
    training value lies between the grid value and t (always, for a field whose distinct values
    are all on the grid); a threshold below every training value becomes -inf, so a path that
    isolated missing values reads "x is missing". Both sides of a split snap alike, so they stay
    complements. With `missing_fields` (the numeric fields missing somewhere in training), terms
    on the other numeric fields drop "or missing": where a tree sends a value never seen missing
    was not learnt from data. None when the snapped rule cannot hold."""
    terms = []
    for term in found.terms:
        if not term.categorical:
            values = grid.get(term.field, np.empty(0))
            missing = term.missing and (missing_fields is None or term.field in missing_fields)
            low, high = _floor(term.low, values), _floor(term.high, values)
            term = Term(term.field, low=low, high=high, missing=missing)
            term = term & Term(term.field, missing=True)  # the canonical empty interval
        terms.append(term)
    return rule(terms)


def coverage(
    rules: Sequence[Rule], spec: FeatureSpec, arrays: Arrays, *, chunk_size: int = 4096
) -> np.ndarray:
    """bool[N, len(rules)]: which rows satisfy which rule (`RuleEncoder`, on the CPU)."""
    x_cat = torch.from_numpy(np.ascontiguousarray(arrays["x_cat"]))
    x_raw = torch.from_numpy(raw_values(spec, arrays))
    with torch.no_grad():
        return RuleEncoder(rules, spec, chunk_size=chunk_size)(x_cat, x_raw).numpy()


def candidates(
    rules: Iterable[Rule],
    spec: FeatureSpec,
    train: Arrays,
    *,
    n_bins: int = 32,
    max_length: int = 3,
    min_support: float = 0.02,
    grid: Mapping[str, np.ndarray] | None = None,
) -> tuple[list[Rule], np.ndarray]:
    """The candidate rules and their training coverage bool[N, n], computed once.

    Thresholds snap to `quantile_grid(n_bins=32)` (`snap`; "or missing" kept only on numeric
    fields missing somewhere in training); then rules are deduplicated (canonical equality, first
    occurrence kept), kept when their length is 1..`max_length` (3) and their training support
    lies within [`min_support`, 1 - `min_support`] (0.02), and dropped when their training
    coverage equals an earlier rule's (compared on the packed coverage bits)."""
    if max_length < 1:
        raise ValueError(f"max_length={max_length}, expected a positive integer")
    if not 0.0 <= min_support < 0.5:
        raise ValueError(f"min_support={min_support}, expected a share in [0, 0.5)")
    if grid is None:  # bootstrap reruns pass the full training rows' grid, so rules compare equal
        grid = quantile_grid(spec, train, n_bins=n_bins)
    missing = np.isnan(raw_values(spec, train)).any(0)
    missing_fields = {f.name for f, seen in zip(spec.raw_numeric, missing, strict=True) if seen}
    kept: dict[Rule, None] = {}
    for found in rules:
        snapped = snap(found, grid, missing_fields=missing_fields)
        if snapped is not None and 1 <= snapped.length <= max_length:
            kept.setdefault(snapped, None)
    unique = list(kept)
    covered = coverage(unique, spec, train)
    support = covered.mean(0) if len(covered) else np.zeros(len(unique))
    inside = (support >= min_support) & (support <= 1.0 - min_support)
    seen: set[bytes] = set()
    chosen = []
    packed = coverage_bits(covered)
    for k in np.flatnonzero(inside):
        key = packed[k].tobytes()
        if key not in seen:
            seen.add(key)
            chosen.append(int(k))
    return [unique[k] for k in chosen], covered[:, chosen]
