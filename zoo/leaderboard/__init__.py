"""Leaderboard of finished runs: collect a multirun directory's metrics.json files and test
predictions, summarise over seeds and folds, compare models with DeLong's test, and write
Markdown, CSV, PNG and a self-contained HTML report.

collect (sealed runs, predictions, failed jobs, runs not sealed) → stats (mean, std, t-interval, rank,
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
    UnrankedRun,
    collect_runs,
    failed_jobs,
    model_label,
    unranked_runs,
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
    "UnrankedRun",
    "available_metrics",
    "collect_runs",
    "compare",
    "describe_replicates",
    "failed_jobs",
    "format_markdown",
    "ks_curve",
    "main",
    "model_label",
    "plot_points",
    "plot_ks",
    "plot_reliability_curves",
    "plot_roc",
    "plot_tradeoff",
    "summarise",
    "unranked_runs",
    "write_leaderboard",
]
