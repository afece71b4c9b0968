"""Turn a dataset config into a pandas frame: bundled CSVs, user files, or the synthetic generator."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from zoo.errors import ZooError

SOURCES = ("bundled", "file", "synthetic")


def load_frame(dataset: Any) -> pd.DataFrame:
    """Read the frame a dataset config describes; a missing or unreadable file is a ZooError."""
    source = dataset.get("source", "file")
    if source == "bundled":
        ref = resources.files("zoo.datasets").joinpath(dataset["file"])
        with resources.as_file(ref) as path:
            return read_table(Path(path), obtain=None)
    if source == "file":
        path = dataset.get("path")
        if path in (None, "", "???"):
            raise ZooError(
                f"dataset '{dataset.get('name')}' needs a file: pass dataset.path=/path/to/file "
                "(CSV or Parquet)"
            )
        return read_table(Path(str(path)).expanduser(), obtain=dataset.get("obtain"))
    if source == "synthetic":
        from zoo.data.synthetic import make_synthetic

        params = dict(dataset.get("params") or {})
        params["target"] = dataset["target"]
        return make_synthetic(**params)
    raise ZooError(f"dataset.source={source!r} is not one of {', '.join(SOURCES)}")


def read_table(path: Path, obtain: str | None) -> pd.DataFrame:
    """Read a CSV or Parquet file by its suffix, with one-line errors for the usual failures."""
    if not path.exists():
        hint = f" ({obtain})" if obtain else ""
        raise ZooError(f"data file {str(path)!r} does not exist{hint}")
    if path.is_dir():
        raise ZooError(f"data file {str(path)!r} is a directory, expected a CSV or Parquet file")
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
        elif suffixes.endswith((".csv", ".csv.gz", ".csv.zip", ".csv.bz2", ".txt")):
            frame = pd.read_csv(path, low_memory=False)
        else:
            raise ZooError(
                f"data file {str(path)!r} has suffix {suffixes or '(none)'!r}, expected .csv or .parquet"
            )
    except ZooError:
        raise
    except pd.errors.EmptyDataError:
        raise ZooError(f"data file {str(path)!r} is empty, expected a header row and data") from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ZooError(f"data file {str(path)!r} could not be read: {first}") from None
    if frame.shape[0] == 0:
        raise ZooError(f"data file {str(path)!r} has no data rows, expected at least one")
    return frame


def describe_source(dataset: Any, frame: pd.DataFrame) -> dict[str, Any]:
    """Where the frame came from and its SHA-256: of the file read, or of the frame itself."""
    from zoo.manifest import sha256_file, sha256_frame

    source = dataset.get("source", "file")
    if source == "bundled":
        ref = resources.files("zoo.datasets").joinpath(dataset["file"])
        with resources.as_file(ref) as path:
            return {"source": source, "file": str(dataset["file"]), "sha256": sha256_file(Path(path))}
    if source == "file" and dataset.get("path") not in (None, "", "???"):
        path = Path(str(dataset["path"])).expanduser()
        return {"source": source, "file": str(path.resolve()), "sha256": sha256_file(path)}
    return {"source": source, "file": None, "sha256": sha256_frame(frame), "rows": len(frame)}
