"""Splits from a column (predefined parts, fold numbers, dates); generated splits still partition."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from zoo.data import splits
from zoo.errors import ZooError


def labels(n: int, bad_every: int = 4) -> np.ndarray:
    return (np.arange(n) % bad_every == 0).astype(np.int8)


def assert_partition(parts: tuple[np.ndarray, ...], n: int) -> None:
    """Sorted int row arrays, disjoint, covering 0..n-1."""
    for rows in parts:
        assert rows.dtype.kind == "i" and np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(n))


@pytest.mark.parametrize(
    "make",
    [lambda y: splits.train_val_test(y, seed=1), lambda y: splits.k_fold(y, n_folds=4, fold=3, seed=1)],
)
def test_generated_splits_still_partition(make) -> None:
    y = labels(400)
    assert_partition(make(y), 400)


def test_predefined() -> None:
    column = pd.Series(["train", " Train", "VAL", "test ", "train", "val", "train", "test"])
    y = np.array([0, 1, 0, 1, 1, 1, 0, 0])
    train, val, test = splits.predefined(column, y)
    np.testing.assert_array_equal(train, [0, 1, 4, 6])
    np.testing.assert_array_equal(val, [2, 5])
    np.testing.assert_array_equal(test, [3, 7])
    # a categorical column and a non-default index work too; the test part may hold one class
    column = pd.Series(pd.Categorical(["train", "train", "val", "val", "test"]), index=[9, 8, 7, 6, 5])
    train, val, test = splits.predefined(column, np.array([0, 1, 0, 1, 0]))
    assert_partition((train, val, test), 5)


@pytest.mark.parametrize(
    ("column", "y", "message"),
    [
        (["train", "valid", "test"], [0, 1, 0], "row 1 is 'valid', expected one of 'train', 'val', 'test'"),
        (["train", None, "test"], [0, 1, 0], "row 1 is missing, expected one of"),
        (["train", float("nan"), "test"], [0, 1, 0], "row 1 is missing"),
        (["train", 1, "test"], [0, 1, 0], "row 1 is 1,"),
        (["train", "train", "val", "val"], [0, 1, 0, 1], "the test part is empty"),
        (
            ["train", "train", "val", "val", "test"],
            [0, 0, 0, 1, 1],
            "train part needs both classes, but has 0 bad",
        ),
        (
            ["train", "train", "val", "val", "test"],
            [0, 1, 1, 1, 1],
            "val part needs both classes, but has 2 bad",
        ),
    ],
)
def test_predefined_rejects(column: list, y: list, message: str) -> None:
    with pytest.raises(ZooError, match=message):
        splits.predefined(column, np.array(y))


def test_by_fold_column() -> None:
    y = labels(300)
    folds = np.arange(300) % 5
    train, val, test = splits.by_fold_column(folds, y, fold=2, seed=0)
    assert_partition((train, val, test), 300)
    np.testing.assert_array_equal(test, np.flatnonzero(folds == 2))
    assert len(val) == 48 and abs(y[val].mean() - y[train].mean()) < 0.02  # stratified 20% of 240
    again = splits.by_fold_column(folds, y, fold=2, seed=0)
    other = splits.by_fold_column(folds, y, fold=2, seed=1)
    np.testing.assert_array_equal(again[1], val)
    assert not np.array_equal(other[1], val)
    # fold numbers stored as text (or the fold given as text) still match
    np.testing.assert_array_equal(splits.by_fold_column(folds.astype(str), y, fold=2)[2], test)
    np.testing.assert_array_equal(splits.by_fold_column(folds, y, fold="2")[2], test)
    np.testing.assert_array_equal(
        splits.by_fold_column(pd.Series(["a", "b"] * 150), y, fold="b")[2], np.arange(1, 300, 2)
    )


def test_by_fold_column_rejects() -> None:
    y = labels(100)
    folds = np.arange(100) % 3
    with pytest.raises(
        ZooError, match="data.fold=7 is not a value of the fold column, expected one of 0, 1, 2"
    ):
        splits.by_fold_column(folds, y, fold=7)
    with pytest.raises(ZooError, match="missing at row 4"):
        splits.by_fold_column(np.where(np.arange(100) == 4, np.nan, folds), y, fold=1)
    with pytest.raises(ZooError, match="data.split.val=1.5"):
        splits.by_fold_column(folds, y, fold=1, val=1.5)
    with pytest.raises(ZooError, match="rows outside fold 0 needs at least 10 rows of each class"):
        splits.by_fold_column(np.r_[np.zeros(95), np.ones(5)], np.r_[np.zeros(95), np.ones(5)], fold=0)


@pytest.mark.parametrize(
    "dates",
    [
        pd.Series(pd.date_range("2020-01-01", periods=100, freq="D")).sample(frac=1, random_state=0),
        pd.Series(pd.date_range("2020-01-01", periods=100, freq="D", tz="Europe/Berlin")).sample(
            frac=1, random_state=0
        ),
        pd.Series(pd.date_range("2020-01-01", periods=100, freq="D").strftime("%Y-%m-%d")).sample(
            frac=1, random_state=0
        ),
        pd.Series([dt.date(2020, 1, 1) + dt.timedelta(days=d) for d in range(100)]).sample(
            frac=1, random_state=0
        ),
        pd.Series(np.arange(100) * 10.0).sample(frac=1, random_state=0),
    ],
    ids=["datetime64", "tz-aware", "strings", "date-objects", "numbers"],
)
def test_out_of_time_orders_by_date(dates: pd.Series) -> None:
    day = dates.index.to_numpy()  # sample() kept the original positions as the index: the day number
    y = (day % 3 == 0).astype(np.int8)
    train, val, test = splits.out_of_time(dates, y)
    assert_partition((train, val, test), 100)
    assert (len(train), len(val), len(test)) == (60, 20, 20)
    assert day[train].max() < day[val].min() and day[val].max() < day[test].min()


def test_out_of_time_keeps_tied_dates_together() -> None:
    # 10 months of 10 rows, plus 5 more rows in month 6: the 60% boundary falls inside month 6
    month = np.r_[np.repeat(np.arange(10), 10), np.full(5, 6)]
    y = labels(len(month), bad_every=3)
    train, val, test = splits.out_of_time(month, y, train=0.6, val=0.2, test=0.2)
    assert month[train].max() == 5 and month[val].min() == 6  # the whole of month 6 went to val
    assert month[val].max() < month[test].min()
    assert_partition((train, val, test), len(month))


@pytest.mark.parametrize(
    ("dates", "y", "message"),
    [
        (
            ["2020-01-01", "2020-02-01", "soon", "2020-04-01"],
            [0, 1, 0, 1],
            r"value 'soon' \(row 2\) is not a date",
        ),
        (["2020-01-01", None, "2020-03-01"], [0, 1, 0], "date column is missing at row 1"),
        ([1.0, np.nan, 3.0], [0, 1, 0], "missing at row 1"),
        (pd.to_datetime(["2020-01-01", None]), [0, 1], "missing at row 1"),
        (np.arange(10), np.r_[np.zeros(6), 1, 0, 1, 0], "the train part needs both classes, but has 0 bad"),
        (np.zeros(10), labels(10), "the train part is empty"),  # one date for every row
    ],
)
def test_out_of_time_rejects(dates: object, y: object, message: str) -> None:
    with pytest.raises(ZooError, match=message):
        splits.out_of_time(dates, np.asarray(y))


def test_out_of_time_checks_fractions() -> None:
    with pytest.raises(ZooError, match="fractions sum to 1.1"):
        splits.out_of_time(np.arange(10), labels(10), train=0.7)
