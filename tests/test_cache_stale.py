"""The reading cache never serves stale data: a CSV rewritten in place with its size kept and its
mtime restored (as `cp -p`, `rsync -t` or `os.utime` leave it) is parsed and hashed again, and
the digest the manifest records is that of the bytes read (zoo/data/cache.py)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from zoo.data import cache
from zoo.data.cache import cached_digest, cached_frame
from zoo.data.sources import describe_source, load_frame
from zoo.manifest import sha256_file

OPTIONS = {"sep": ",", "decimal": ".", "encoding": "utf-8"}
ROWS = 400
FLIPPED = 300


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_ENV, str(folder))
    return folder


def _loans(path: Path) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "amount": np.round(rng.lognormal(8, 1, ROWS), 2),
            "grade": rng.choice(["A", "B", "C"], ROWS),
            "default": rng.integers(0, 2, ROWS),
        }
    )
    frame.to_csv(path, index=False)
    return path


def _flip_labels_keeping_size_and_mtime(path: Path) -> None:
    """Flip the first FLIPPED labels (0 <-> 1) in place, same inode and size, then restore the
    original atime and mtime to the nanosecond."""
    before = path.stat()
    lines = path.read_bytes().split(b"\n")
    for i in range(1, FLIPPED + 1):
        head, _, label = lines[i].rpartition(b",")
        lines[i] = head + b"," + (b"1" if label == b"0" else b"0")
    with open(path, "r+b") as handle:  # in place: the inode stays, as `cp -p` onto the file keeps it
        handle.write(b"\n".join(lines))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )


def _dataset(path: Path) -> dict:
    return {"name": "loans", "source": "file", "path": str(path), "target": "default", "cache": True}


def test_labels_flipped_in_place_with_the_mtime_restored_are_read_and_hashed_anew(tmp_path: Path) -> None:
    path = _loans(tmp_path / "loans.csv")
    dataset = _dataset(path)
    first = load_frame(dataset)
    first_digest = describe_source(dataset, first)["sha256"]  # both cache entries are filled
    assert first_digest == sha256_file(path)

    _flip_labels_keeping_size_and_mtime(path)
    again = load_frame(dataset)
    digest = describe_source(dataset, again)["sha256"]

    pd.testing.assert_frame_equal(again, pd.read_csv(path))
    assert int((again["default"] != first["default"]).sum()) == FLIPPED
    assert digest == sha256_file(path) != first_digest


def test_the_stamp_alone_tells_a_rewrite_once_the_file_has_settled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no racy window, entries hold no content check: ctime and inode must tell the rewrite."""
    monkeypatch.setattr(cache, "RACY_NS", 0)
    path = _loans(tmp_path / "loans.csv")
    parsed, hashed = [], []
    first = cached_frame(path, OPTIONS, lambda: parsed.append(1) or pd.read_csv(path))
    first_digest = cached_digest(path, lambda p: hashed.append(1) or sha256_file(p))
    time.sleep(0.05)  # past the file system's ctime tick, as any later rewrite is

    _flip_labels_keeping_size_and_mtime(path)
    again = cached_frame(path, OPTIONS, lambda: parsed.append(1) or pd.read_csv(path))
    digest = cached_digest(path, lambda p: hashed.append(1) or sha256_file(p))

    assert parsed == [1, 1] and hashed == [1, 1]
    assert int((again["default"] != first["default"]).sum()) == FLIPPED
    assert digest == sha256_file(path) != first_digest


def test_a_racy_entry_is_checked_against_the_files_bytes_then_settles(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry made right after the file changed holds its SHA-256: a hit hashes the file first,
    and once the file is old enough the entry is rewritten without the check."""
    path = _loans(tmp_path / "loans.csv")
    parsed: list[int] = []
    cached_frame(path, OPTIONS, lambda: parsed.append(1) or pd.read_csv(path))
    cached_digest(path, sha256_file)
    (frame_entry,) = (cache_dir / "frames").glob("*.parquet")
    (digest_entry,) = (cache_dir / "digests").glob("*.json")
    assert json.loads(digest_entry.read_text())["check"] == sha256_file(path)

    again = cached_frame(path, OPTIONS, lambda: parsed.append(1) or pd.read_csv(path))
    assert parsed == [1]  # same bytes: served from the cache after the check
    pd.testing.assert_frame_equal(again, pd.read_csv(path))

    monkeypatch.setattr(cache, "RACY_NS", 0)  # as if the file were now old
    cached_frame(path, OPTIONS, lambda: parsed.append(1) or pd.read_csv(path))
    assert cached_digest(path, sha256_file) == sha256_file(path)
    assert parsed == [1]
    assert "check" not in json.loads(digest_entry.read_text())
    record = json.loads(pq.read_schema(frame_entry).metadata[b"credit-zoo"])
    assert "check" not in record
