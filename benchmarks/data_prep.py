"""How long data preparation takes on a large CSV: write a synthetic loan file once (1M rows,
20 categorical + 80 numeric fields by default), then time each stage of CreditDataModule.build()
and setup() from the CSV path, cold (no cache) and with the Parquet cache of the parsed frame."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv

from zoo.data.datamodule import CreditDataModule
from zoo.data.synthetic import make_synthetic

STAGES = ("read", "digest", "validate", "split", "guards", "fit", "transform", "tensors")


def write_file(path: Path, *, rows: int, n_categorical: int, n_numeric: int, missing_rate: float) -> None:
    """The synthetic frame written by pyarrow's CSV writer (pandas' to_csv takes minutes here)."""
    frame = make_synthetic(
        n_rows=rows, n_categorical=n_categorical, n_numeric=n_numeric, missing_rate=missing_rate, seed=0
    )
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.string()))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pyarrow.csv.write_csv(table, tmp)
    tmp.replace(path)


def prepare(path: Path, cache: bool) -> tuple[dict[str, float], float, float]:
    """Stage seconds, and the wall and process CPU seconds of one build() + setup() from the CSV path."""
    dataset = {
        "name": "loans",
        "source": "file",
        "path": str(path),
        "target": "default",
        "bad_value": 1,
        "crosses": "auto",
        "cache": cache,
    }
    started, cpu = time.perf_counter(), time.process_time()
    module = CreditDataModule(dataset)
    module.build()
    module.setup()
    return dict(module.timings), time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", type=Path, default=Path("/tmp/dataprep/loans_1m.csv"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--categorical", type=int, default=20)
    parser.add_argument("--numeric", type=int, default=80)
    parser.add_argument("--missing-rate", type=float, default=0.0)
    parser.add_argument("--repeat", type=int, default=1, help="cached builds to time (the best is shown)")
    args = parser.parse_args()
    if not args.file.exists():
        started = time.perf_counter()
        write_file(
            args.file,
            rows=args.rows,
            n_categorical=args.categorical,
            n_numeric=args.numeric,
            missing_rate=args.missing_rate,
        )
        print(f"wrote {args.file} in {time.perf_counter() - started:.1f} s")
    size = args.file.stat().st_size / 1e6
    print(f"{args.file}: {size:,.0f} MB, {os.cpu_count()} CPU cores, pyarrow threads {pa.cpu_count()}")
    with tempfile.TemporaryDirectory() as cache_dir:
        os.environ["CREDIT_ZOO_CACHE"] = cache_dir
        runs = {"no cache": prepare(args.file, cache=False), "cold (cache written)": prepare(args.file, True)}
        cached = [prepare(args.file, cache=True) for _ in range(max(1, args.repeat))]
        runs["cached"] = min(cached, key=lambda run: run[1])
    print("| stage | " + " | ".join(runs) + " |")
    print("|---|" + "---:|" * len(runs))
    for stage in STAGES:
        seconds = [f"{timings.get(stage, 0.0):.2f}" for timings, _, _ in runs.values()]
        print(f"| {stage} | " + " | ".join(seconds) + " |")
    print("| **total** | " + " | ".join(f"**{total:.2f}**" for _, total, _ in runs.values()) + " |")
    print("| process CPU s | " + " | ".join(f"{cpu:.2f}" for _, _, cpu in runs.values()) + " |")


if __name__ == "__main__":
    main()
