"""Fairness columns of the leaderboard, from each run's metrics.json `fairness` section (runs
trained with dataset.protected): per protected attribute, the mean over a model's runs of the
worst adverse impact ratio (AIR) and of the equalised-odds gap; and, with `--min-air X`, the rank
by AUC among the models whose AIR is at least X on every attribute their dataset declares."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from zoo.errors import ZooError
from zoo.leaderboard.collect import Run
from zoo.leaderboard.tables import Table

#: Figures of an attribute taken from each run, and the summary column prefix of their mean.
FIGURES = {"worst_air": "air", "equalized_odds_gap": "eo_gap"}
#: The summary column of the rank within the fairness constraint.
RANK_COLUMN = "rank_min_air"
#: The four-fifths rule: where a worst AIR is marked when no --min-air is given.
FOUR_FIFTHS = 0.8


def attributes_of(runs: Sequence[Run]) -> list[str]:
    """The protected attributes any run measured, in first-seen order."""
    seen: dict[str, None] = {}
    for run in runs:
        for name in (run.data.get("fairness") or {}).get("attributes") or {}:
            seen.setdefault(str(name), None)
    return list(seen)


def add_fairness_columns(summary: pd.DataFrame, frame: pd.DataFrame, runs: Sequence[Run]) -> list[str]:
    """Add `air_<attribute>` and `eo_gap_<attribute>` (means over each (dataset, model, variant)'s
    runs; NaN where not measured) to `summary` in place; returns the attributes."""
    attributes = attributes_of(runs)
    if not attributes:
        return []
    rows = []
    for run, (_, row) in zip(runs, frame.iterrows(), strict=True):
        measured = (run.data.get("fairness") or {}).get("attributes") or {}
        values = {"dataset": row["dataset"], "model": row["model"], "variant": row["variant"] or ""}
        for name in attributes:
            for key, prefix in FIGURES.items():
                value = (measured.get(name) or {}).get(key)
                values[f"{prefix}_{name}"] = np.nan if value is None else float(value)
        rows.append(values)
    means = pd.DataFrame(rows).groupby(["dataset", "model", "variant"], sort=False).mean()
    keys = list(zip(summary["dataset"], summary["model"], summary["variant"].fillna(""), strict=True))
    for column in means.columns:
        summary[column] = [means[column].get(key, np.nan) for key in keys]
    return attributes


def rank_within(
    summary: pd.DataFrame, runs: Sequence[Run], attributes: Sequence[str], min_air: float
) -> pd.DataFrame:
    """`summary` with RANK_COLUMN: the rank (by the table's rank, i.e. mean AUC) among the rows
    whose mean worst AIR is >= min_air on every attribute their dataset's runs declare; rows that
    miss it, or were not measured, get none. Rows sort by dataset, that rank, then the rank."""
    if not 0 < min_air <= 1 or math.isnan(min_air):
        raise ZooError(f"--min-air={min_air}, expected a number in (0, 1], e.g. 0.8")
    if not attributes:
        raise ZooError(
            "--min-air needs runs trained with dataset.protected (a fairness section in metrics.json); "
            "none of these runs has one"
        )
    declared: dict[str, set[str]] = {}
    for run in runs:
        names = ((run.data.get("fairness") or {}).get("attributes") or {}).keys()
        declared.setdefault(str(run.data["dataset"]), set()).update(map(str, names))
    eligible = []
    for row in summary.to_dict("records"):
        names = declared.get(str(row["dataset"])) or set()
        airs = [row.get(f"air_{name}") for name in names]
        ok = bool(names) and all(a is not None and not pd.isna(a) and a >= min_air for a in airs)
        eligible.append(ok and not pd.isna(row["rank"]))
    summary = summary.copy()
    ranks = summary["rank"].astype("Float64").where(pd.Series(eligible, index=summary.index))
    summary[RANK_COLUMN] = ranks.groupby(summary["dataset"]).rank(method="min").astype("Int64")
    order = summary.sort_values(["dataset", RANK_COLUMN, "rank"], na_position="last", kind="stable")
    return order.reset_index(drop=True)


def extend_table(
    table: Table, summary: pd.DataFrame, attributes: Sequence[str], min_air: float | None
) -> Table:
    """The summary table with `rank (AIR ≥ x)` after the rank (with --min-air) and, per attribute,
    `worst AIR <attribute>` (⚠ below the bar: min_air, else the four-fifths rule) and `EO gap`."""
    if not attributes:
        return table
    bar = FOUR_FIFTHS if min_air is None else min_air
    header, numeric = list(table.header), list(table.numeric)
    rows = [list(cells) for cells in table.rows]
    records = summary.to_dict("records")
    if min_air is not None:
        at = header.index("rank") + 1
        header.insert(at, f"rank (AIR ≥ {min_air:g})")
        numeric.insert(at, True)
        for cells, row in zip(rows, records, strict=True):
            rank = row.get(RANK_COLUMN)
            cells.insert(at, "" if rank is None or pd.isna(rank) else str(int(rank)))
    for name in attributes:
        header += [f"worst AIR {name}", f"EO gap {name}"]
        numeric += [True, True]
        for cells, row in zip(rows, records, strict=True):
            air, gap = row.get(f"air_{name}"), row.get(f"eo_gap_{name}")
            air_text = "" if air is None or pd.isna(air) else f"{air:.3f}" + (" ⚠" if air < bar else "")
            cells += [air_text, "" if gap is None or pd.isna(gap) else f"{gap:.3f}"]
    return Table(header, rows, numeric)


def constraint_text(summary: pd.DataFrame, min_air: float) -> str:
    """One sentence per dataset: the best model within the constraint, or that none meets it."""
    parts = []
    for dataset, rows in summary.groupby("dataset", sort=True):
        best = rows[rows[RANK_COLUMN] == 1]
        if best.empty:
            parts.append(f"{dataset}: no model meets it")
        else:
            row = best.iloc[0]
            label = f"{row['model']} [{row['variant']}]" if row.get("variant") else str(row["model"])
            parts.append(f"{dataset}: {label}")
    return (
        f"Ranked within a fairness constraint: the best AUC among models whose worst adverse impact "
        f"ratio (mean over runs) is ≥ {min_air:g} on every protected attribute their dataset declares; "
        f"best: {'; '.join(parts)}. ⚠ marks an AIR below {min_air:g}."
    )
