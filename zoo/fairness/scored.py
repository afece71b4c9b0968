"""`zoo predict RUN FILE --groups COLUMN`: the fair-lending metrics of a scored file by a column of
it (a protected attribute), at the run's threshold. Approval rate, AIR and SMD need no labels; with
the run's target in the file (every row labelled good or bad), TPR, FPR, AUC and calibration too."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo.errors import ZooError
from zoo.fairness.groups import group_labels, order_groups
from zoo.fairness.metrics import group_metrics
from zoo.fairness.report import group_table, summary_line
from zoo.fairness.section import attribute_edges
from zoo.fairness.settings import fairness_settings


@dataclass
class ScoredGroups:
    """The checked `--groups` request: the run, the file, its group columns and chunk size."""

    run: Any
    file: Path
    columns: list[str]
    chunk_rows: int

    def report(self, out: Path) -> list[str]:
        """Compute the figures from `out` (the scores) and the file; write `<out stem>.groups.json`
        beside `out`; return the lines to print."""
        section = scored_groups(self, Path(out))
        path = groups_path(Path(out))
        from zoo.outputs import write_json

        write_json(path, section)
        air = float(section["air_threshold"])
        lines = [
            f"groups of the scored file at threshold {section['threshold']:.4f} (approved when prob <= "
            f"threshold), labels: {section['labels']}"
        ]
        for name, attribute in section["attributes"].items():
            lines += ["", summary_line(name, attribute, air), "", *group_table(attribute, air)]
        return [*lines, "", f"groups: {path}"]


def groups_path(out: Path) -> Path:
    """`scores.parquet` -> `scores.groups.json`."""
    return out.with_name(f"{out.stem}.groups.json")


def check_groups(run: Any, file: Path | str, columns: list[str], *, chunk_rows: int) -> ScoredGroups:
    """Check `--groups` before any scoring: each column is in the file's header."""
    from zoo.data.sources import reading_options
    from zoo.predict import read_chunks

    header, _ = read_chunks(Path(file), chunk_rows, reading_options(run.config.dataset))
    for name in columns:
        if name not in header:
            raise ZooError(
                f"--groups {name!r} is not a column of the file to score; columns are: {', '.join(header)}"
            )
    if len(set(columns)) != len(columns):
        raise ZooError(f"--groups names a column twice: {', '.join(columns)}")
    return ScoredGroups(run, Path(file), list(columns), chunk_rows)


def _labels(frame: pd.DataFrame, dataset: Any) -> tuple[np.ndarray | None, str]:
    """1 = bad per row when the file holds the run's target with every row good or bad, else None."""
    from zoo.data.validate import resolve_target

    target = dataset.get("target")
    if target not in frame.columns:
        return None, f"none (no {target!r} column): approval rate, AIR and SMD only"
    try:
        _, y, kept = resolve_target(
            frame, target=target, bad_value=dataset.get("bad_value"), good_value=dataset.get("good_value")
        )
    except ZooError as err:
        return None, f"not used ({err}): approval rate, AIR and SMD only"
    if len(kept) < len(frame):
        return None, f"not used ({len(frame) - len(kept)} rows unlabelled): approval rate, AIR and SMD only"
    return y, f"{target!r}"


def scored_groups(request: ScoredGroups, out: Path) -> dict[str, Any]:
    """The fairness figures of the scored rows by each `--groups` column."""
    from zoo.data.sources import reading_options
    from zoo.predict import read_chunks

    run = request.run
    dataset = run.config.dataset
    target = dataset.get("target")
    wanted = [*request.columns, *([target] if target else [])]
    _, chunks = read_chunks(request.file, request.chunk_rows, reading_options(dataset))
    frame = pd.concat([c[[n for n in wanted if n in c.columns]] for c in chunks])
    scores = pd.read_parquet(out, columns=["row", "prob"]) if out.suffix == ".parquet" else pd.read_csv(out)
    prob = pd.Series(scores["prob"].to_numpy(np.float64), index=scores["row"].to_numpy()).reindex(frame.index)
    scored = np.isfinite(prob.to_numpy())  # --invalid=missing leaves rows without a probability
    frame, prob = frame[scored], prob[scored]
    y, labels = _labels(frame, dataset)
    settings = fairness_settings(run.config)
    attributes = {}
    for name in request.columns:
        edges = attribute_edges(name, frame[name], settings)
        groups = group_labels(frame[name], edges).reset_index(drop=True)
        counts = groups.value_counts()
        single = counts[counts == 1]
        if len(single):
            raise ZooError(
                f"--groups {name!r}: group {str(single.index[0])!r} has one row ({len(single)} such groups); "
                "a group needs many rows to say anything (is it an id or a continuous column? numbers "
                "with many values are binned by fairness.bins)"
            )
        attributes[name] = {
            "bins": edges,
            **group_metrics(
                y,
                prob.to_numpy(),
                groups,
                threshold=run.threshold,
                min_group=settings["min_group"],
                air_threshold=settings["air_threshold"],
                order=order_groups(list(groups), edges),
            ),
        }
    return {
        "file": str(request.file),
        "rows": int(len(frame)),
        "threshold": float(run.threshold),
        "approve": "prob <= threshold",
        "labels": labels,
        "min_group": settings["min_group"],
        "air_threshold": settings["air_threshold"],
        "attributes": json.loads(json.dumps(attributes)),
    }
