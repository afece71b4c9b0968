"""Compare a new file with a run's reference: stream it in chunks through the run's saved
preprocessing and model (as `zoo predict` does), count rows per score and field bin, and compute
the score's PSI, each field's CSI and, when the file holds the target, the run's performance."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo.calibration import reliability_table
from zoo.data.sources import reading_options
from zoo.data.validate import _as_list, _matches, check_features
from zoo.errors import ZooError
from zoo.manifest import read_json, read_manifest, verify
from zoo.metrics import compute_metrics
from zoo.monitor.psi import (
    Bins,
    count_categories,
    count_raw_numeric,
    count_scores,
    encoded_edges,
    psi_terms,
    status,
)
from zoo.monitor.reference import Distribution, Reference, read_reference
from zoo.outputs import METRICS_FILE, PREDICTIONS_FILE
from zoo.predict import CHUNK_ROWS, check_schema, load_run, read_chunks, score_frame

#: The performance figures shown beside the run's test split.
PERFORMANCE_METRICS = ("auc", "ks", "brier", "logloss", "ece")
CALIBRATION_BINS = 10


@dataclass
class Stability:
    """PSI of one quantity: its bins, reference and new rows per bin, and each bin's term."""

    name: str
    kind: str
    labels: list[str]
    reference: np.ndarray
    new: np.ndarray

    @property
    def terms(self) -> np.ndarray:
        return psi_terms(self.reference, self.new)

    @property
    def psi(self) -> float:
        return float(self.terms.sum())

    @property
    def status(self) -> str:
        return status(self.psi)

    def table(self) -> pd.DataFrame:
        """One row per bin: label, rows and shares on each side, and the bin's PSI term."""
        return pd.DataFrame(
            {
                "bin": self.labels,
                "reference_rows": self.reference.astype(np.int64),
                "reference_share": self.reference / self.reference.sum(),
                "new_rows": self.new.astype(np.int64),
                "new_share": self.new / self.new.sum(),
                "psi_term": self.terms,
            }
        )


@dataclass
class Performance:
    """The run's figures on the labelled rows of the new file, beside its test split's."""

    rows: int
    bad_rate: float
    new: dict[str, float]
    test: dict[str, float]
    calibration: pd.DataFrame  # reliability_table of the new rows, with the test split's rates
    scores: dict[str, tuple[np.ndarray, np.ndarray]]  # {"run test split": (y, p), "new file": (y, p)}


@dataclass
class Monitoring:
    """Everything `zoo monitor` found: the score's PSI, the fields' CSI, and the performance."""

    run_dir: Path
    file: Path
    rows: int
    reference: Reference
    score: Stability
    fields: list[Stability] | None
    performance: Performance | None
    threshold: float
    unseen: dict[str, int] = field(default_factory=dict)

    def over(self, limit: float) -> list[Stability]:
        """The score and fields whose PSI exceeds `limit`."""
        return [s for s in [self.score, *(self.fields or [])] if s.psi > limit]


