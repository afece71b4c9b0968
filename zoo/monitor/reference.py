"""The reference distribution a run is monitored against: rows per score bin and per field bin on
its validation split, saved with the run as `monitor_reference.json`.

The validation split, not the training one: the run saves no training-row scores, and training
scores are in-sample (an overfit model pushes them towards 0 and 1), so no new data could match
them; the fields are counted on the same rows, so PSI and CSI describe one population."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo.data.spec import INDICATOR, SPECIAL
from zoo.errors import ZooError
from zoo.manifest import read_json, verify
from zoo.monitor.psi import (
    Bins,
    count_categories,
    count_numeric,
    count_scores,
    encoded_edges,
    numeric_bins,
    score_bins,
)
from zoo.outputs import PREDICTIONS_FILE, write_json

REFERENCE_FILE = "monitor_reference.json"
REFERENCE_FORMAT = "credit-zoo.monitor-reference/1"
POPULATION = "validation split"


@dataclass
class Distribution:
    """The bins of one quantity and the reference rows in each."""

    bins: Bins
    counts: np.ndarray


@dataclass
class Reference:
    """What a run is monitored against: the score's distribution and, when saved, each field's."""

    population: str
    rows: int
    source: str
    score: Distribution
    fields: list[Distribution] | None


def field_distributions(preprocessor: Any, arrays: dict[str, np.ndarray]) -> list[Distribution]:
    """Rows per bin of every input field in model arrays: categories from `x_cat`'s indices,
    numerics from `x_num` (missing rows from the field's missing indicator, special codes from their
    flags; a field without an indicator had no missing training value and reads its missing rows as
    the median, as the model does)."""
    out = []
    for j, name in enumerate(preprocessor.categorical):
        bins = Bins(
            name, "categorical", categories=tuple(map(str, preprocessor.vocabularies_[name].categories))
        )
        out.append(Distribution(bins, count_categories(bins, arrays["x_cat"][:, j])))
    columns = {f.name: j for j, f in enumerate(preprocessor.numeric_spec())}
    flags = preprocessor.numeric_spec()
    x_num = arrays["x_num"]
    rows = x_num.shape[0]
    for numeric in preprocessor.numeric_fields_:
        bins = numeric_bins(numeric)
        indicator = [columns[f.name] for f in flags if f.source == numeric.name and f.encoding == INDICATOR]
        missing = x_num[:, indicator[0]] > 0.5 if indicator else np.zeros(rows, dtype=bool)
        special = [
            x_num[:, columns[f.name]] > 0.5
            for code in bins.special_values
            for f in flags
            if f.source == numeric.name and f.encoding == SPECIAL and f.code == code
        ]
        edges = encoded_edges(numeric, bins.edges)
        counts = count_numeric(bins, x_num[:, columns[numeric.name]], edges, missing, special)
        out.append(Distribution(bins, counts))
    return out


def build_reference(preprocessor: Any, arrays: dict[str, np.ndarray], scores: np.ndarray) -> dict[str, Any]:
    """The reference as plain data: score decile bins and counts, and each field's bins and counts."""
    bins = score_bins(scores)
    return {
        "format": REFERENCE_FORMAT,
        "population": POPULATION,
        "rows": int(len(scores)),
        "score": {**bins.to_dict(), "counts": count_scores(bins, scores).tolist()},
        "fields": [
            {**d.bins.to_dict(), "counts": d.counts.tolist()}
            for d in field_distributions(preprocessor, arrays)
        ],
    }


def write_reference(run_dir: Path | str, dm: Any, predictions: dict[str, dict[str, np.ndarray]]) -> Path:
    """Write `monitor_reference.json` into a run from its DataModule (the validation rows' arrays
    and the fitted preprocessor) and its predictions ({split: {"prob": ...}}, after calibration):
    call it before the manifest is written, so the manifest seals it."""
    reference = build_reference(dm.preprocessor, dm.arrays["val"], np.asarray(predictions["val"]["prob"]))
    return write_json(Path(run_dir) / REFERENCE_FILE, reference)


def write_ensemble_reference(run_dir: Path | str, member_dir: Path | str, scores: np.ndarray) -> Path | None:
    """An ensemble's `monitor_reference.json`: the score bins of its own validation probabilities
    and the field counts of the member whose preprocessing it scores files with (the members share
    the validation rows). None, and nothing written, when that member saved no reference."""
    from zoo.manifest import read_manifest

    member_dir = Path(member_dir)
    manifest = read_manifest(member_dir)
    if REFERENCE_FILE not in manifest.get("artifacts", {}):
        return None
    member = read_json(member_dir, REFERENCE_FILE, manifest)
    scores = np.asarray(scores)
    bins = score_bins(scores)
    reference = {
        **member,
        "rows": int(len(scores)),
        "score": {**bins.to_dict(), "counts": count_scores(bins, scores).tolist()},
    }
    return write_json(Path(run_dir) / REFERENCE_FILE, reference)


def read_reference(run_dir: Path, manifest: dict[str, Any], preprocessor: Any) -> Reference:
    """The run's reference, checked against its manifest. A run made before the reference was
    saved gets the score bins from its validation predictions (the same numbers) and no fields."""
    if REFERENCE_FILE in manifest.get("artifacts", {}):
        data = read_json(run_dir, REFERENCE_FILE, manifest)
        if data.get("format") != REFERENCE_FORMAT:
            raise ZooError(
                f"{REFERENCE_FILE} of {str(run_dir)!r} has format {data.get('format')!r}, "
                f"expected {REFERENCE_FORMAT!r}"
            )
        fields = [
            Distribution(Bins.from_dict(f), np.asarray(f["counts"], dtype=np.int64)) for f in data["fields"]
        ]
        _check_fields(fields, preprocessor, run_dir)
        score = Distribution(
            Bins.from_dict(data["score"]), np.asarray(data["score"]["counts"], dtype=np.int64)
        )
        return Reference(str(data["population"]), int(data["rows"]), REFERENCE_FILE, score, fields)
    path = verify(run_dir, PREDICTIONS_FILE, manifest)
    frame = pd.read_parquet(path, columns=["split", "prob"])
    scores = frame.loc[frame["split"] == "val", "prob"].to_numpy()
    bins = score_bins(scores)
    return Reference(
        POPULATION, len(scores), PREDICTIONS_FILE, Distribution(bins, count_scores(bins, scores)), None
    )


def _check_fields(fields: list[Distribution], preprocessor: Any, run_dir: Path) -> None:
    saved = sorted(d.bins.name for d in fields)
    expected = sorted(preprocessor.columns)
    if saved != expected:
        raise ZooError(
            f"{REFERENCE_FILE} of {str(run_dir)!r} describes fields {saved}, but the run's preprocessing "
            f"has {expected}"
        )
