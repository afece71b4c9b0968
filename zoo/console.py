"""What `zoo-train` prints when a run ends: its metrics table, or a fold objective's values."""

from __future__ import annotations

from typing import Any


def _cell(value: Any) -> str:
    """A metric right-aligned in 8 characters; a metric that cannot be computed (null) as n/a."""
    return f"{'n/a':>8}" if value is None else f"{value:>8.4f}"


def format_table(result: dict[str, Any]) -> str:
    """Validation and test metrics side by side, for the terminal."""
    names = list(result["test"])
    width = max(len("metric"), *map(len, names))  # a model's own figures have longer names (rule_coverage)
    lines = [
        f"{result['model']} on {result['dataset']} (seed {result['seed']}, "
        f"threshold {result['threshold']:.3f} {result['threshold_method']})",
        f"{'metric':<{width}} {'val':>8} {'test':>8}",
    ]
    for name in names:
        val, test = result["val"][name], result["test"][name]
        lines.append(f"{name:<{width}} {_cell(val)} {_cell(test)}")
    return "\n".join(lines)


def format_folds(record: dict[str, Any]) -> str:
    """Each fold's optimised metric and their mean, for the terminal."""
    values = ", ".join(f"{v:.4f}" for v in record["values"])
    mean = "pruned" if record["mean"] is None else f"{record['mean']:.4f}"
    return f"{record['metric']} over {record['folds']} folds: {values}; mean {mean}"
