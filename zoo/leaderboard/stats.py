"""Statistics of a leaderboard: mean, std and t-interval per metric over seeds and folds, the rank by
AUC, and paired DeLong comparisons of each model with a reference model on the same test rows (the
reference chosen on validation AUC, never on the test split it is compared on)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from zoo.errors import ZooError
from zoo.leaderboard.collect import SPLITS, TestPredictions, model_label
from zoo.stats import _normal_test, delong_test, mean_ci

LOWER_IS_BETTER = frozenset({"brier", "logloss", "ece"})
"""Metrics where smaller is better: they sort ascending and their panels say so."""
RANK_METRIC = "auc"
"""Rows rank by this metric of the summarised split (by the first metric when runs lack it)."""
LEVEL = 0.95
"""Confidence level of every interval and the significance threshold (1 - LEVEL) of the verdicts."""
REFERENCE_SPLIT = "val"
"""The default DeLong reference is the model with the best mean AUC on this split: choosing it on the
test split would compare every model with the test set's own winner (a selection on test)."""


def available_metrics(runs: pd.DataFrame, split: str = "test") -> list[str]:
    """Metric names recorded for split in a collect_runs frame (e.g. ['accuracy', 'auc', ...])."""
    prefix = f"{split}/"
    return sorted(c[len(prefix) :] for c in runs.columns if c.startswith(prefix))


