"""`zoo ensemble SWEEP_DIR`: build one ensemble run per dataset and split of a multirun."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import NoReturn

from zoo.errors import ZooError


class _ArgumentParser(argparse.ArgumentParser):
    """Raises on bad arguments instead of exiting, so main reports one line and returns 2."""

    def error(self, message: str) -> NoReturn:
        raise ZooError(message)


def report(built: list) -> list[str]:
    """Per ensemble: its members and weights, test AUC and Brier beside the best single run's."""
    lines = []
    for item in built:
        result, best = item.result, item.best_member
        lines.append(
            f"{item.group.name}: {result['model']} of {result['ensemble']['members']}/"
            f"{result['ensemble']['candidates']} runs, test AUC {result['test']['auc']:.4f} Brier "
            f"{result['test']['brier']:.4f} (best single on validation, {best.model}: AUC "
            f"{best.metrics['test']['auc']:.4f} Brier {best.metrics['test']['brier']:.4f})"
        )
        lines.append(f"  run directory: {item.run_dir}")
    return lines


def main(argv: list[str] | None = None) -> int:
    from zoo.ensemble.build import EnsembleSettings, build_ensembles
    from zoo.ensemble.select import METHODS, SELECTION_METRICS

    parser = _ArgumentParser(
        prog="zoo ensemble",
        description="Build an ensemble per dataset and split of a multirun, fitted on validation rows.",
    )
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory of zoo-train runs")
    parser.add_argument("--models", help="comma-separated models to ensemble (default: every model)")
    parser.add_argument("--method", choices=METHODS, default="greedy")
    defaults = EnsembleSettings()
    parser.add_argument(
        "--size", type=int, default=defaults.size, help=f"greedy selection steps (default {defaults.size})"
    )
    parser.add_argument(
        "--metric", choices=SELECTION_METRICS, default=defaults.metric, help="greedy's metric"
    )
    parser.add_argument(
        "--bags",
        type=int,
        default=defaults.bags,
        help=f"greedy runs on bootstrap replicates of the validation rows, averaged (default "
        f"{defaults.bags}; 1: one run on every row)",
    )
    parser.add_argument(
        "--c",
        type=float,
        default=defaults.c,
        help=f"the stack's inverse L2 strength (scikit-learn's C; default {defaults.c:g})",
    )
    parser.add_argument("--calibration", choices=("platt", "isotonic"), help="fitted on validation rows")
    parser.add_argument(
        "--out", type=Path, help="where the ensemble runs go (default SWEEP_DIR/ensembles, or -2, -3...)"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            args = parser.parse_args(argv)
            models = tuple(m.strip() for m in args.models.split(",") if m.strip()) if args.models else None
            settings = EnsembleSettings(
                method=args.method,
                size=args.size,
                metric=args.metric,
                bags=args.bags,
                c=args.c,
                calibration=args.calibration,
                models=models,
            )
            built = build_ensembles(args.sweep_dir, settings, args.out)
        except SystemExit as exit_:  # --help
            return int(exit_.code or 0)
        except (ZooError, OSError) as err:
            _print_warnings(caught)
            print(f"error: {err}", file=sys.stderr)
            return 2
    _print_warnings(caught)
    for line in report(built):
        print(line)
    return 0


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
