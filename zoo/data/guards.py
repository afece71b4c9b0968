"""Checks on the data that no model can make for itself: a feature that gives the label away,
columns that are ids, dates read as categories, rows repeated between training and test, and
features that look like a protected characteristic (race, sex, age, ...) not declared as one."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from zoo.data.threads import map_columns
from zoo.errors import ZooError

log = logging.getLogger(__name__)

#: A single feature this good on the labelled rows is the label in disguise, not a predictor.
LEAK_AUC = 0.99
#: Fewer rows than this say nothing about ids: a distinct value per row happens by chance.
MIN_ID_ROWS = 100
#: Whole numbers distinct on every row are an id when they span at most this many values per row.
ID_SPAN_PER_ROW = 10
#: A text column is date-like when at least this share of its values (by rows) reads as a date.
DATE_SHARE = 0.8
#: Most frequent distinct values parsed per column when looking for dates (bounds the cost).
DATE_SAMPLE = 1000
#: Rows (a seeded sample beyond) whose values are counted when looking for dates.
DATE_ROWS = 50_000
#: Folds of the out-of-fold category bad rates scored for leakage.
LEAK_FOLDS = 5
#: Words in a column's name that suggest a protected characteristic (fair-lending law: ECOA /
#: Regulation B, the Fair Housing Act, the EU and UK equality acts), by characteristic. Matched as
#: whole words of the name (`age_in_years`, `CODE_GENDER`, `applicantRace`), so `mortgage` is not age.
PROTECTED_NAME_WORDS: dict[str, frozenset[str]] = {
    "race": frozenset({"race", "racial"}),
    "ethnicity": frozenset({"ethnic", "ethnicity", "hispanic", "latino"}),
    "colour": frozenset({"color", "colour", "skin"}),
    "religion": frozenset({"religion", "religious"}),
    "national origin": frozenset(
        {"nationality", "national", "origin", "citizenship", "citizen", "foreign", "immigrant", "immigration",
         "birthplace", "native", "ancestry"}
    ),
    "sex or gender": frozenset({"sex", "gender", "male", "female"}),
    "marital status": frozenset(
        {"marital", "married", "marriage", "spouse", "widowed", "divorced", "personal_status"}
    ),
    "age": frozenset({"age", "dob", "birth", "birthday", "birthdate", "born"}),
    "disability": frozenset({"disability", "disabled", "handicap", "handicapped"}),
    "public assistance": frozenset({"welfare", "assistance", "tanf", "medicaid"}),
}  # fmt: skip
#: Words in a text column's values that suggest a protected characteristic.
PROTECTED_VALUE_WORDS: dict[str, frozenset[str]] = {
    "race": frozenset({"white", "black", "asian", "african", "caucasian", "indian", "alaska", "pacific"}),
    "ethnicity": frozenset({"hispanic", "latino", "latina", "ethnicity"}),
    "religion": frozenset({"christian", "muslim", "jewish", "hindu", "buddhist", "catholic", "protestant"}),
    "sex or gender": frozenset({"male", "female", "man", "woman", "men", "women"}),
    "marital status": frozenset({"married", "divorced", "widowed", "unmarried", "single"}),
}
#: Share of a text column's distinct values (the most frequent PROTECTED_VALUES_SAMPLE) that must
#: hold such a word: one `single` among forty property types is not a marital status.
PROTECTED_VALUE_SHARE = 0.5
PROTECTED_VALUES_SAMPLE = 50
#: Age is flagged, never refused: some regimes allow it in scoring (e.g. Regulation B, empirically
#: derived systems that do not assign a negative value to the elderly).
AGE = "age"
#: Labelled rows scored for leakage at most (a seeded sample beyond): the AUC's standard error is
#: then about 0.001, far below the gap between a real predictor and LEAK_AUC.
LEAK_ROWS = 200_000


@dataclass
class GuardReport:
    """What the guards found: columns to ignore as ids, and one warning line per finding."""

    id_like: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        log.warning("%s", message)
        self.warnings.append(message)


def check_data(
    features: pd.DataFrame,
    y: np.ndarray,
    roles: Mapping[str, str],
    parts: tuple[np.ndarray, ...],
    *,
    given_roles: Mapping[str, Any] | None = None,
    allow_leaky: Iterable[str] | None = None,
    protected: Iterable[str] | None = None,
) -> GuardReport:
    """Run every guard on the feature columns (`roles` categorical or numeric) of a split frame.

    `parts` are the train, validation and test row indices. The leakage check reads the labels of
    all of them together, so its decision is the same for every fold and seed of one data file and
    split design; a leaky column not listed in `allow_leaky` is a ZooError. A feature whose name or
    values suggest a protected characteristic and that `protected` (dataset.protected) does not
    declare is a warning.
    """
    report = GuardReport()
    declared = {str(c) for r in ("categorical", "numeric") for c in _as_list((given_roles or {}).get(r))}
    columns = [c for c, r in roles.items() if r in ("categorical", "numeric")]
    report.id_like = [c for c in columns if c not in declared and is_id_like(features[c], c)]
    if report.id_like:
        if len(report.id_like) == len(columns):
            raise ZooError(
                f"every feature column looks like an id (a distinct value on every row): "
                f"{', '.join(report.id_like)}; declare the real features in dataset.roles.categorical "
                "or dataset.roles.numeric"
            )
        report.warn(
            f"ignoring {len(report.id_like)} id-like column(s), a distinct value on every row: "
            f"{', '.join(report.id_like)} (declare one in dataset.roles.categorical or .numeric to keep it)"
        )
    kept = [c for c in columns if c not in report.id_like]
    check_protected_like(features, kept, report, declared=protected)
    categorical = [c for c in kept if roles[c] == "categorical"]
    shares = map_columns(lambda c: date_share(features[c]), categorical, rows=len(features))
    dates = {c: share for c, share in zip(categorical, shares, strict=True) if share >= DATE_SHARE}
    if dates:
        shown = ", ".join(f"{c} ({share:.0%} dates)" for c, share in dates.items())
        report.warn(
            f"text column(s) of dates used as categories: {shown}; each date is a category of its own, "
            "so derive numbers from them (e.g. an age in days) or list them in dataset.roles.ignore"
        )
    # Leakage is judged once on every labelled row of the split design, not per fold or seed: a
    # borderline column is then refused by every fold and seed, or by none.
    labelled = np.unique(np.concatenate(parts))
    judged = labelled
    if len(judged) > LEAK_ROWS:
        judged = np.sort(np.random.default_rng(0).choice(judged, LEAK_ROWS, replace=False))
    scores = feature_aucs(features.iloc[judged][kept], y[judged], categorical=categorical)
    check_leakage(scores, report, roles=roles, allow_leaky=allow_leaky, n_rows=len(labelled))
    repeats = repeated_rows(features[kept], parts)
    if any(repeats.values()):
        sizes = {"test": len(parts[2]), "validation": len(parts[1])}
        shown = " and ".join(
            f"{n} {name} rows ({n / max(1, sizes[name]):.1%})" for name, n in repeats.items() if n
        )
        report.warn(f"{shown} repeat a training row exactly (every feature equal)")
    return report


def _words(text: str) -> list[str]:
    """Lower-case words of a name or value: `personal_status_and_sex` -> personal, status, and, sex."""
    return [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", text)]


def protected_characteristics(column: pd.Series, name: str) -> list[str]:
    """The protected characteristics a column's name or (text) values suggest, e.g. ['sex or
    gender', 'marital status'] for german's `personal_status_and_sex` ('male : single', ...)."""
    words = set(_words(name))
    joined = "_".join(_words(name))
    found = [
        kind
        for kind, names in PROTECTED_NAME_WORDS.items()
        if words & names or any("_" in n and n in joined for n in names)
    ]
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        return found
    values = column.value_counts().index[:PROTECTED_VALUES_SAMPLE]
    if len(values) == 0:
        return found
    value_words = [set(_words(str(v))) for v in values]
    for kind, names in PROTECTED_VALUE_WORDS.items():
        share = sum(bool(w & names) for w in value_words) / len(value_words)
        if share >= PROTECTED_VALUE_SHARE and kind not in found:
            found.append(kind)
    return found


def check_protected_like(
    features: pd.DataFrame, columns: list[str], report: GuardReport, *, declared: Iterable[str] | None
) -> None:
    """Warn about each feature that looks like a protected characteristic (by name or values) and
    is not in dataset.protected; age is flagged like the others, never refused."""
    known = {str(c) for c in _as_list(declared)}
    for name in columns:
        if name in known:
            continue
        kinds = protected_characteristics(features[name], name)
        if not kinds:
            continue
        note = " (age is flagged, not refused: some regimes allow it in scoring)" if kinds == [AGE] else ""
        report.warn(
            f"column {name!r} looks like a protected characteristic ({', '.join(kinds)}) and is used as a "
            f"feature{note}; declare it in dataset.protected to exclude it and measure fairness by it, "
            "see docs/fairness.md"
        )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _name_says_id(name: str) -> bool:
    """`id`, `loan_id`, `SK_ID_CURR`, `customerId`: a word `id` in the name (`paid` is not)."""
    words = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name)
    return any(w.lower() == "id" for w in words)


def is_id_like(column: pd.Series, name: str) -> bool:
    """A distinct value on every row (none missing, at least MIN_ID_ROWS rows), and either text, or
    whole numbers that are dense (span <= ID_SPAN_PER_ROW x rows, as row numbers and database keys
    are) or named like an id. Continuous measurements are never ids: fractions, repeated values,
    or whole numbers spread sparsely (amounts) fail the test."""
    n = len(column)
    if n < MIN_ID_ROWS or column.isna().any():
        return False
    head = column.iloc[:10_000]
    if head.nunique(dropna=False) < len(head):
        return False  # a repeat among the first rows: cheap proof on a long column
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64)
        if not np.all(values == np.round(values)):
            return False
        dense = values.max() - values.min() + 1 <= ID_SPAN_PER_ROW * n
        return bool((dense or _name_says_id(name)) and len(np.unique(values)) == n)
    return bool(column.nunique(dropna=False) == n)


def date_share(column: pd.Series) -> float:
    """Share of the non-missing values (by rows) that read as dates: text with a digit that is not
    a plain number (a year alone or a month name alone is a category) and that pandas parses."""
    if len(column) > DATE_ROWS:
        column = column.iloc[np.sort(np.random.default_rng(0).choice(len(column), DATE_ROWS, replace=False))]
    counts = column.value_counts().iloc[:DATE_SAMPLE]  # missing values are not counted
    if counts.empty:
        return 0.0
    total = float(counts.sum())
    text = pd.Series(counts.index.astype(str)).str.strip()
    candidate = text.str.contains(r"\d") & pd.to_numeric(text, errors="coerce").isna()
    if counts[candidate.to_numpy()].sum() < DATE_SHARE * total:
        return 0.0  # most values cannot be dates: skip the (slow) parser
    parsed = pd.to_datetime(text[candidate], errors="coerce", format="mixed").notna()
    return float(counts[candidate.to_numpy()][parsed.to_numpy()].sum() / total)


def _auc(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ROC AUC of each column of `scores`: P(bad scores above good) + P(tie) / 2, by sorting
    (one column per thread on a large sample)."""
    is_bad = y == 1
    n_pairs = float(is_bad.sum()) * float((~is_bad).sum())

    def column(j: int) -> float:
        values = scores[:, j]
        good = np.sort(values[~is_bad])
        bad = np.sort(values[is_bad])  # sorted queries search much faster
        below = np.searchsorted(good, bad, side="left")
        tied = np.searchsorted(good, bad, side="right") - below
        return (below.sum() + 0.5 * tied.sum()) / n_pairs

    return np.array(map_columns(column, range(scores.shape[1]), rows=len(y)), dtype=np.float64)