def _with_keys(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs.copy()
    if "variant" not in runs.columns:
        runs["variant"] = ""
    if "fold" not in runs.columns:
        runs["fold"] = None
    runs["variant"] = runs["variant"].fillna("")
    return runs


def summarise(runs: pd.DataFrame, metrics: Sequence[str], split: str = "test") -> pd.DataFrame:
    """Per (dataset, model, variant): n_seeds (runs: seeds × folds), rank, and each metric's mean,
    sample std (ddof=1) and Student-t interval (`<metric>_lo`, `_hi`, level LEVEL) over the runs.

    One run gives std and bounds NaN (undefined), not 0. Within a dataset, rank 1 has the best mean
    AUC of the split (RANK_METRIC; the first metric when runs lack it; ties share a rank). Rows sort
    by dataset, then rank.
    """
    metrics = _check_metrics(runs, metrics, split)
    runs = _with_keys(runs)
    keys = ["dataset", "model", "variant", "seed", "fold"]
    dupes = runs[runs["seed"].notna()].duplicated(keys)
    if dupes.any():
        warnings.warn(
            f"{int(dupes.sum())} runs repeat a (dataset, model, variant, seed, fold) already seen;"
            " each counts towards n_seeds",
            RuntimeWarning,
            stacklevel=2,
        )
    groups = runs.groupby(["dataset", "model", "variant"], sort=True)
    summary = groups.size().rename("n_seeds").to_frame()
    rank_metric = RANK_METRIC if f"{split}/{RANK_METRIC}" in runs.columns else metrics[0]
    rank_by = groups[f"{split}/{rank_metric}"].mean()
    for metric in metrics:
        values = groups[f"{split}/{metric}"]
        summary[f"{metric}_mean"] = values.mean()
        summary[f"{metric}_std"] = values.std(ddof=1)
        bounds = values.apply(lambda v: mean_ci(v.to_numpy(dtype=float), LEVEL)[1:])
        summary[f"{metric}_lo"] = [lo for lo, _ in bounds]
        summary[f"{metric}_hi"] = [hi for _, hi in bounds]
    ascending = rank_metric in LOWER_IS_BETTER
    summary.insert(1, "rank", rank_by.groupby(level="dataset").rank(method="min", ascending=ascending))
    summary = summary.reset_index().sort_values(
        ["dataset", "rank", "model", "variant"], na_position="last", kind="stable"
    )
    summary["rank"] = summary["rank"].astype("Int64")  # NaN when a model's runs lack the metric
    return summary.reset_index(drop=True)


def _check_metrics(runs: pd.DataFrame, metrics: Sequence[str], split: str) -> list[str]:
    """Return metrics as a list, or raise ZooError naming a bad name and the available ones."""
    if isinstance(metrics, str):
        raise ZooError(f"expected a list of metric names, got the string {metrics!r}")
    metrics = list(metrics)
    if not metrics:
        raise ZooError("expected at least one metric name, got none")
    if runs.empty:
        raise ZooError("expected at least one run to summarise, got an empty table")
    available = available_metrics(runs, split)
    if not available:
        splits = [s for s in SPLITS if available_metrics(runs, s)]
        raise ZooError(f"unknown split {split!r}; available: {', '.join(splits) or 'none'}")
    unknown = [m for m in metrics if m not in available]
    if unknown:
        raise ZooError(
            f"unknown metric {', '.join(map(repr, unknown))} for split {split!r};"
            f" available: {', '.join(available)}"
        )
    if len(set(metrics)) != len(metrics):
        raise ZooError(f"expected distinct metric names, got {metrics}")
    return metrics


def describe_replicates(runs: pd.DataFrame) -> str:
    """What the runs of one row repeat over: `3 seeds`, `5 folds`, `2 seeds × 5 folds` (the most any
    row has; `up to` when rows differ)."""
    runs = _with_keys(runs)
    groups = runs.groupby(["dataset", "model", "variant"], sort=True)
    seeds = groups["seed"].nunique(dropna=True)
    folds = groups["fold"].nunique(dropna=True)

    def count(n: int, word: str) -> str:
        return f"{n} {word}" if n == 1 else f"{n} {word}s"

    parts = []
    if folds.max() > 1:
        if seeds.max() > 1:
            parts.append(count(int(seeds.max()), "seed"))
        parts.append(count(int(folds.max()), "fold"))
    else:
        parts.append(count(max(int(seeds.max()), 1), "seed"))
    text = " × ".join(parts)
    uneven = seeds.nunique() > 1 or folds.nunique() > 1
    return f"up to {text}" if uneven else text


# --- paired comparisons


@dataclass(frozen=True)
class Comparisons:
    """DeLong comparisons with each dataset's reference model: one row per paired run, and one row
    per (dataset, model) combining them; `references` maps dataset to the reference's label, and
    `chosen_by` dataset to how it was chosen, in words (e.g. `best mean validation AUC`)."""

    per_run: pd.DataFrame
    combined: pd.DataFrame
    references: dict[str, str]
    chosen_by: dict[str, str] = field(default_factory=dict)


PER_RUN_COLUMNS = ["dataset", "model", "reference", "seed", "fold", "n_rows", "auc", "reference_auc"]
PER_RUN_COLUMNS += ["diff", "diff_lo", "diff_hi", "se", "z", "p_value"]
COMBINED_COLUMNS = ["dataset", "model", "reference", "n_runs", "diff", "diff_lo", "diff_hi", "z", "p_value"]
COMBINED_COLUMNS += ["combined_as"]


def compare(
    runs: pd.DataFrame,
    summary: pd.DataFrame,
    predictions: TestPredictions,
    reference: str | None = None,
) -> Comparisons:
    """Each model against its dataset's reference model, run by run, on the test rows the two share.

    The reference is the model with the best mean validation AUC (REFERENCE_SPLIT) in its dataset,
    or, when `reference` names a model or label, the best of its rows by the same rule; a dataset
    whose runs record no validation AUC falls back to the summary's rank (said in `chosen_by`).

    Runs pair by dataset, seed and fold; their test predictions join on `row`; DeLong's test gives
    the AUC difference (model - reference), its interval, z and p. The runs of a pair combine as
    z = mean(diff) / se, interval mean(diff) ± z_crit·se. When no test row is in two of the runs
    (the folds of one k-fold split) the differences are independent and se = sqrt(sum se_i^2) / k,
    the sd of their mean. Otherwise (seeds that re-split one data set share rows) se = mean(se_i),
    which bounds the sd of a mean whatever the overlap. `combined_as` says which.
    """
    runs = _with_keys(runs)
    summary = summary.assign(label=[model_label(row) for row in summary.to_dict("records")])
    runs = runs.assign(label=[model_label(row) for row in runs.to_dict("records")])
    references, chosen_by = _references(runs, summary, reference)
    rows = []
    test_rows: dict[tuple[str, str], list[np.ndarray]] = {}
    for dataset, ref_label in references.items():
        in_dataset = runs[runs["dataset"] == dataset]
        ref_runs = _by_replicate(in_dataset[in_dataset["label"] == ref_label])
        for label in summary.loc[summary["dataset"] == dataset, "label"]:
            if label == ref_label:
                continue
            for key, run in _by_replicate(in_dataset[in_dataset["label"] == label]).items():
                if key not in ref_runs:
                    continue
                result = paired_test(run["run_dir"], ref_runs[key]["run_dir"], predictions)
                if result is not None:
                    test_rows.setdefault((dataset, label), []).append(result.pop("rows"))
                    rows.append({"dataset": dataset, "model": label, "reference": ref_label, **result})
                    rows[-1].update(seed=run["seed"], fold=run["fold"])
    missing = len(predictions.missing)
    if missing:
        warnings.warn(
            f"{missing} runs have no predictions.parquet: they are left out of the paired comparisons"
            " and the curves",
            RuntimeWarning,
            stacklevel=2,
        )
    per_run = pd.DataFrame(rows, columns=PER_RUN_COLUMNS)
    disjoint = {key: disjoint_rows(arrays) for key, arrays in test_rows.items()}
    combined = _combine(per_run, summary, disjoint)
    return Comparisons(per_run=per_run, combined=combined, references=references, chosen_by=chosen_by)


def _references(
    runs: pd.DataFrame, summary: pd.DataFrame, reference: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """({dataset: label of its reference row}, {dataset: how it was chosen}); candidates are every
    single model's row (not an ensemble's), or the rows of a named reference (which must exist on
    some dataset); the best mean validation AUC wins, ties and datasets without validation AUC going
    by the summary's rank."""
    if reference is not None:
        candidates = summary[(summary["model"] == reference) | (summary["label"] == reference)]
        if candidates.empty:
            names = ", ".join(sorted(set(summary["label"])))
            raise ZooError(f"unknown reference model {reference!r}; models: {names}")
    else:  # ensembles (zoo/ensemble/) are fitted on validation rows: compared, never the reference
        candidates = summary[~summary["model"].astype(str).str.startswith("ensemble_")]
    candidates = candidates.dropna(subset=["rank"])
    column = f"{REFERENCE_SPLIT}/{RANK_METRIC}"
    if column in runs.columns:
        val_auc = runs.groupby(["dataset", "label"])[column].mean()
        keys = zip(candidates["dataset"], candidates["label"], strict=True)
        candidates = candidates.assign(val_auc=[val_auc.get(key, np.nan) for key in keys])
    else:
        candidates = candidates.assign(val_auc=np.nan)
    references: dict[str, str] = {}
    chosen_by: dict[str, str] = {}
    for dataset, group in candidates.groupby("dataset", sort=True):
        by_val = group.dropna(subset=["val_auc"])
        if not by_val.empty:
            # stable sort: equal validation AUCs keep the summary's order (dataset, then rank)
            best = by_val.sort_values("val_auc", ascending=False, kind="stable").iloc[0]
            how = "best mean validation AUC"
        else:
            best = group.sort_values("rank", kind="stable").iloc[0]
            how = "rank 1 of the summary (the runs record no validation AUC)"
        references[str(dataset)] = str(best["label"])
        chosen_by[str(dataset)] = "named by the user" if reference is not None else how
    return references, chosen_by


def _by_replicate(runs: pd.DataFrame) -> dict[tuple[object, object], dict]:
    """{(seed, fold): run row}, the first run of each (a repeated run is warned about by summarise)."""
    found: dict[tuple[object, object], dict] = {}
    for row in runs.to_dict("records"):
        key = (_key(row["seed"]), _key(row["fold"]))
        found.setdefault(key, row)
    return found


def _key(value: Any) -> int | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def paired_test(run_dir: str, ref_dir: str, predictions: TestPredictions) -> dict | None:
    """DeLong's test of the run against the reference run on their common test rows, or None."""
    ours, theirs = predictions.get(run_dir), predictions.get(ref_dir)
    if ours is None or theirs is None:
        return None
    both = ours.merge(theirs, on="row", suffixes=("", "_ref"))
    if (both["label"] != both["label_ref"]).any():
        warnings.warn(
            f"runs {run_dir} and {ref_dir} label the same test rows differently: not compared",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    if both.empty or both["label"].nunique() < 2:
        return None
    result = delong_test(
        both["label"].to_numpy(), both["prob"].to_numpy(), both["prob_ref"].to_numpy(), LEVEL
    )
    zcrit = scipy_stats.norm.ppf(0.5 + LEVEL / 2)
    return {
        "n_rows": len(both),
        "auc": result["auc_a"],
        "reference_auc": result["auc_b"],
        "diff": result["diff"],
        "diff_lo": result["diff_lo"],
        "diff_hi": result["diff_hi"],
        "se": (result["diff_hi"] - result["diff_lo"]) / (2 * zcrit),
        "z": result["z"],
        "p_value": result["p_value"],
        "rows": both["row"].to_numpy(),
    }


def disjoint_rows(row_sets: list[np.ndarray]) -> bool:
    """Whether no row id is in two of the arrays (the test folds of one k-fold split)."""
    everything = np.concatenate(row_sets)
    return len(np.unique(everything)) == len(everything)


def combine_paired(diffs: Sequence[float], ses: Sequence[float], *, independent: bool) -> dict[str, float]:
    """The mean of paired AUC differences with its interval, z and p: se = sqrt(sum se_i^2) / n when
    the runs' test rows are disjoint (independent differences), else mean(se_i), a bound that holds
    whatever the overlap."""
    se_array = np.asarray(ses, dtype=float)
    se = float(np.sqrt(np.sum(se_array**2)) / len(se_array)) if independent else float(se_array.mean())
    return _normal_test(float(np.mean(diffs)), se, LEVEL)


def _combine(
    per_run: pd.DataFrame, summary: pd.DataFrame, disjoint: dict[tuple[str, str], bool]
) -> pd.DataFrame:
    """One row per (dataset, model): mean diff, its se, interval, z and p (see compare)."""
    rows = []
    for (dataset, label, ref), group in per_run.groupby(["dataset", "model", "reference"], sort=False):
        independent = disjoint.get((dataset, label), False)
        test = combine_paired(group["diff"], group["se"], independent=independent)
        rows.append(
            {"dataset": dataset, "model": label, "reference": ref, "n_runs": len(group), **test}
            | {"combined_as": "independent" if independent else "conservative"}
        )
    combined = pd.DataFrame(rows, columns=COMBINED_COLUMNS)
    # in the summary's order: dataset, then rank
    order = {(r["dataset"], r["label"]): i for i, r in enumerate(summary.to_dict("records"))}
    keys = [
        order.get((d, m), len(order)) for d, m in zip(combined["dataset"], combined["model"], strict=True)
    ]
    return combined.iloc[np.argsort(keys, kind="stable")].reset_index(drop=True)


def verdict(row: dict, level: float = LEVEL) -> str:
    """The comparison in words: who beats whom at the 1 - level significance level, or neither."""
    alpha = 1 - level
    if row["p_value"] < alpha:
        winner, loser = (
            (row["model"], row["reference"]) if row["diff"] > 0 else (row["reference"], row["model"])
        )
        return f"{winner} beats {loser} (p < {alpha:g})"
    return f"no significant difference (p ≥ {alpha:g})"
