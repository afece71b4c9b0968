"""Seeded, stratified train/validation/test splits and k-fold splits."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from zoo.errors import ZooError

MIN_PER_CLASS = 2  # every split must hold at least this many rows of each class


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
