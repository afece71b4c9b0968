"""The Parquet cache of parsed CSV files (zoo/data/cache.py) and the fast CSV reader behind it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from zoo.data.cache import CACHE_ENV, cached_digest, cached_frame
from zoo.data.sources import load_frame, read_csv, read_table
from zoo.errors import ZooError
from zoo.manifest import sha256_file

OPTIONS = {"sep": ",", "decimal": ".", "encoding": "utf-8"}


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def _loans(path: Path, rows: int = 50) -> Path:
    """A CSV with what trips readers up: missing text and numbers, an empty column, booleans, ISO dates
    and times, quoted separators, non-ASCII text, integers with gaps."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "grade": rng.choice(["A", "B", "C", None], rows),
            "amount": np.round(rng.lognormal(8, 1, rows), 2),
            "flag": rng.choice([True, False], rows),
            "opened": pd.Series(pd.date_range("2020-01-01", periods=rows)).dt.strftime("%Y-%m-%d"),
            "at": rng.choice(["10:30", "11:45:00"], rows),
            "empty": [None] * rows,
            "city": rng.choice(["Zürich", "a, b", 'say "hi"'], rows),
            "term": rng.choice([36.0, 60.0, np.nan], rows),
            "default": rng.integers(0, 2, rows),
        }
    )
    frame.to_csv(path, index=False)
    return path


def _parsed(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, low_memory=False)


def _entries(cache_dir: Path, kind: str = "frames") -> list[Path]:
    return sorted((cache_dir / kind).glob("*")) if (cache_dir / kind).exists() else []


def test_the_fast_reader_gives_the_c_parsers_frame(tmp_path):
    path = _loans(tmp_path / "loans.csv")
    pd.testing.assert_frame_equal(read_csv(path, **OPTIONS), _parsed(path))


def test_decimal_commas_are_read_by_the_c_parser(tmp_path):
    path = tmp_path / "loans.csv"
    path.write_text("grade;income;status\nB;57,49;good\nA;1,5;bad\n")
    frame = read_csv(path, sep=";", decimal=",", encoding="utf-8")
    assert frame["income"].tolist() == [57.49, 1.5]


def test_the_cached_frame_equals_the_parsed_csv_and_is_read_from_the_cache(tmp_path, cache_dir):
    path = _loans(tmp_path / "loans.csv")
    first = read_table(path, obtain=None, cache=True)
    assert len(_entries(cache_dir)) == 1
    calls = []

    def parse() -> pd.DataFrame:
        calls.append(1)
        return read_csv(path, **OPTIONS)

    again = cached_frame(path, OPTIONS, parse)
    assert calls == []  # served by the cache, not parsed
    pd.testing.assert_frame_equal(again, _parsed(path))
    pd.testing.assert_frame_equal(first, _parsed(path))


def test_a_changed_or_touched_csv_is_parsed_again(tmp_path, cache_dir):
    path = _loans(tmp_path / "loans.csv")
    read_table(path, obtain=None, cache=True)
    frame = pd.read_csv(path)
    frame.loc[0, "amount"] = 123456.0
    frame.to_csv(path, index=False)
    pd.testing.assert_frame_equal(read_table(path, obtain=None, cache=True), _parsed(path))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # same bytes, newer
    calls = []
    cached_frame(path, OPTIONS, lambda: calls.append(1) or read_csv(path, **OPTIONS))
    assert calls == [1]
    assert len(_entries(cache_dir)) == 1  # the stale entry was replaced, not kept beside


def test_no_cache_writes_nothing(tmp_path, cache_dir):
    path = _loans(tmp_path / "loans.csv")
    dataset = {"name": "loans", "source": "file", "path": str(path), "target": "default", "cache": False}
    pd.testing.assert_frame_equal(load_frame(dataset), _parsed(path))
    assert not cache_dir.exists()


def test_a_corrupt_cache_entry_is_ignored_and_rebuilt(tmp_path, cache_dir, caplog):
    path = _loans(tmp_path / "loans.csv")
    read_table(path, obtain=None, cache=True)
    (entry,) = _entries(cache_dir)
    chunk = pq.ParquetFile(entry).metadata.row_group(0).column(2)  # "amount"
    end = chunk.data_page_offset + chunk.total_compressed_size
    data = bytearray(entry.read_bytes())
    data[end - 40 : end - 8] = bytes(32)  # zero some values: the page's checksum no longer matches
    entry.write_bytes(bytes(data))
    pd.testing.assert_frame_equal(read_table(path, obtain=None, cache=True), _parsed(path))
    assert "ignoring unreadable cache entry" in caplog.text
    entry.write_bytes(b"not parquet")
    pd.testing.assert_frame_equal(read_table(path, obtain=None, cache=True), _parsed(path))
    pd.testing.assert_frame_equal(pd.read_parquet(entry), _parsed(path))  # rebuilt whole


def test_different_reading_options_get_different_entries(tmp_path, cache_dir):
    path = tmp_path / "loans.csv"
    path.write_text("grade;income;status\nB;57,49;good\nA;1,5;bad\n")
    as_text = read_table(path, obtain=None, cache=True, sep=";")
    as_numbers = read_table(path, obtain=None, cache=True, sep=";", decimal=",")
    assert as_text["income"].tolist() == ["57,49", "1,5"]
    assert as_numbers["income"].tolist() == [57.49, 1.5]
    assert len(_entries(cache_dir)) == 2


def test_the_digest_is_the_files_and_is_recomputed_when_the_file_changes(tmp_path, cache_dir):
    path = _loans(tmp_path / "loans.csv")
    hashed = []

    def digest(p: Path) -> str:
        hashed.append(p)
        return sha256_file(p)

    assert cached_digest(path, digest) == sha256_file(path)
    assert cached_digest(path, digest) == sha256_file(path)
    assert len(hashed) == 1  # the second answer came from the cache
    path.write_text(path.read_text() + "49,A,1.0,True,2020-01-01,10:30,,x,36.0,1\n")
    assert cached_digest(path, digest) == sha256_file(path)
    assert len(hashed) == 2


def test_dataset_cache_must_be_true_or_false(tmp_path, cache_dir):
    path = _loans(tmp_path / "loans.csv")
    dataset = {"name": "loans", "source": "file", "path": str(path), "target": "default", "cache": "no"}
    with pytest.raises(ZooError, match=r"dataset.cache='no', expected true or false"):
        load_frame(dataset)
