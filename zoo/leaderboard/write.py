"""write_leaderboard: collect a sweep, summarise and compare its runs, and write every output file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from zoo.errors import ZooError
from zoo.leaderboard import charts, fairness, tables
from zoo.leaderboard.collect import (
    FailedJob,
    TestPredictions,
    UnrankedRun,
    check_metric_list,
    from_runs,
    model_label,
    read_sweep,
    runs_frame,
)
from zoo.leaderboard.html import render_html
from zoo.leaderboard.stats import LEVEL, Comparisons, compare, describe_replicates, summarise
from zoo.leaderboard.tables import Section
from zoo.outputs import write_csv, write_text

DEFAULT_METRICS = ["auc", "ks", "f1", "brier"]
TOP_MODELS = 5
"""How many of a dataset's best models the ROC and reliability pictures overlay."""


@dataclass(frozen=True)
class Leaderboard:
    """What write_leaderboard produced: Markdown text, per-(dataset, model) summary, comparisons, files."""

    markdown: str
    summary: pd.DataFrame
    paths: dict[str, Path]
    comparisons: Comparisons | None = None


def write_leaderboard(
    root: Path,
    metrics: Sequence[str] | None = None,
    split: str = "test",
    out_dir: Path | None = None,
    reference: Mapping[str, Mapping[str, float | None]] | None = None,
    reference_model: str | None = None,
    min_air: float | None = None,
) -> Leaderboard:
    """Collect runs under root; write leaderboard.md, .csv, .png, .html (and the comparisons' csv and
    the per-dataset curves when runs saved test predictions) atomically into out_dir (or root).

    metrics default to the runs' `experiment_metrics`, else DEFAULT_METRICS; reference (a paper's
    figures) to their `reference` mapping. reference_model names the model every other is compared
    with (default: each dataset's best by mean validation AUC, so the reference is not chosen on the
    test split it is compared on). Each of the runs' `experiment_charts` metrics also
    gets a chart of its own, leaderboard_<metric>.png; `experiment_tradeoff: [x, y]` adds
    leaderboard_<y>_vs_<x>.png. Runs trained with dataset.protected add fairness columns (worst
    AIR and equalised-odds gap per attribute); min_air ranks within AIR >= min_air on every one.
    """
    root = Path(root)
    sweep = read_sweep(root)
    runs = sweep.runs
    frame = runs_frame(runs)
    if metrics is None:
        from_exp = from_runs(runs, "experiment_metrics", check_metric_list)
        metrics = cast(list[str], from_exp) if from_exp is not None else DEFAULT_METRICS
    if reference is None:
        reference = cast(dict | None, from_runs(runs, "reference", tables._check_reference))
    summary = summarise(frame, metrics, split)
    attributes = fairness.add_fairness_columns(summary, frame, runs)
    if min_air is not None:
        summary = fairness.rank_within(summary, runs, attributes, min_air)
    predictions = TestPredictions()
    comparisons = compare(frame, summary, predictions, reference_model)
    tradeoff = cast(list[str] | None, from_runs(runs, "experiment_tradeoff", check_metric_list))
    if tradeoff and len(tradeoff) != 2:
        raise ZooError(f"experiment_tradeoff {tradeoff} names {len(tradeoff)} metrics, expected [x, y]")

    out_dir = root if out_dir is None else Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / f"leaderboard.{kind}" for kind in ("md", "csv", "png")}
    images = [charts.plot_points(summary, metrics, paths["png"])]
    for metric in cast(list[str], from_runs(runs, "experiment_charts", check_metric_list) or []):
        chart = summary if metric in metrics else summarise(frame, [metric], split)
        paths[f"png_{metric}"] = charts.plot_points(chart, [metric], out_dir / f"leaderboard_{metric}.png")
        images.append(paths[f"png_{metric}"])
    if tradeoff:
        x, y = tradeoff
        chart = summarise(frame, [y, x], split)
        paths[f"png_{y}_vs_{x}"] = charts.plot_tradeoff(chart, x, y, out_dir / f"leaderboard_{y}_vs_{x}.png")
        images.append(paths[f"png_{y}_vs_{x}"])
    curves = _write_curves(frame, summary, predictions, out_dir)
    paths.update(curves)
    if not comparisons.per_run.empty:
        paths["comparisons_csv"] = out_dir / "leaderboard_comparisons.csv"
        write_csv(paths["comparisons_csv"], _comparisons_frame(comparisons))

    intro = (
        f"Leaderboard: {split} split, mean ± sample std [{LEVEL:.0%} t-interval] over"
        f" {describe_replicates(frame)}; rank by mean {split} AUC within each dataset."
    )
    if min_air is not None:
        intro += " " + fairness.constraint_text(summary, min_air)
    elif attributes:
        intro += (
            " Fairness (test split, run's threshold; docs/fairness.md): worst adverse impact ratio per"
            f" protected attribute (⚠ below {fairness.FOUR_FIFTHS:g}) and equalised-odds gap, mean over runs."
        )
    table = fairness.extend_table(
        tables.summary_table(summary, metrics, reference), summary, attributes, min_air
    )
    sections = [Section("", [intro], [table], [])]
    sections += _comparison_sections(comparisons)
    sections += _job_sections(sweep.failed, sweep.unranked, root)
    markdown = tables.sections_markdown(sections)
    write_text(paths["md"], markdown)
    write_csv(paths["csv"], summary)
    sections[0] = Section("", [intro], sections[0].tables, images)
    if curves:
        sections.append(Section("Curves", [_CURVES_TEXT], [], list(curves.values())))
    paths["html"] = out_dir / "leaderboard.html"
    page = render_html(f"Leaderboard of {root.name}", sections)
    write_text(paths["html"], page)
    return Leaderboard(markdown=markdown, summary=summary, paths=paths, comparisons=comparisons)


