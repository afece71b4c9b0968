"""`model_card.md`: a run's documentation in the spirit of SR 11-7 (data, model, performance with
uncertainty, calibration, drivers, warnings, fairness by protected attribute, software), built from
the files the run wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from zoo.outputs import CONFIG_FILE, METRICS_FILE, PREDICTIONS_FILE, RELIABILITY_FILE, write_text

MODEL_CARD_FILE = "model_card.md"
#: Bootstrap resamples of the test rows for the confidence intervals of the non-AUC metrics.
BOOTSTRAP = 200
LEVEL = 0.95


def _auc_ci(y: np.ndarray, prob: np.ndarray) -> tuple[float, float, float] | None:
    try:
        from zoo.stats import auc_ci
    except ImportError:  # zoo.stats is not installed in this checkout
        return None
    auc, lo, hi = auc_ci(y, prob, level=LEVEL)
    return float(auc), float(lo), float(hi)


def bootstrap_cis(y: np.ndarray, prob: np.ndarray, threshold: float, *, seed: int = 0) -> dict[str, tuple]:
    """Percentile bootstrap intervals of brier, logloss, accuracy, precision and recall."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(y), size=(BOOTSTRAP, len(y)))
    ys, ps = y[index], np.clip(prob[index].astype(np.float64), 1e-7, 1 - 1e-7)
    decision = ps > threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = {
            "brier": ((ps - ys) ** 2).mean(1),
            "logloss": -(ys * np.log(ps) + (1 - ys) * np.log(1 - ps)).mean(1),
            "accuracy": (decision == (ys > 0.5)).mean(1),
            "precision": (decision & (ys > 0.5)).sum(1) / decision.sum(1),
            "recall": (decision & (ys > 0.5)).sum(1) / (ys > 0.5).sum(1),
        }
    tail = (1 - LEVEL) / 2 * 100
    return {  # no interval where no resample defines the metric (precision with no predicted default)
        k: tuple(np.nanpercentile(v, [tail, 100 - tail])) for k, v in samples.items() if np.isfinite(v).any()
    }


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def model_card(
    run_dir: Path, *, source: dict[str, Any], bad_rates: dict[str, float], versions: dict[str, str]
) -> str:
    """The card's Markdown text; `source` and `versions` are what the manifest will record."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    config = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
    model_cfg = dict(config.get("model") or {})
    name = model_cfg.pop("name", metrics.get("model"))
    model_cfg.pop("description", None)
    lines = [f"# Model card: {name} on {metrics.get('dataset')}", ""]
    lines += [
        "Generated with the run from its own files (metrics.json, config.yaml, predictions.parquet, "
        "reliability.csv, importance.csv). Validation figures are optimistic (early stopping, threshold "
        "and calibration were chosen on them); test figures are the honest ones.",
        "",
        "## Data",
        "",
        f"- source: {source.get('source')}, file: {source.get('file') or '(built in memory)'}",
        f"- SHA-256: `{source.get('sha256')}`",
        f"- split seed: {metrics.get('split_seed')}, fold: {metrics.get('fold')}",
        "",
    ]
    rows = metrics.get("rows", {})
    lines += _table(
        ["split", "rows", "bad rate"],
        [[s, rows.get(s, ""), f"{bad_rates[s]:.3f}" if s in bad_rates else ""] for s in rows],
    )
    lines += ["", "## Model", ""]
    lines += _fitting(name, metrics, config)
    lines += [
        f"- decision threshold: {metrics.get('threshold'):.4f} ({metrics.get('threshold_method')}); "
        f"post-hoc calibration: {metrics.get('calibration') or 'none'}",
        "",
    ]
    lines += _table(["hyperparameter", "value"], [[k, f"`{v}`"] for k, v in model_cfg.items()])
    lines += ["", "## Performance", ""]
    lines += _performance(run_dir, metrics)
    lines += ["", "## Calibration", ""]
    lines += _calibration(run_dir, metrics)
    lines += ["", "## Main fields", ""]
    lines += _fields(run_dir)
    lines += ["", "## Warnings", ""]
    warnings = metrics.get("warnings") or []
    lines += [f"- {w}" for w in warnings] if warnings else ["none"]
    if metrics.get("fairness"):
        from zoo.fairness.report import section_markdown

        lines += ["", "## Fairness", ""]
        lines += section_markdown(metrics["fairness"])
    lines += ["", "## Software", ""]
    lines += [f"- {k} {v}" for k, v in versions.items()]
    return "\n".join(lines) + "\n"


def _fitting(name: str, metrics: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """How the model was fitted: the model's own account (`fit` in metrics.json, from a model its
    library fits: trees, iterations, early stopping) or the gradient-descent recipe of the config."""
    if metrics.get("fit"):
        return [
            f"- model: `{name}`, seed {metrics.get('seed')}",
            f"- fitted in {metrics.get('fit_seconds')} s: {metrics['fit']}",
        ]
    optimizer = (config.get("optim") or {}).get("optimizer", {}).get("_target_", "n/a")
    monitor = (config.get("early_stopping") or {}).get("monitor")
    return [
        f"- model: `{name}`, {metrics.get('n_parameters')} parameters, seed {metrics.get('seed')}",
        f"- fitted in {metrics.get('fit_seconds')} s over {metrics.get('epochs')} epochs; "
        f"best checkpoint `{metrics.get('best_checkpoint')}`",
        f"- optimiser: `{optimizer}`; early stopping on {monitor}",
    ]


def _performance(run_dir: Path, metrics: dict[str, Any]) -> list[str]:
    predictions = pd.read_parquet(run_dir / PREDICTIONS_FILE)
    names = [n for n in metrics.get("test", {}) if isinstance(metrics["test"][n], int | float)]
    intervals: dict[str, dict[str, str]] = {}
    for split in ("val", "test"):
        part = predictions[predictions["split"] == split]
        y, prob = part["label"].to_numpy(np.float64), part["prob"].to_numpy(np.float64)
        cis: dict[str, tuple] = {}
        if 0 < y.mean() < 1:
            auc = _auc_ci(y, prob)
            if auc is not None:
                cis["auc"] = auc[1:]
            cis.update(bootstrap_cis(y, prob, float(metrics["threshold"])))
        intervals[split] = {k: f" [{lo:.3f}, {hi:.3f}]" for k, (lo, hi) in cis.items()}
    rows = [
        [n, *(f"{metrics[s][n]:.4f}{intervals[s].get(n, '')}" for s in ("val", "test") if s in metrics)]
        for n in names
    ]
    out = _table(["metric", "validation", "test"], rows)
    return out + [
        "",
        f"{LEVEL:.0%} intervals: AUC from `zoo.stats.auc_ci`; brier, logloss, accuracy, precision and "
        f"recall from {BOOTSTRAP} bootstrap resamples of the split's rows; none shown for the others.",
    ]


def _calibration(run_dir: Path, metrics: dict[str, Any]) -> list[str]:
    lines = [
        f"Expected calibration error (test): {metrics.get('test', {}).get('ece', float('nan')):.4f}.",
        "",
    ]
    path = run_dir / RELIABILITY_FILE
    if not path.is_file():
        return lines
    table = pd.read_csv(path)
    test = table[table["split"] == "test"] if "split" in table else table
    cols = [c for c in test.columns if c != "split"]
    lines += _table(cols, [[_fmt(v) for v in row] for row in test[cols].itertuples(index=False)])
    return lines


def _fields(run_dir: Path, top: int = 10) -> list[str]:
    from zoo.explain.importance import IMPORTANCE_FILE

    path = run_dir / IMPORTANCE_FILE
    if not path.is_file():
        return ["(no importance.csv)"]
    table = pd.read_csv(path)
    lines = []
    for method, part in table.groupby("method", sort=False):
        lines += [f"{method}:", ""]
        part = part.head(top)
        rows = [
            [int(r), f, _fmt(v), _fmt(s)]
            for r, f, v, s in part[["rank", "field", "importance", "std"]].values
        ]
        lines += _table(["rank", "field", "importance", "std"], rows) + [""]
    return lines


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "" if np.isnan(value) else f"{value:.4g}"
    return str(value)


def write_model_card(
    run_dir: Path, *, source: dict[str, Any], bad_rates: dict[str, float], versions: dict[str, str]
) -> Path:
    text = model_card(run_dir, source=source, bad_rates=bad_rates, versions=versions)
    return write_text(Path(run_dir) / MODEL_CARD_FILE, text)
