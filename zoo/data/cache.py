"""A Parquet copy of each parsed CSV file and the file's SHA-256, so a large file is parsed and hashed
once. An entry is used only when the file's stamp matches, what `cp -p`, `rsync -t` or `os.utime`
cannot forge: resolved path, device, inode, size, mtime and ctime (which no user can set). A file
changed moments before its entry was made could change again within the same ctime tick, so such an
entry also holds the file's SHA-256 and is used only after the file hashes the same again. An entry
that cannot be read or whose pages fail their checksums is rebuilt."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from zoo.manifest import sha256_file
from zoo.outputs import write_atomic

log = logging.getLogger(__name__)

#: Environment variable naming the cache directory (default `$XDG_CACHE_HOME/credit-zoo`, else
#: `~/.cache/credit-zoo`).
CACHE_ENV = "CREDIT_ZOO_CACHE"
#: Bumped when what an entry holds changes; part of every entry's name.
CACHE_FORMAT = "credit-zoo.frame-cache/2"
#: A stamp whose mtime or ctime is this recent (or in the future) is racy: file systems tick ctime
#: coarsely (a jiffy; more on network file systems), so a rewrite in the same tick keeps the stamp.
RACY_NS = 2_000_000_000
_META_KEY = b"credit-zoo"


def cache_root() -> Path:
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "credit-zoo"


def file_stamp(path: Path) -> dict[str, Any]:
    """What identifies a file's contents without reading it, none of which `cp -p` or `os.utime`
    can restore after a rewrite: resolved path, device, inode, size, mtime and ctime in ns."""
    status = path.stat()
    return {
        "path": str(path.resolve()),
        "device": status.st_dev,
        "inode": status.st_ino,
        "size": status.st_size,
        "mtime_ns": status.st_mtime_ns,
        "ctime_ns": status.st_ctime_ns,
    }


def _racy(stamp: Mapping[str, Any]) -> bool:
    """Whether the file changed too recently for its stamp to prove a later rewrite would change it."""
    return max(stamp["mtime_ns"], stamp["ctime_ns"]) > time.time_ns() - RACY_NS


def _content_check(path: Path, stamp: Mapping[str, Any]) -> str | None:
    """The file's SHA-256 when its stamp is racy (None when not), or "" when the file changed meanwhile."""
    if not _racy(stamp):
        return None
    check = sha256_file(path)
    return check if file_stamp(path) == stamp else ""


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
        cached = _cached_table(entry, wanted)
        if cached is not None:
            table, frame, check = cached
            if check is None:
                return frame
            if sha256_file(path) == check and file_stamp(path) == stamp:
                if not _racy(stamp):  # settled: later hits need not hash the file again
                    _store_table(entry, table, {**wanted, "shape": _shape(frame)})
                return frame
            log.info("cache entry %s is of an earlier version of %s; parsing it again", entry, path)
    frame = read()
    if file_stamp(path) != stamp:
        return frame  # the file changed while it was read: nothing safe to store
    check = _content_check(path, stamp)
    if check == "":
        return frame
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (ValueError, TypeError, pa.ArrowException) as err:
        log.warning("not caching %s: its frame has no Parquet form (%s)", path, err)
        return frame
    record = {**wanted, "shape": _shape(frame)}
    _store_table(entry, table, record if check is None else {**record, "check": check})
    return frame


def _cached_table(entry: Path, wanted: Mapping[str, Any]) -> tuple[pa.Table, pd.DataFrame, str | None] | None:
    """The entry's table, its frame and its content check when its record is `wanted`; None when
    it is not, or is unreadable (logged)."""
    try:
        table = pq.read_table(entry, page_checksum_verification=True)
        record = json.loads((table.schema.metadata or {}).get(_META_KEY, b"null"))
        if not isinstance(record, dict):
            return None
        held = {k: v for k, v in record.items() if k not in ("shape", "check")}
        if held != wanted:
            return None
        frame = table.to_pandas()
        if _shape(frame) != record.get("shape"):
            log.warning("ignoring cache entry %s whose columns do not match its record", entry)
            return None
        check = record.get("check")
        return table, frame, check if isinstance(check, str) and check else None
    except (OSError, ValueError, pa.ArrowException) as err:
        log.warning("ignoring unreadable cache entry %s (%s); parsing its file again", entry, err)
        return None


def _store_table(entry: Path, table: pa.Table, record: Mapping[str, Any]) -> None:
    plain = {k: v for k, v in (table.schema.metadata or {}).items() if k != _META_KEY}
    table = table.replace_schema_metadata({**plain, _META_KEY: json.dumps(record).encode()})
    _store(entry, lambda tmp: pq.write_table(table, tmp, write_page_checksum=True, compression="none"))


def _shape(frame: pd.DataFrame) -> dict[str, Any]:
    """Rows, column names and dtypes: checked on reading, as Parquet's page checksums cover the
    values alone."""
    return {"rows": len(frame), "columns": [[str(c), str(t)] for c, t in frame.dtypes.items()]}


def cached_digest(path: Path, digest: Callable[[Path], str]) -> str:
    """`digest(path)`, remembered for the file's stamp so an unchanged file is not re-hashed (a racy
    entry is used only after the file's SHA-256 matches the one taken with it)."""
    stamp = file_stamp(path)
    entry = _entry("digests", path, {}, ".json")
    try:
        held = json.loads(entry.read_text())
        if held.get("stamp") == stamp and isinstance(held.get("sha256"), str):
            check = held.get("check")
            if check is None:
                return str(held["sha256"])
            if sha256_file(path) == check and file_stamp(path) == stamp:
                if not _racy(stamp):
                    _store_digest(entry, stamp, held["sha256"], None)
                return str(held["sha256"])
    except (OSError, ValueError, AttributeError):
        pass  # absent or unreadable: hash the file
    value = digest(path)
    if file_stamp(path) == stamp:
        check = _content_check(path, stamp)
        if check != "":
            _store_digest(entry, stamp, value, check)
    return value


def _store_digest(entry: Path, stamp: Mapping[str, Any], value: str, check: str | None) -> None:
    record = {"stamp": dict(stamp), "sha256": value}
    text = json.dumps(record if check is None else {**record, "check": check})
    _store(entry, lambda tmp: tmp.write_text(text))


def _store(entry: Path, write: Callable[[Path], Any]) -> None:
    try:
        write_atomic(entry, write)
    except OSError as err:
        log.warning("could not write cache entry %s (%s); set %s to a writable folder", entry, err, CACHE_ENV)
