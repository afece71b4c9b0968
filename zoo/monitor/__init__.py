"""`zoo monitor RUN_DIR NEW_FILE`: population stability of a sealed run on a new file — the PSI of
the score, the CSI of every input field and, when the file holds the target, the run's performance
on it — as monitor.md, monitor.json and monitor.html (docs/monitoring.md)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from zoo.errors import ZooError
from zoo.monitor.compare import Monitoring, Stability, monitor_file
from zoo.monitor.psi import ACTION_ABOVE, psi, status
from zoo.monitor.reference import REFERENCE_FILE, write_reference
from zoo.monitor.report import number_text, write_report
from zoo.predict import CHUNK_ROWS

__all__ = [
    "REFERENCE_FILE",
    "Monitoring",
    "Stability",
    "main",
    "monitor_file",
    "psi",
    "status",
    "write_reference",
    "write_report",
]

#: The exit code when a PSI exceeds --fail-above (2 is bad input).
EXIT_UNSTABLE = 3


def _fail_above(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ZooError(f"--fail-above={text!r}, expected a number such as {ACTION_ABOVE}") from None
    if not math.isfinite(value) or value < 0:
        raise ZooError(f"--fail-above={text!r}, expected a finite number >= 0 such as {ACTION_ABOVE}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="zoo monitor", description="Population stability (PSI, CSI) of a finished run on a new file."
    )
    parser.add_argument("run_dir", type=Path, help="a run directory written by zoo-train")
    parser.add_argument("file", type=Path, help="CSV or Parquet file with the training columns")
    parser.add_argument("--out", type=Path, default=Path("monitor"), help="directory of the report")
    parser.add_argument(
        "--fail-above",
        metavar="X",
        default=None,
        help=f"exit {EXIT_UNSTABLE} when the score's PSI or a field's CSI exceeds X (e.g. {ACTION_ABOVE})",
    )
    parser.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS, help="rows scored at a time")
    args = parser.parse_args(argv)
    try:
        limit = _fail_above(args.fail_above)
        if args.chunk_rows < 1:
            raise ZooError(f"--chunk-rows={args.chunk_rows}, expected a positive integer")
        found = monitor_file(args.run_dir, args.file, chunk_rows=args.chunk_rows)
        report = write_report(found, args.out, fail_above=limit)
    except ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    ref = found.reference
    print(f"monitored {found.rows} rows against the run's {ref.population} ({ref.rows} rows)")
    print(f"score PSI {found.score.psi:.4f} ({found.score.status})")
    if found.fields is None:
        print(f"no field CSI: the run has no {REFERENCE_FILE}; train it again to get one")
    else:
        for band in ("action", "watch"):
            names = [f"{s.name} {s.psi:.3f}" for s in found.fields if s.status == band]
            if names:
                print(f"fields at {band}: {', '.join(names)}")
    if found.performance is not None:
        perf = found.performance
        auc, test_auc = number_text(perf.new["auc"]), number_text(perf.test["auc"])
        print(f"on {perf.rows} labelled rows: AUC {auc} (test split {test_auc})")
    print(f"report: {report.paths['md']}, {report.paths['json'].name}, {report.paths['html'].name}")
    if limit is not None:
        over = found.over(limit)
        if over:
            listed = ", ".join(f"{s.name} ({s.psi:.4f})" for s in over)
            print(f"PSI above --fail-above {limit}: {listed}", file=sys.stderr)
            return EXIT_UNSTABLE
    return 0
