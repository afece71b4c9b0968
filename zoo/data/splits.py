"""Seeded, stratified train/validation/test splits, k-fold splits, and splits from a column
(predefined parts, fold numbers, or dates for out-of-time validation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from zoo.errors import ZooError

MIN_PER_CLASS = 2  # every split must hold at least this many rows of each class
SPLIT_NAMES = ("train", "val", "test")


def _check_fractions(train: float, val: float, test: float) -> None:
    for name, value in (("train", train), ("val", val), ("test", test)):
        if not 0 < value < 1:
            raise ZooError(f"data.split.{name}={value}, expected a fraction between 0 and 1")
    if abs(train + val + test - 1.0) > 1e-6:
        raise ZooError(f"data.split fractions sum to {train + val + test:.4g}, expected 1")


def _check_counts(y: np.ndarray, needed_per_class: int, what: str) -> None:
    counts = np.bincount(y.astype(np.int64), minlength=2)
    if counts.min() < needed_per_class:
        raise ZooError(
            f"{what} needs at least {needed_per_class} rows of each class, but the data has "
            f"{counts[1]} bad and {counts[0]} good rows"
        )


def train_val_test(
    y: np.ndarray, *, train: float = 0.6, val: float = 0.2, test: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of a stratified split; both classes are guaranteed in every part."""
    _check_fractions(train, val, test)
    smallest = min(train, val, test)
    needed = int(np.ceil(MIN_PER_CLASS / smallest))
    _check_counts(y, needed, f"a {train:g}/{val:g}/{test:g} split")
    rows = np.arange(len(y))
    rest, test_rows = train_test_split(rows, test_size=test, stratify=y, random_state=seed)
    train_rows, val_rows = train_test_split(
        rest, test_size=val / (train + val), stratify=y[rest], random_state=seed + 1
    )
    return np.sort(train_rows), np.sort(val_rows), np.sort(test_rows)


