"""Data preparation on several threads gives exactly the arrays, preprocessing and guard findings
of one thread (each column's work is independent; only the order of the results matters)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from zoo.data import threads
from zoo.data.datamodule import CreditDataModule
from zoo.data.synthetic import make_synthetic
from zoo.errors import ZooError


def _build(monkeypatch: pytest.MonkeyPatch, workers: int) -> CreditDataModule:
    monkeypatch.setenv("CREDIT_ZOO_DATA_THREADS", str(workers))
    monkeypatch.setattr(threads, "PARALLEL_ROWS", 0)  # threads even for this small frame
    frame = make_synthetic(n_rows=3000, n_categorical=6, n_numeric=8, missing_rate=0.1, seed=3, target="y")
    frame.loc[frame.index[:40], "num_0"] = 1e9  # repeats and odd values feed the guards too
    module = CreditDataModule(
        {"name": "threads", "target": "y", "bad_value": 1, "crosses": "auto"}, frame=frame, raw_values=True
    )
    module.build()
    return module


def test_threaded_preparation_equals_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    serial, parallel = _build(monkeypatch, 1), _build(monkeypatch, 4)
    for split in ("train", "val", "test"):
        assert serial.arrays[split].keys() == parallel.arrays[split].keys()
        for key, values in serial.arrays[split].items():
            np.testing.assert_array_equal(values, parallel.arrays[split][key], err_msg=f"{split}/{key}")
    assert serial.preprocessor.to_dict() == parallel.preprocessor.to_dict()
    assert serial.feature_spec == parallel.feature_spec
    assert serial.warnings == parallel.warnings
    assert serial.preprocessor.unseen_ == parallel.preprocessor.unseen_


def test_map_columns_keeps_order_and_raises_a_worker_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDIT_ZOO_DATA_THREADS", "3")
    assert threads.map_columns(lambda i: i * i, range(10), rows=10**6) == [i * i for i in range(10)]

    def fail(i: int) -> int:
        if i == 7:
            raise ValueError("column 7 is bad")
        return i

    with pytest.raises(ValueError, match="column 7 is bad"):
        threads.map_columns(fail, range(10), rows=10**6)


@pytest.mark.parametrize("given", ["two", "0", "-1", "1.5"])
def test_a_bad_thread_count_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv("CREDIT_ZOO_DATA_THREADS", given)
    with pytest.raises(
        ZooError, match=rf"CREDIT_ZOO_DATA_THREADS='{re.escape(given)}', expected a whole number"
    ):
        threads.map_columns(abs, [1, 2], rows=10**6)
