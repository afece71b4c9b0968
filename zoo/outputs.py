"""Writing run artifacts atomically, so a crash never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# The files of a run directory that other commands read back.
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.parquet"
PREPROCESSING_FILE = "preprocessing.json"
CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = "checkpoints/best.ckpt"
CALIBRATION_FILE = "calibration.json"
RELIABILITY_FILE = "reliability.csv"
#: In a tuning trial's directory with sweep.objective_folds: each fold's optimised metric and their mean.
OBJECTIVE_FILE = "objective.json"
#: In a multirun's sweep directory: one JSON record per failed job (written by zoo-train).
FAILURES_DIR = "failures"


def write_atomic(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp makes the file owner-only; give it the mode a plain open() would have
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(path: Path, data: dict[str, Any]) -> Path:
    text = json.dumps(_jsonable(data), indent=2, sort_keys=False)
    return write_atomic(path, lambda tmp: tmp.write_text(text + "\n"))


def write_text(path: Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    return write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))


def discard_run_dir(run_dir: Path, before: set[str], framework: set[str] | None = None) -> None:
    """Remove what a failed run wrote into `run_dir`: the entries not in `before`.

    The directory itself goes only when nothing but `framework` entries (Hydra's own `.hydra/`
    and job log) is left, so a run pointed at a directory that holds other files never loses them.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    for entry in run_dir.iterdir():
        if entry.name in before:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    if {entry.name for entry in run_dir.iterdir()} <= (framework or set()):
        shutil.rmtree(run_dir, ignore_errors=True)
