"""Leaderboard of finished runs: collect a multirun directory's metrics.json files and test
predictions, summarise over seeds and folds, compare models with DeLong's test, and write
Markdown, CSV, PNG and a self-contained HTML report.

collect (runs, predictions, failed and incomplete jobs) → stats (mean, std, t-interval, rank,
paired comparisons) → tables (Markdown) / charts (PNG) / html → write (every file) → cli.
"""

from zoo.leaderboard.charts import (
    ks_curve,
    plot_ks,
    plot_points,
    plot_reliability_curves,
    plot_roc,
    plot_tradeoff,
)
from zoo.leaderboard.cli import main
from zoo.leaderboard.collect import (
    REPLICATE_KEYS,
    SPLITS,
    FailedJob,
    collect_runs,
    failed_jobs,
    incomplete_jobs,
    model_label,
)
from zoo.leaderboard.stats import (
    LOWER_IS_BETTER,
    Comparisons,
    available_metrics,
    compare,
    describe_replicates,
    summarise,
)
from zoo.leaderboard.tables import format_markdown
from zoo.leaderboard.write import DEFAULT_METRICS, Leaderboard, write_leaderboard

__all__ = [
    "DEFAULT_METRICS",
    "LOWER_IS_BETTER",
    "REPLICATE_KEYS",
    "SPLITS",
    "Comparisons",
    "FailedJob",
    "Leaderboard",
    "available_metrics",
    "collect_runs",
    "compare",
    "describe_replicates",
    "failed_jobs",
    "format_markdown",
    "incomplete_jobs",
    "ks_curve",
    "main",
    "model_label",
    "plot_points",
    "plot_ks",
    "plot_reliability_curves",
    "plot_roc",
    "plot_tradeoff",
    "summarise",
    "write_leaderboard",
]
