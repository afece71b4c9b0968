"""The reference rows of a run: a seeded sample of its training rows (model arrays, no labels),
saved with the run so scoring can explain applicants against the training distribution."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from zoo.explain.fields import Arrays, n_rows
from zoo.outputs import write_atomic

REFERENCE_FILE = "explain_reference.npz"
#: Training rows kept: every row of a small set, a seeded sample of a large one.
REFERENCE_ROWS = 1000
_KEYS = ("x_cat", "x_num", "x_cross", "x_raw")


def sample_reference(train: Arrays, *, rows: int = REFERENCE_ROWS, seed: int = 0) -> Arrays:
    """Up to `rows` training rows, drawn without replacement in a seeded random order."""
    total = n_rows(train)
    order = np.random.default_rng(seed).permutation(total)[: min(rows, total)]
    return {k: np.ascontiguousarray(train[k][order]) for k in _KEYS if k in train}


def write_reference(run_dir: Path, reference: Arrays) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, allow_pickle=False, **reference)  # numeric arrays only

    return write_atomic(Path(run_dir) / REFERENCE_FILE, write)


def read_reference(run_dir: Path, manifest: dict[str, Any] | None = None) -> Arrays:
    """The run's reference rows, checked against its manifest first."""
    from zoo.manifest import verify

    path = verify(Path(run_dir), REFERENCE_FILE, manifest)
    with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
