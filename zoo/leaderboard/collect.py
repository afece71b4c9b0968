"""Collecting a sweep: the metrics.json of finished runs, their test predictions, and the jobs that
failed (failures/<job>.json) or never finished (a `.hydra/` folder but no metrics.json)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from zoo.errors import ZooError
from zoo.outputs import METRICS_FILE, OBJECTIVE_FILE, PREDICTIONS_FILE

SPLITS = ("train", "val", "test")
REPLICATE_KEYS = frozenset({"seed", "data.fold"})
"""Config keys whose runs are repeats of one setting, summarised together (mean ± std)."""
FAILURES_DIR = "failures"
"""Folder of a sweep directory holding one `<job>.json` per failed job."""

_RUN_FIELDS = (
    "model",
    "dataset",
    "variant",
    "seed",
    "fold",
    "experiment",
    "threshold",
    "threshold_method",
    "fit_seconds",
)


@dataclass(frozen=True)
class Run:
    """One readable metrics.json: where it is and what it holds."""

    path: Path
    data: dict


@dataclass(frozen=True)
class FailedJob:
    """A job of a sweep that raised: its failure record `<sweep>/failures/<job>.json`."""

    job: str
    overrides: list[str]
    error: str
    type: str
    path: Path


def collect_runs(root: Path) -> pd.DataFrame:
    """One row per metrics.json under root (any depth), split metrics flattened as `test/auc`.

    Unreadable files are skipped with a RuntimeWarning so one crashed run does not sink a multirun;
    so are runs an Optuna pruner stopped early (`pruned_at_epoch`), which are not finished models.
    """
    return runs_frame(read_runs(Path(root)))


def read_runs(root: Path) -> list[Run]:
    """Read every metrics.json under root; warn about and skip unreadable ones, fail if none is."""
    if not root.exists():
        raise ZooError(f"runs directory not found: {root}")
    if not root.is_dir():
        raise ZooError(f"expected a runs directory, got a file: {root}")
    files = sorted(root.rglob(METRICS_FILE))
    if not files:
        raise ZooError(f"no metrics.json found under {root}")
    runs, pruned = [], 0
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            _check_run(data)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ZooError) as err:
            warnings.warn(f"skipping unreadable {path}: {err}", RuntimeWarning, stacklevel=3)
            continue
        if data.get("pruned_at_epoch") is not None:
            pruned += 1  # stopped early by an Optuna pruner: its metrics are of an unfinished model
            continue
        runs.append(Run(path, data))
    if pruned:
        warnings.warn(f"skipping {pruned} runs pruned by an Optuna study", RuntimeWarning, stacklevel=3)
    if not runs:
        raise ZooError(f"none of the {len(files)} metrics.json files under {root} is readable and unpruned")
    return runs


def _check_run(data: object) -> None:
    """Raise ZooError unless data looks like a run's metrics.json."""
    if not isinstance(data, dict):
        raise ZooError(f"expected a JSON object, got {type(data).__name__}")
    for key in ("model", "dataset"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ZooError(f"expected a non-empty string for {key!r}, got {data.get(key)!r}")
    for split in SPLITS:
        block = data.get(split)
        if block is None:
            continue
        if not isinstance(block, dict):
            kind = type(block).__name__
            raise ZooError(f"expected an object of metrics for {split!r}, got {kind}")
        for name, value in block.items():
            if not is_number_or_none(value):
                raise ZooError(f"expected a number for {split}/{name}, got {value!r}")


def is_number_or_none(value: object) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _flat_config(run: Run) -> dict[str, str] | None:
    """The run's resolved config.yaml (beside metrics.json) as {dotted key: value text}, or None."""
    import yaml

    path = run.path.parent / "config.yaml"
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(config, dict):
        return None
    flat: dict[str, str] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            flat[prefix] = json.dumps(value, sort_keys=True, default=str)

    walk("", config)
    return flat


def _variants(runs: Sequence[Run]) -> list[str]:
    """Per run, the config settings that set it apart from the other runs of its (dataset, model),
    e.g. `use_crosses=true, data.batch_size=512`; "" when they all share one config.

    Seeds and folds are repeats (REPLICATE_KEYS), not variants. Without this, a sweep over a
    model's hyperparameters would silently average different settings into one row.
    """
    configs = [_flat_config(run) for run in runs]
    groups: dict[tuple[str, str], list[int]] = {}
    for i, run in enumerate(runs):
        groups.setdefault((run.data["dataset"], run.data["model"]), []).append(i)
    labels = [""] * len(runs)
    for members in groups.values():
        known = [i for i in members if configs[i] is not None]
        keys = sorted({key for i in known for key in configs[i] or {}} - REPLICATE_KEYS)
        differing = [k for k in keys if len({(configs[i] or {}).get(k) for i in known}) > 1]
        for i in known:
            config = configs[i] or {}
            parts = [f"{k.removeprefix('model.')}={_override_text(config.get(k, 'null'))}" for k in differing]
            labels[i] = ", ".join(parts)
    return labels


def _override_text(text: str) -> str:
    """A JSON value as Hydra override syntax writes it: true, null, 0.001, adam, [256,128]."""
    value = json.loads(text)
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def runs_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """Flatten runs into a DataFrame: run fields, then `<split>/<metric>` columns, then run_dir."""
    rows = []
    for run, variant in zip(runs, _variants(runs), strict=True):
        row = {field: run.data.get(field) for field in _RUN_FIELDS}
        row["variant"] = variant
        for split in SPLITS:
            for name, value in (run.data.get(split) or {}).items():
                row[f"{split}/{name}"] = np.nan if value is None else float(value)
        row["run_dir"] = str(run.path.parent)
        rows.append(row)
    frame = pd.DataFrame(rows)
    metric_cols = sorted(
        (c for c in frame.columns if "/" in c), key=lambda c: (SPLITS.index(c.split("/", 1)[0]), c)
    )
    return frame[[*_RUN_FIELDS, *metric_cols, "run_dir"]]


def from_runs(runs: Sequence[Run], key: str, check: Callable[[object], None]) -> object | None:
    """The runs' value for an experiment-level key (first found); warn when runs disagree."""
    found = [(run.path, run.data[key]) for run in runs if run.data.get(key) is not None]
    if not found:
        return None
    path, value = found[0]
    try:
        check(value)
    except ZooError as err:
        raise ZooError(f"bad {key!r} in {path}: {err}") from None
    others = [p for p, v in found[1:] if v != value]
    if others:
        message = f"runs disagree about {key!r}; using the one in {path}, not {others[0]}"
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    return value


def check_metric_list(value: object) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(m, str) and m for m in value):
        raise ZooError(f"expected a non-empty list of metric names, got {value!r}")


