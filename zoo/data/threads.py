"""Per-column work of data preparation spread over the CPU cores: numpy, pandas and pyarrow release
the GIL in their heavy loops (sorting, searching, hashing, factorising, arithmetic on whole
columns), so threads give a large file's columns to every core without copying any data."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from zoo.errors import ZooError

T = TypeVar("T")
R = TypeVar("R")

#: The environment variable that sets the number of threads (1 keeps preparation on one).
THREADS_ENV = "CREDIT_ZOO_DATA_THREADS"
#: Below this many rows a column takes well under a millisecond: threads would only add overhead.
PARALLEL_ROWS = 50_000


def cpu_workers() -> int:
    """Cores this process may run on; THREADS_ENV overrides (1 keeps one thread)."""
    given = os.environ.get(THREADS_ENV, "").strip()
    if given:
        if not given.isdigit() or int(given) < 1:
            raise ZooError(f"{THREADS_ENV}={given!r}, expected a whole number of threads, 1 or more")
        return int(given)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def map_columns(fn: Callable[[T], R], items: Iterable[T], *, rows: int) -> list[R]:
    """`[fn(item) for item in items]`, in order, on several threads when each item covers
    `rows` rows (at least PARALLEL_ROWS) and the machine has more than one core."""
    items = list(items)
    workers = min(cpu_workers(), len(items))
    if workers < 2 or rows < PARALLEL_ROWS:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zoo-data") as pool:
        return list(pool.map(fn, items))
