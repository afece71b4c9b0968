"""`zoo leaderboard <multirun dir>`: the command line of write_leaderboard."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from zoo.errors import ZooError
from zoo.leaderboard.write import write_leaderboard


class _ArgumentParser(argparse.ArgumentParser):
    """Raises on bad arguments instead of exiting, so main reports one line and returns 2."""

    def error(self, message: str) -> NoReturn:
        raise ZooError(message)


def _parse_metrics(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated metric names, got {text!r}")
    return names


def main(argv: list[str] | None = None) -> int:
    """Print the table and the paths written; 2 on a user error."""
    parser = _ArgumentParser(
        prog="zoo leaderboard", description="Summarise a multirun directory into a leaderboard."
    )
    parser.add_argument("root", type=Path, help="directory of run dirs (metrics.json, any depth)")
    parser.add_argument(
        "--metrics", type=_parse_metrics, help="comma-separated, e.g. auc,precision,recall,f1"
    )
    parser.add_argument("--split", default="test", help="split whose metrics to rank (default: test)")
    parser.add_argument("--out", type=Path, help="directory to write to (default: the runs dir)")
    parser.add_argument(
        "--reference",
        metavar="MODEL",
        help="model the others are compared with (default: each dataset's best by validation AUC)",
    )
    parser.add_argument(
        "--min-air",
        type=float,
        metavar="X",
        help="rank within a fairness constraint: the best AUC among models whose worst adverse impact "
        "ratio is >= X (e.g. 0.8) on every protected attribute (runs trained with dataset.protected)",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    except ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            board = write_leaderboard(
                args.root,
                args.metrics,
                args.split,
                args.out,
                reference_model=args.reference,
                min_air=args.min_air,
            )
        except (ZooError, OSError) as err:
            _print_warnings(caught)
            print(f"error: {err}", file=sys.stderr)
            return 2
    _print_warnings(caught)
    print(board.markdown)
    for path in board.paths.values():
        print(f"wrote {path}")
    return 0


def _print_warnings(caught: Sequence[warnings.WarningMessage]) -> None:
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
