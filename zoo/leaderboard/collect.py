"""Collecting a sweep: the runs sealed by a manifest that verifies (their metrics.json, config and
test predictions), the jobs that failed (failures/<job>.json), and the run directories that are not
sealed (unfinished, interrupted, or changed after they finished), which are listed, never ranked."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from zoo.errors import ZooError
from zoo.manifest import MANIFEST_FILE, STATE_FILE, read_manifest, seal_problem, verify
from zoo.outputs import CONFIG_FILE, METRICS_FILE, OBJECTIVE_FILE, PREDICTIONS_FILE
from zoo.run_state import current_state

SPLITS = ("train", "val", "test")
REPLICATE_KEYS = frozenset({"seed", "data.fold"})
"""Config keys whose runs are repeats of one setting, summarised together (mean ± std)."""
FAILURES_DIR = "failures"
"""Folder of a sweep directory holding one `<job>.json` per failed job."""
_RUN_MARKERS = frozenset({METRICS_FILE, MANIFEST_FILE, STATE_FILE, ".hydra"})
"""Names whose folder is a run directory: a Hydra job, or a run's own files."""

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
    """One sealed run's readable metrics.json: where it is, what it holds, and the artifacts its
    manifest lists (and verify_run checked)."""

    path: Path
    data: dict
    artifacts: frozenset[str] = field(default=frozenset())


@dataclass(frozen=True)
class FailedJob:
    """A job of a sweep that raised: its failure record `<sweep>/failures/<job>.json`."""

    job: str
    overrides: list[str]
    error: str
    type: str
    path: Path


@dataclass(frozen=True)
class UnrankedRun:
    """A run directory left out of the table because no manifest that verifies seals it: its
    `state.json` state (None for runs older than that file) and the reason (`no manifest`,
    `manifest does not verify: metrics.json changed`)."""

    path: Path
    state: str | None
    reason: str


@dataclass(frozen=True)
class Sweep:
    """What a sweep directory holds: runs to rank, failed jobs, and runs that are not sealed."""

    runs: list[Run]
    failed: list[FailedJob]
    unranked: list[UnrankedRun]


def collect_runs(root: Path) -> pd.DataFrame:
    """One row per sealed run under root (any depth), split metrics flattened as `test/auc`.

    Unreadable metrics are skipped with a RuntimeWarning so one crashed run does not sink a multirun;
    so are runs an Optuna pruner stopped early (`pruned_at_epoch`), which are not finished models.
    Runs whose manifest is missing or does not verify are left out (read_sweep lists them).
    """
    return runs_frame(read_runs(Path(root)))


def read_runs(root: Path) -> list[Run]:
    """The sealed, readable, unpruned runs under root (see read_sweep)."""
    return read_sweep(root).runs


def read_sweep(root: Path) -> Sweep:
    """Every run directory under root, each checked once with verify_run: sealed runs with a
    readable metrics.json are ranked (unreadable ones are warned about and skipped, pruned ones
    counted), the others are listed as unranked unless a failure record explains them. A ZooError
    when nothing is left to rank."""
    root = Path(root)
    sweep, files = _scan(root)
    if not sweep.runs:
        if sweep.unranked:
            first = sweep.unranked[0]
            raise ZooError(
                f"no run under {root} to rank: {_runs(len(sweep.unranked))} not sealed by a manifest"
                f" that verifies (first: {first.path}: {first.reason})"
            )
        if not files:
            raise ZooError(f"no metrics.json found under {root}")
        raise ZooError(f"none of the {files} metrics.json files under {root} is readable and unpruned")
    return sweep


def unranked_runs(root: Path) -> list[UnrankedRun]:
    """The run directories under root that no verifying manifest seals and no failure record
    explains: unfinished (killed, still running, interrupted) or changed after they finished."""
    return _scan(Path(root))[0].unranked


def _scan(root: Path) -> tuple[Sweep, int]:
    """The sweep under root, and how many metrics.json files it holds."""
    if not root.exists():
        raise ZooError(f"runs directory not found: {root}")
    if not root.is_dir():
        raise ZooError(f"expected a runs directory, got a file: {root}")
    failed = failed_jobs(root)
    recorded = {(job.path.parent.parent, job.job) for job in failed}
    runs: list[Run] = []
    unranked: list[UnrankedRun] = []
    files = pruned = 0
    for run_dir in _run_dirs(root):
        path = run_dir / METRICS_FILE
        files += path.is_file()
        if not path.is_file() and (run_dir / OBJECTIVE_FILE).is_file():
            continue  # a trial averaged over folds: each fold<i>/ is a run of its own
        problem = seal_problem(run_dir)
        if problem is not None:
            if (run_dir.parent, run_dir.name) not in recorded:  # a failed job is listed as such
                unranked.append(UnrankedRun(run_dir, current_state(run_dir), problem))
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            _check_run(data)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ZooError) as err:
            warnings.warn(f"skipping unreadable {path}: {err}", RuntimeWarning, stacklevel=4)
            continue
        if data.get("pruned_at_epoch") is not None:
            pruned += 1  # stopped early by an Optuna pruner: its metrics are of an unfinished model
            continue
        runs.append(Run(path, data, frozenset(read_manifest(run_dir)["artifacts"])))
    if pruned:
        warnings.warn(f"skipping {pruned} runs pruned by an Optuna study", RuntimeWarning, stacklevel=4)
    return Sweep(runs, failed, unranked), files


def _run_dirs(root: Path) -> Iterator[Path]:
    """Folders under root (root included) holding a metrics.json, manifest, state.json or .hydra/."""
    found = {path.parent for path in root.rglob("*") if path.name in _RUN_MARKERS}
    yield from sorted(d for d in found if ".hydra" not in d.relative_to(root).parts)


def _runs(n: int) -> str:
    return "1 run is" if n == 1 else f"{n} runs are"


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
    """The run's resolved config.yaml (beside metrics.json) as {dotted key: value text}, or None
    when its manifest does not list one."""
    import yaml

    if CONFIG_FILE not in run.artifacts:
        return None
    path = run.path.parent / CONFIG_FILE
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
        """The test rows, from a predictions.parquet the run's manifest lists and that verifies."""
        path = run_dir / PREDICTIONS_FILE
        if not path.is_file():
            return None
        try:
            manifest = read_manifest(run_dir)
            if PREDICTIONS_FILE not in manifest["artifacts"]:
                return None  # not the run's own: added after it was sealed
            verify(run_dir, PREDICTIONS_FILE, manifest)
        except ZooError as err:
            warnings.warn(f"skipping {path}: {err}", RuntimeWarning, stacklevel=3)
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