def out_of_fold_bad_rate(column: pd.Series, y: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Each row's category bad rate measured on the other folds (smoothed towards the overall
    rate). In-sample rates would score a high-cardinality column as a perfect predictor."""
    codes = pd.factorize(column, use_na_sentinel=False)[0]
    k = int(codes.max()) + 1 if len(codes) else 1
    folds = np.random.default_rng(seed).integers(0, LEAK_FOLDS, len(codes))
    cell = folds * k + codes
    n_fold = np.bincount(cell, minlength=LEAK_FOLDS * k).reshape(LEAK_FOLDS, k)
    bad_fold = np.bincount(cell, weights=y, minlength=LEAK_FOLDS * k).reshape(LEAK_FOLDS, k)
    n_out = n_fold.sum(axis=0)[codes] - n_fold[folds, codes]
    bad_out = bad_fold.sum(axis=0)[codes] - bad_fold[folds, codes]
    prior = float(y.mean())
    return (bad_out + prior) / (n_out + 1.0)


def feature_aucs(train: pd.DataFrame, y: np.ndarray, *, categorical: list[str]) -> dict[str, float]:
    """max(AUC, 1 - AUC) of every column alone on the training rows: the raw values of a number
    (missing values ranked lowest, then highest, the worse for us kept), the out-of-fold bad rate
    of a category."""
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0 or y.min() == y.max():
        return {}
    numeric = [c for c in train.columns if c not in categorical]
    out: dict[str, float] = {}
    if numeric:
        values = train[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values)
        auc = _auc(np.where(missing, -np.inf, values), y)
        auc = np.maximum(auc, 1 - auc)
        with_missing = missing.any(axis=0)
        if with_missing.any():
            high = _auc(np.where(missing, np.inf, values)[:, with_missing], y)
            auc[with_missing] = np.maximum(auc[with_missing], np.maximum(high, 1 - high))
        out.update(zip(numeric, map(float, auc), strict=True))
    if categorical:
        rates = np.column_stack(
            map_columns(lambda c: out_of_fold_bad_rate(train[c], y), categorical, rows=len(y))
        )
        auc = _auc(rates, y)
        out.update(zip(categorical, map(float, np.maximum(auc, 1 - auc)), strict=True))
    return out


def check_leakage(
    scores: Mapping[str, float],
    report: GuardReport,
    *,
    roles: Mapping[str, str],
    allow_leaky: Iterable[str] | None,
    n_rows: int | None = None,
) -> None:
    """A column at or above LEAK_AUC is a ZooError naming it, unless `dataset.allow_leaky` lists it.
    `n_rows`: how many labelled rows `scores` were measured on, for the message."""
    allowed = [str(c) for c in _as_list(allow_leaky)]
    for name in allowed:
        if name not in roles:
            raise ZooError(
                f"dataset.allow_leaky names {name!r}, which is not a column of the data; "
                f"columns are: {', '.join(roles)}"
            )
    leaky = {c: auc for c, auc in scores.items() if auc >= LEAK_AUC}
    refused = {c: auc for c, auc in leaky.items() if c not in allowed}
    where = "the labelled rows" if n_rows is None else f"all {n_rows:,} labelled rows"
    once = "judged once per data file and split design, the same for every fold and seed"
    if refused:
        shown = ", ".join(f"{c!r} (AUC {auc:.3f})" for c, auc in refused.items())
        names = ",".join(refused)
        which = "column" if len(refused) == 1 else "columns"
        verb = "separates" if len(refused) == 1 else "each separate"
        raise ZooError(
            f"label leakage: {which} {shown} alone {verb} bad from good on {where} "
            f"(AUC >= {LEAK_AUC}; {once}): a copy of the target or something known only after it; drop with "
            f"'dataset.roles.ignore=[{names}]' or keep with 'dataset.allow_leaky=[{names}]'"
        )
    if leaky:
        shown = ", ".join(f"{c} (AUC {auc:.3f})" for c, auc in leaky.items())
        report.warn(f"kept by dataset.allow_leaky, near-perfect alone on {where} ({once}): {shown}")


def repeated_rows(features: pd.DataFrame, parts: tuple[np.ndarray, ...]) -> dict[str, int]:
    """Validation and test rows whose every feature value equals some training row's."""
    hashes = row_hashes(features)
    seen = np.sort(hashes[parts[0]])

    def count(rows: np.ndarray) -> int:
        if len(seen) == 0 or len(rows) == 0:
            return 0
        asked = np.sort(hashes[rows])
        at = np.minimum(np.searchsorted(seen, asked), len(seen) - 1)
        return int((seen[at] == asked).sum())

    return {"test": count(parts[2]), "validation": count(parts[1])}


def row_hashes(features: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of every row's values: numbers by their bits (every NaN alike, -0 as 0), other
    columns by their codes from one factorisation; one pass over each column (columns in parallel)."""

    def bits(name: Any) -> np.ndarray:
        column = features[name]
        if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
            return (np.where(np.isnan(values), np.nan, values) + 0.0).view(np.uint64)
        return pd.factorize(column, use_na_sentinel=True)[0].astype(np.uint64)

    out = np.zeros(len(features), dtype=np.uint64)
    names = list(features.columns)
    for start in range(0, len(names), 8):  # 8 columns' bits in memory at a time
        for column_bits in map_columns(bits, names[start : start + 8], rows=len(features)):
            out ^= column_bits
            out *= np.uint64(0x9E3779B97F4A7C15)  # multiply and fold: each column's place matters
            out ^= out >> np.uint64(29)
    return out