def monitor_file(
    run_dir: Path | str, file: Path | str, *, chunk_rows: int = CHUNK_ROWS, progress: bool | None = None
) -> Monitoring:
    """Score `file` chunk by chunk with a sealed run and compare it with the run's reference."""
    from tqdm.auto import tqdm

    run_dir, file = Path(run_dir), Path(file)
    if not file.is_file():
        raise ZooError(f"file to monitor {str(file)!r} does not exist")
    run = load_run(run_dir)
    manifest = read_manifest(run_dir)
    reference = read_reference(run_dir, manifest, run.preprocessor)
    columns, chunks = read_chunks(file, chunk_rows, reading_options(run.config.dataset))
    check_schema(run, columns)
    target = run.schema.get("target")
    labelled = bool(target) and target in columns
    counters = _FieldCounters(run.preprocessor, reference.fields) if reference.fields is not None else None
    score_counts = np.zeros(len(reference.score.bins), dtype=np.int64)
    rows, unseen = 0, dict.fromkeys(run.preprocessor.categorical, 0)
    probs, labels = [], []
    show = sys.stderr.isatty() if progress is None else progress
    with tqdm(desc="monitoring", unit="rows", disable=not show) as bar:
        for chunk in chunks:
            prob, chunk_unseen, _ = score_frame(run, chunk)
            score_counts += count_scores(reference.score.bins, prob)
            if counters is not None:
                counters.add(chunk)
            for name, count in chunk_unseen.items():
                unseen[name] = unseen.get(name, 0) + count
            if labelled:
                y, keep = _labels(chunk[target], run.config.dataset)
                probs.append(prob[keep])
                labels.append(y[keep])
            rows += len(chunk)
            bar.update(len(chunk))
    if rows == 0:
        raise ZooError(f"file to monitor {str(file)!r} has no data rows")
    score = Stability("score", "score", reference.score.bins.labels, reference.score.counts, score_counts)
    fields = None
    if counters is not None and reference.fields is not None:
        fields = [
            Stability(d.bins.name, d.bins.kind, d.bins.labels, d.counts, counters.counts[d.bins.name])
            for d in reference.fields
        ]
        fields.sort(key=lambda s: -s.psi)
    performance = None
    if labelled:
        performance = _performance(
            run_dir, manifest, np.concatenate(probs), np.concatenate(labels), run.threshold
        )
    return Monitoring(run_dir, file, rows, reference, score, fields, performance, run.threshold, unseen)


class _FieldCounters:
    """Rows per bin of every input field, added up chunk by chunk."""

    def __init__(self, preprocessor: Any, distributions: list[Distribution]) -> None:
        self.preprocessor = preprocessor
        self.bins: dict[str, Bins] = {d.bins.name: d.bins for d in distributions}
        self.counts = {name: np.zeros(len(bins), dtype=np.int64) for name, bins in self.bins.items()}
        self.numeric = {f.name: f for f in preprocessor.numeric_fields_}
        self.edges = {name: encoded_edges(self.numeric[name], self.bins[name].edges) for name in self.numeric}
        self.roles = {c: "categorical" for c in preprocessor.categorical}
        self.roles.update({c: "numeric" for c in preprocessor.numeric})

    def add(self, chunk: pd.DataFrame) -> None:
        features = check_features(chunk, self.roles, allow_empty=True)
        for name in self.preprocessor.categorical:
            index, _ = self.preprocessor.vocabularies_[name].transform(features[name])
            self.counts[name] += count_categories(self.bins[name], index)
        for name, numeric in self.numeric.items():
            raw = features[name].to_numpy(dtype=np.float64, na_value=np.nan)
            self.counts[name] += count_raw_numeric(self.bins[name], numeric, raw, self.edges[name])


def _labels(column: pd.Series, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels (1 = bad, by dataset.bad_value) and the rows that hold one: with
    dataset.good_value set, rows neither good nor bad are left out, as in training."""
    present = column.notna().to_numpy()
    bad = _matches(column, _as_list(dataset.get("bad_value")))
    good_value = dataset.get("good_value")
    keep = present & (bad | _matches(column, _as_list(good_value))) if good_value is not None else present
    return bad.astype(np.int8), keep


def _performance(
    run_dir: Path, manifest: dict[str, Any], prob: np.ndarray, y: np.ndarray, threshold: float
) -> Performance | None:
    if len(y) == 0:
        return None
    metrics = read_json(run_dir, METRICS_FILE, manifest)
    saved = pd.read_parquet(verify(run_dir, PREDICTIONS_FILE, manifest), columns=["split", "label", "prob"])
    test = saved[saved["split"] == "test"]
    test_y, test_p = test["label"].to_numpy(), test["prob"].to_numpy()
    new = compute_metrics(prob, y, threshold=threshold)
    table = reliability_table(prob, y, n_bins=CALIBRATION_BINS)
    test_table = reliability_table(test_p, test_y, n_bins=CALIBRATION_BINS)
    table["test_count"] = test_table["count"]
    table["test_observed_rate"] = test_table["observed_rate"]
    return Performance(
        rows=len(y),
        bad_rate=float(np.mean(y)),
        new={k: new[k] for k in PERFORMANCE_METRICS},
        test={k: metrics["test"].get(k) for k in PERFORMANCE_METRICS},
        calibration=table,
        scores={"run test split": (test_y, test_p), "new file": (y, prob)},
    )