# --- predictions


def model_label(row: Mapping[str, object]) -> str:
    """`model`, or `model [variant]` when a sweep ran the model with several settings."""
    variant = row.get("variant")
    return f"{row['model']} [{variant}]" if isinstance(variant, str) and variant else str(row["model"])


class TestPredictions:
    """The runs' test rows from predictions.parquet (row, label, prob), read once per run.

    Runs without the file (older runs, or ones whose predictions were deleted) give None and are
    counted in `missing`, so the caller can warn once rather than per run.
    """

    __test__ = False  # a helper, not a pytest test class

    def __init__(self) -> None:
        self._frames: dict[str, pd.DataFrame | None] = {}
        self.missing: set[str] = set()

    def get(self, run_dir: Path | str) -> pd.DataFrame | None:
        key = str(run_dir)
        if key not in self._frames:
            self._frames[key] = self._read(Path(run_dir))
            if self._frames[key] is None:
                self.missing.add(key)
        return self._frames[key]

    @staticmethod
    def _read(run_dir: Path) -> pd.DataFrame | None:
        path = run_dir / PREDICTIONS_FILE
        if not path.is_file():
            return None
        try:
            frame = pd.read_parquet(path, columns=["split", "row", "label", "prob"])
        except (OSError, ValueError, KeyError) as err:
            warnings.warn(f"skipping unreadable {path}: {err}", RuntimeWarning, stacklevel=3)
            return None
        test = frame[frame["split"].astype(str) == "test"]
        return test[["row", "label", "prob"]].reset_index(drop=True)


# --- jobs that did not finish


def failed_jobs(root: Path) -> list[FailedJob]:
    """Every `failures/<job>.json` under root, sorted by path; unreadable records are warned about."""
    jobs = []
    for path in sorted(Path(root).rglob(f"{FAILURES_DIR}/*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ZooError(f"expected a JSON object, got {type(data).__name__}")
            overrides = data.get("overrides") or []
            if not isinstance(overrides, list):
                raise ZooError(f"expected a list of overrides, got {overrides!r}")
            job = FailedJob(
                job=str(data.get("job") or path.stem),
                overrides=[str(o) for o in overrides],
                error=str(data.get("error") or ""),
                type=str(data.get("type") or ""),
                path=path,
            )
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ZooError) as err:
            warnings.warn(f"skipping unreadable failure record {path}: {err}", RuntimeWarning, stacklevel=2)
            continue
        jobs.append(job)
    return jobs


def incomplete_jobs(root: Path, failed: Sequence[FailedJob] = ()) -> list[Path]:
    """Job directories under root (a `.hydra/` folder inside) with neither metrics.json (or, for a
    tuning trial averaged over folds, objective.json) nor a failure record: killed, or still running."""
    recorded = {(job.path.parent.parent, job.job) for job in failed}
    jobs = []
    for hydra_dir in sorted(Path(root).rglob(".hydra")):
        job_dir = hydra_dir.parent
        finished = (job_dir / METRICS_FILE).exists() or (job_dir / OBJECTIVE_FILE).exists()
        if not hydra_dir.is_dir() or finished:
            continue
        if (job_dir.parent, job_dir.name) in recorded:
            continue
        jobs.append(job_dir)
    return jobs
