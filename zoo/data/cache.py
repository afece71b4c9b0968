"""A Parquet copy of each parsed CSV file and the file's SHA-256, so a large file is parsed and hashed
once: an entry holds the file's path, size and modification time (and the reading options), and is
used only when all match; an entry that cannot be read or whose pages fail their checksums is rebuilt."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from zoo.outputs import write_atomic

log = logging.getLogger(__name__)

#: Environment variable naming the cache directory (default `$XDG_CACHE_HOME/credit-zoo`, else
#: `~/.cache/credit-zoo`).
CACHE_ENV = "CREDIT_ZOO_CACHE"
#: Bumped when what an entry holds changes; part of every entry's name.
CACHE_FORMAT = "credit-zoo.frame-cache/1"
_META_KEY = b"credit-zoo"


def cache_root() -> Path:
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "credit-zoo"


def file_stamp(path: Path) -> dict[str, Any]:
    """What identifies a file's contents without reading it: resolved path, size, mtime in ns."""
    status = path.stat()
    return {"path": str(path.resolve()), "size": status.st_size, "mtime_ns": status.st_mtime_ns}


def _entry(kind: str, path: Path, options: Mapping[str, Any], suffix: str) -> Path:
    """One entry per file and options (a changed file overwrites its stale entry); the library
    versions that shape the parsed frame are part of the name."""
    key = {
        "format": CACHE_FORMAT,
        "path": str(path.resolve()),
        "options": dict(options),
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
    }
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return cache_root() / kind / f"{name}{suffix}"


def cached_frame(path: Path, options: Mapping[str, Any], read: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """The frame `read()` parses from `path` with `options`: from the cache when its entry matches
    the file as it is now, else parsed and stored (a cache that cannot be written only warns)."""
    stamp = file_stamp(path)
    wanted = {"stamp": stamp, "options": dict(options)}
    entry = _entry("frames", path, options, ".parquet")
    if entry.is_file():
        try:
            table = pq.read_table(entry, page_checksum_verification=True)
            record = json.loads((table.schema.metadata or {}).get(_META_KEY, b"null"))
            held = {k: v for k, v in record.items() if k != "shape"} if isinstance(record, dict) else None
            if held == wanted:
                frame = table.to_pandas()
                if _shape(frame) == record.get("shape"):
                    return frame
                log.warning("ignoring cache entry %s whose columns do not match its record", entry)
        except (OSError, ValueError, pa.ArrowException) as err:
            log.warning("ignoring unreadable cache entry %s (%s); parsing %s again", entry, err, path)
    frame = read()
    if file_stamp(path) != stamp:
        return frame  # the file changed while it was read: nothing safe to store
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (ValueError, TypeError, pa.ArrowException) as err:
        log.warning("not caching %s: its frame has no Parquet form (%s)", path, err)
        return frame
    record = {**wanted, "shape": _shape(frame)}
    metadata = {**(table.schema.metadata or {}), _META_KEY: json.dumps(record).encode()}
    table = table.replace_schema_metadata(metadata)
    _store(entry, lambda tmp: pq.write_table(table, tmp, write_page_checksum=True, compression="none"))
    return frame


def _shape(frame: pd.DataFrame) -> dict[str, Any]:
    """Rows, column names and dtypes: checked on reading, as Parquet's page checksums cover the
    values alone."""
    return {"rows": len(frame), "columns": [[str(c), str(t)] for c, t in frame.dtypes.items()]}


def cached_digest(path: Path, digest: Callable[[Path], str]) -> str:
    """`digest(path)`, remembered for the file's size and mtime so an unchanged file is not re-hashed."""
    stamp = file_stamp(path)
    entry = _entry("digests", path, {}, ".json")
    try:
        held = json.loads(entry.read_text())
        if held.get("stamp") == stamp and isinstance(held.get("sha256"), str):
            return held["sha256"]
    except (OSError, ValueError, AttributeError):
        pass  # absent or unreadable: hash the file
    value = digest(path)
    if file_stamp(path) == stamp:
        text = json.dumps({"stamp": stamp, "sha256": value})
        _store(entry, lambda tmp: tmp.write_text(text))
    return value


def _store(entry: Path, write: Callable[[Path], Any]) -> None:
    try:
        write_atomic(entry, write)
    except OSError as err:
        log.warning("could not write cache entry %s (%s); set %s to a writable folder", entry, err, CACHE_ENV)