_CURVES_TEXT = (
    "Per dataset, from the test predictions pooled over each model's runs (every run scores its own"
    f" test rows): ROC and reliability curves of the {TOP_MODELS} best models by AUC, and the KS curve"
    " of the best."
)


def _comparisons_frame(comparisons: Comparisons) -> pd.DataFrame:
    """The per-run rows, then the combined ones (seed and fold `all`), for leaderboard_comparisons.csv."""
    combined = comparisons.combined.assign(seed="all", fold="all")
    return pd.concat([comparisons.per_run.assign(n_runs=1), combined], ignore_index=True)


def _comparison_sections(comparisons: Comparisons) -> list[Section]:
    if comparisons.per_run.empty:
        return []
    refs = "; ".join(
        f"{d}: {label}, {comparisons.chosen_by[d]}" if d in comparisons.chosen_by else f"{d}: {label}"
        for d, label in comparisons.references.items()
    )
    text = (
        f"Each model against its dataset's reference ({refs}) with DeLong's test on the test rows both"
        " runs scored (runs paired by seed and fold, predictions joined on row). Δ AUC = model −"
        f" reference. Combined over a model's runs: z = mean Δ / se, {LEVEL:.0%} interval mean Δ ± 1.96 ·"
        " se. Runs with disjoint test rows (the folds of one split) are independent: se = sqrt(Σ se²) /"
        " runs. Runs that share test rows (seeds that re-split the data) use se = mean se, which holds"
        " whatever the overlap but is conservative."
    )
    return [
        Section("Paired comparisons (DeLong, test split)", [text], [tables.combined_table(comparisons)], []),
        Section("Paired comparisons per run", [], [tables.per_run_table(comparisons)], []),
    ]


def _job_sections(failed: Sequence[FailedJob], unranked: Sequence[UnrankedRun], root: Path) -> list[Section]:
    sections = []
    if failed:
        text = f"{_jobs(len(failed))} failed (from failures/<job>.json); not in the table."
        sections.append(Section("Failed jobs", [text], [tables.failed_table(failed)], []))
    if unranked:
        text = (
            f"{_runs(len(unranked))} not in the table: no manifest that verifies seals them"
            " (unfinished: killed, interrupted or still running; or changed after they finished)."
        )
        sections.append(Section("Runs not ranked", [text], [tables.unranked_table(unranked, root)], []))
    return sections


def _runs(n: int) -> str:
    return "1 run" if n == 1 else f"{n} runs"


def _jobs(n: int) -> str:
    return "1 job" if n == 1 else f"{n} jobs"


def _write_curves(
    frame: pd.DataFrame, summary: pd.DataFrame, predictions: TestPredictions, out_dir: Path
) -> dict[str, Path]:
    """Per dataset: leaderboard_roc_<dataset>.png and _reliability_ of the top models, _ks_ of the best."""
    frame = frame.assign(
        variant=frame["variant"].fillna(""), label=[model_label(r) for r in frame.to_dict("records")]
    )
    paths: dict[str, Path] = {}
    for dataset, rows in summary.dropna(subset=["rank"]).groupby("dataset", sort=True):
        scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for row in rows.to_dict("records"):
            pooled = _pooled(frame, str(dataset), model_label(row), predictions)
            if pooled is not None:
                scores[model_label(row)] = pooled
            if len(scores) == TOP_MODELS:
                break
        if not scores:
            continue
        name = _file_part(str(dataset))
        best, (y, prob) = next(iter(scores.items()))
        paths[f"roc_{dataset}"] = charts.plot_roc(
            scores,
            out_dir / f"leaderboard_roc_{name}.png",
            title=f"ROC on {dataset} (test, pooled over runs)",
        )
        paths[f"reliability_{dataset}"] = charts.plot_reliability_curves(
            scores, out_dir / f"leaderboard_reliability_{name}.png", title=f"Reliability on {dataset} (test)"
        )
        paths[f"ks_{dataset}"] = charts.plot_ks(
            best, y, prob, out_dir / f"leaderboard_ks_{name}.png", title=f"KS of {best} on {dataset} (test)"
        )
    return paths


def _pooled(
    frame: pd.DataFrame, dataset: str, label: str, predictions: TestPredictions
) -> tuple[np.ndarray, np.ndarray] | None:
    """The test labels and probabilities of every run of (dataset, label), concatenated."""
    parts = [
        predictions.get(d)
        for d in frame.loc[(frame["dataset"] == dataset) & (frame["label"] == label), "run_dir"]
    ]
    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        return None
    both = pd.concat(parts, ignore_index=True)
    if both["label"].nunique() < 2:
        return None
    return both["label"].to_numpy(), both["prob"].to_numpy(dtype=float)


def _file_part(text: str) -> str:
    """A dataset name made safe for a file name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
