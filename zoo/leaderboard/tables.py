"""The leaderboard's tables as cells (header, rows, alignment), rendered as Markdown or, by html.py,
as HTML: the summary, the paired comparisons, and the jobs that failed or never finished."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from zoo.errors import ZooError
from zoo.leaderboard.collect import FailedJob, UnrankedRun, is_number_or_none, model_label
from zoo.leaderboard.stats import LEVEL, Comparisons, verdict


@dataclass(frozen=True)
class Table:
    """Cells of a table; `numeric[i]` right-aligns column i."""

    header: list[str]
    rows: list[list[str]]
    numeric: list[bool]


def to_markdown(table: Table) -> str:
    lines = [_md_row(table.header), _md_row(["---:" if n else "---" for n in table.numeric])]
    lines += [_md_row(cells) for cells in table.rows]
    return "\n".join(lines) + "\n"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


# --- the summary


def summary_table(
    summary: pd.DataFrame,
    metrics: Sequence[str],
    reference: Mapping[str, Mapping[str, float | None]] | None = None,
) -> Table:
    """One row per (dataset, model): rank, runs, and per metric `mean ± std [lo, hi]` (4 decimals,
    the t-interval); reference ({model: {metric: value or None}}, a paper's figures) adds
    `paper <metric>` columns."""
    metrics = list(metrics)
    check_summary(summary, metrics)
    if reference is not None:
        _check_reference(reference)
    header = ["dataset", "rank", "model", "runs"]
    for metric in metrics:
        header.append(metric)
        if reference is not None:
            header.append(f"paper {metric}")
    rows = []
    for row in summary.to_dict("records"):
        rank = row.get("rank")
        rank_text = "" if rank is None or pd.isna(rank) else str(int(rank))
        cells = [str(row["dataset"]), rank_text, model_label(row), str(row["n_seeds"])]
        for metric in metrics:
            cells.append(_mean_std_ci(row, metric))
            if reference is not None:
                paper = (reference.get(row["model"]) or {}).get(metric)
                cells.append("" if paper is None else f"{paper:.4f}")
        rows.append(cells)
    return Table(header, rows, [False, True, False, True] + [True] * (len(header) - 4))


def format_markdown(
    summary: pd.DataFrame,
    metrics: Sequence[str],
    reference: Mapping[str, Mapping[str, float | None]] | None = None,
) -> str:
    """The summary table in Markdown (see summary_table)."""
    return to_markdown(summary_table(summary, metrics, reference))


def _mean_std_ci(row: Mapping[str, object], metric: str) -> str:
    """`0.7812 ± 0.0123 [0.7650, 0.7970]`; the mean alone with one run; `n/a` with no value."""
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    lo, hi = row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
    if _missing(mean):
        return "n/a"
    if _missing(std):
        return f"{mean:.4f}"
    text = f"{mean:.4f} ± {std:.4f}"
    if not _missing(lo) and not _missing(hi):
        text += f" [{lo:.4f}, {hi:.4f}]"
    return text


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def check_summary(summary: pd.DataFrame, metrics: Sequence[str]) -> None:
    """Raise ZooError unless summary is a summarise() table holding every metric asked for."""
    if not metrics:
        raise ZooError("expected at least one metric name, got none")
    missing = [c for c in ("dataset", "model", "n_seeds") if c not in summary.columns]
    if missing:
        raise ZooError(f"expected a summarise() table, got one without columns {missing}")
    have = [c[: -len("_mean")] for c in summary.columns if c.endswith("_mean")]
    unknown = [m for m in metrics if m not in have]
    if unknown:
        raise ZooError(
            f"unknown metric {', '.join(map(repr, unknown))} for this summary; available: {', '.join(have)}"
        )


def _check_reference(reference: object) -> None:
    """Raise ZooError unless reference is {model: {metric: number or None}}."""
    if not isinstance(reference, Mapping):
        kind = type(reference).__name__
        raise ZooError(f"expected reference as {{model: {{metric: value}}}}, got {kind}")
    for model, figures in reference.items():
        if not isinstance(figures, Mapping):
            raise ZooError(f"expected reference[{model!r}] as {{metric: value}}, got {figures!r}")
        for metric, value in figures.items():
            if not is_number_or_none(value):
                where = f"reference[{model!r}][{metric!r}]"
                raise ZooError(f"expected a number or null for {where}, got {value!r}")


# --- comparisons


def _interval(row: Mapping[str, object]) -> str:
    return f"[{row['diff_lo']:+.4f}, {row['diff_hi']:+.4f}]"


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 1e-4 else "< 1e-4"


def combined_table(comparisons: Comparisons) -> Table:
    """Per (dataset, model): AUC difference with the reference over its paired runs, and the verdict."""
    header = ["dataset", "model", "reference", "runs", "Δ AUC", f"{LEVEL:.0%} CI", "p", "combined", "verdict"]
    rows = [
        [
            str(row["dataset"]),
            str(row["model"]),
            str(row["reference"]),
            str(row["n_runs"]),
            f"{row['diff']:+.4f}",
            _interval(row),
            _p(row["p_value"]),
            str(row["combined_as"]),
            verdict(row),
        ]
        for row in comparisons.combined.to_dict("records")
    ]
    return Table(header, rows, [False, False, False, True, True, True, True, False, False])


def per_run_table(comparisons: Comparisons) -> Table:
    """One row per paired run: both AUCs on the common test rows, the difference, interval, z, p."""
    header = [
        "dataset",
        "model",
        "seed",
        "fold",
        "rows",
        "AUC",
        "ref AUC",
        "Δ AUC",
        f"{LEVEL:.0%} CI",
        "z",
        "p",
    ]
    rows = [
        [
            str(row["dataset"]),
            str(row["model"]),
            _int_text(row["seed"]),
            _int_text(row["fold"]),
            str(row["n_rows"]),
            f"{row['auc']:.4f}",
            f"{row['reference_auc']:.4f}",
            f"{row['diff']:+.4f}",
            _interval(row),
            f"{row['z']:+.2f}",
            _p(row["p_value"]),
        ]
        for row in comparisons.per_run.to_dict("records")
    ]
    return Table(header, rows, [False, False] + [True] * 9)


def _int_text(value: object) -> str:
    return "" if _missing(value) else str(int(value))  # type: ignore[call-overload]


# --- jobs


def failed_table(failed: Sequence[FailedJob]) -> Table:
    rows = [[job.job, job.type, job.error, " ".join(job.overrides)] for job in failed]
    return Table(["job", "error type", "error", "overrides"], rows, [False] * 4)


def unranked_table(unranked: Sequence[UnrankedRun], root: Path) -> Table:
    """Run directory, its state.json state ("-" for runs older than the file), and why it is not ranked."""
    rows = [[str(_relative(run.path, root)), run.state or "-", run.reason] for run in unranked]
    return Table(["run directory", "state", "reason"], rows, [False] * 3)


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:
        return path


# --- sections of a report


@dataclass(frozen=True)
class Section:
    """A part of the report: a heading (none for the opening one), paragraphs, tables, images.

    The Markdown and the HTML report render the same sections; Markdown leaves the images out.
    """

    heading: str
    paragraphs: list[str]
    tables: list[Table]
    images: list[Path]


def sections_markdown(sections: Sequence[Section]) -> str:
    parts = []
    for section in sections:
        if section.heading:
            parts.append(f"## {section.heading}\n")
        parts += [f"{text}\n" for text in section.paragraphs]
        parts += [to_markdown(table) for table in section.tables]
    return "\n".join(parts)