def k_fold(
    y: np.ndarray, *, n_folds: int, fold: int, val: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fold `fold` of a stratified k-fold as test; validation is carved from the other folds."""
    if n_folds < 2:
        raise ZooError(f"data.n_folds={n_folds}, expected at least 2")
    if not 0 <= fold < n_folds:
        raise ZooError(f"data.fold={fold}, expected 0 <= fold < n_folds={n_folds}")
    if not 0 < val < 1:
        raise ZooError(f"data.split.val={val}, expected a fraction between 0 and 1")
    _check_counts(y, max(n_folds, int(np.ceil(MIN_PER_CLASS / (val * (1 - 1 / n_folds))))), f"{n_folds}-fold")
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    rest, test_rows = list(folds.split(np.zeros(len(y)), y))[fold]
    train_rows, val_rows = train_test_split(rest, test_size=val, stratify=y[rest], random_state=seed + 1)
    return np.sort(train_rows), np.sort(val_rows), np.sort(test_rows)


def _check_parts(parts: dict[str, np.ndarray], y: np.ndarray, names: tuple[str, ...], what: str) -> None:
    """Raise unless each named part is non-empty and those in `names` hold both classes."""
    for name, rows in parts.items():
        if rows.shape[0] == 0:
            raise ZooError(f"{what}: the {name} part is empty")
        if name in names:
            bad = int(np.count_nonzero(y[rows]))
            if bad == 0 or bad == rows.shape[0]:
                raise ZooError(
                    f"{what}: the {name} part needs both classes, but has {bad} bad and "
                    f"{rows.shape[0] - bad} good rows"
                )


def predefined(values: object, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices from a split column of 'train' / 'val' / 'test' (case and spaces ignored).

    Train and validation need both classes; test only needs rows (its metrics may be NaN).
    """
    labels = pd.Series(values, dtype=object).reset_index(drop=True)
    keys = labels.map(lambda v: v.strip().lower() if isinstance(v, str) else None)
    unknown = ~keys.isin(SPLIT_NAMES)
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        value = "missing" if pd.isna(labels[row]) else repr(labels[row])
        raise ZooError(
            f"split column value at row {row} is {value}, expected one of {', '.join(map(repr, SPLIT_NAMES))}"
        )
    parts = {name: np.flatnonzero(keys.to_numpy() == name) for name in SPLIT_NAMES}
    _check_parts(parts, np.asarray(y), ("train", "val"), "the predefined split")
    return parts["train"], parts["val"], parts["test"]


def by_fold_column(
    folds: object, y: np.ndarray, *, fold: object, val: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows whose fold value equals `fold` as test; validation is a stratified share `val` of the rest.

    `fold` matches by value, or else by its text, so fold=1 finds a column of '1' strings.
    """
    if not 0 < val < 1:
        raise ZooError(f"data.split.val={val}, expected a fraction between 0 and 1")
    keys = pd.Series(folds).reset_index(drop=True)
    if keys.isna().any():
        row = int(np.flatnonzero(keys.isna())[0])
        raise ZooError(f"fold column is missing at row {row} ({keys[row]!r}); every row needs a fold")
    is_test = (keys == fold).to_numpy()
    if not is_test.any():
        is_test = (keys.astype(str).str.strip() == str(fold).strip()).to_numpy()
    if not is_test.any():
        values = [v.item() if isinstance(v, np.generic) else v for v in keys.unique()]
        present = ", ".join(map(repr, sorted(values, key=lambda v: (str(type(v)), v))))
        raise ZooError(f"data.fold={fold!r} is not a value of the fold column, expected one of {present}")
    y = np.asarray(y)
    test_rows = np.flatnonzero(is_test)
    rest = np.flatnonzero(~is_test)
    _check_counts(y[rest], int(np.ceil(MIN_PER_CLASS / val)), f"the rows outside fold {fold!r}")
    train_rows, val_rows = train_test_split(rest, test_size=val, stratify=y[rest], random_state=seed + 1)
    return np.sort(train_rows), np.sort(val_rows), test_rows


def _time_keys(dates: object) -> np.ndarray:
    """Sortable keys for a date column: datetimes, date strings, or numbers (e.g. a yyyymm period)."""
    column = pd.Series(dates).reset_index(drop=True)
    missing = column.isna()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise ZooError(f"date column is missing at row {row} ({column[row]!r}); every row needs a date")
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_convert(None)
    if pd.api.types.is_datetime64_any_dtype(column.dtype) or pd.api.types.is_numeric_dtype(column.dtype):
        return column.to_numpy()
    parsed = pd.to_datetime(column, errors="coerce")
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert(None)
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna())[0])
        raise ZooError(
            f"date column value {column[row]!r} (row {row}) is not a date, expected e.g. '2021-03-31' "
            "in one format throughout, datetimes, or numbers"
        )
    return parsed.to_numpy()


def out_of_time(
    dates: object, y: np.ndarray, *, train: float = 0.6, val: float = 0.2, test: float = 0.2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Earliest `train` share of rows by date as train, then `val`, the latest `test` share as test.

    Rows sharing a date at a boundary all go to the later part, so no date spans two parts; every
    part needs both classes.
    """
    _check_fractions(train, val, test)
    keys = _time_keys(dates)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    n = keys.shape[0]
    cuts = []
    for share in (train, train + val):
        cut = round(share * n)
        # move the boundary back to the first row of its date: tied rows go to the later part
        cuts.append(int(np.searchsorted(ordered, ordered[cut], side="left")) if cut < n else n)
    parts = dict(zip(SPLIT_NAMES, np.split(order, cuts), strict=True))
    _check_parts(parts, np.asarray(y), SPLIT_NAMES, f"a {train:g}/{val:g}/{test:g} out-of-time split")
    return np.sort(parts["train"]), np.sort(parts["val"]), np.sort(parts["test"])
