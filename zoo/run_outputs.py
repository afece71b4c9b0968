"""What a fitted run writes: predictions of the validation and test splits, post-hoc calibration,
the threshold, metrics.json, reliability, preprocessing, the monitoring reference, explanations,
and last the manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from zoo.calibration import fit_calibrator, plot_reliability, reliability_table
from zoo.config_targets import plain
from zoo.data.preprocess import library_versions
from zoo.explain import write_explanations
from zoo.fairness import add_fairness
from zoo.fitting import Fitted
from zoo.manifest import write_manifest
from zoo.metrics import compute_metrics
from zoo.monitor import write_reference as write_monitor_reference
from zoo.outputs import (
    CALIBRATION_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    PREPROCESSING_FILE,
    RELIABILITY_FILE,
    write_csv,
    write_json,
    write_parquet,
)
from zoo.points import write_score
from zoo.thresholds import choose_threshold

#: Keys of the run config an experiment adds to metrics.json for its reports, copied as they are.
EXPERIMENT_KEYS = ("experiment_metrics", "experiment_charts", "experiment_tradeoff")


@torch.no_grad()
def predict_split(model: pl.LightningModule, dm: Any, split: str) -> dict[str, np.ndarray]:
    """Probabilities, labels and row ids of one split, in row order."""
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    for i, batch in enumerate(dm.loader(split)):
        out = model.predict_step(batch, i)
        for key, value in out.items():
            value = value.detach()
            if value.is_floating_point():  # probabilities as float32; row ids and labels keep their type
                value = value.float()
            parts.setdefault(key, []).append(value.cpu().numpy())
    return {key: np.concatenate(values) for key, values in parts.items()}


def write_run(cfg: DictConfig, fitted: Fitted, dm: Any, run_dir: Path) -> dict[str, Any]:
    """Score the validation and test splits with the fitted model and write every output of the
    run, the manifest last; returns what metrics.json holds."""
    model = fitted.model
    predictions = {split: predict_split(model, dm, split) for split in ("val", "test")}
    uncalibrated = None
    if cfg.get("calibration"):
        # Fitted on validation rows only: test metrics stay honest (validation ones are optimistic).
        calibrator = fit_calibrator(cfg.calibration, predictions["val"]["prob"], predictions["val"]["y"])
        uncalibrated = {s: compute_metrics(p["prob"], p["y"]) for s, p in predictions.items()}
        for pred in predictions.values():
            pred["prob"] = calibrator.transform(pred["prob"]).astype(np.float32)
        write_json(run_dir / CALIBRATION_FILE, calibrator.to_dict())
    threshold, method = choose_threshold(cfg.threshold, predictions["val"]["prob"], predictions["val"]["y"])
    data = cfg.data
    result: dict[str, Any] = {
        "model": cfg.model.name,
        "dataset": dm.dataset_name,
        "seed": int(cfg.seed),
        "fold": int(data.fold) if data.n_folds or data.get("fold_column") else None,
        "split_seed": dm.split_seed,
        "experiment": cfg.get("experiment_name"),
        "threshold": threshold,
        "threshold_method": method,
        "fit_seconds": round(fitted.seconds, 3),
        "epochs": fitted.epochs,
        "best_checkpoint": fitted.checkpoint.relative_to(run_dir).as_posix(),
        "rows": dm.rows(),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "warnings": dm.warnings,  # the data guards' findings (zoo/data/guards.py)
    }
    fit_description = getattr(model, "fit_description", None)
    if callable(fit_description):  # a model fitted by its library: trees, iterations, early stopping
        result["fit"] = fit_description()
    if fitted.pruned_at_epoch is not None:
        result["pruned_at_epoch"] = fitted.pruned_at_epoch
    for split, pred in predictions.items():
        result[split] = compute_metrics(pred["prob"], pred["y"], threshold=threshold)
    describe = getattr(model, "split_summary", None)
    if callable(describe):  # model-specific figures per split, e.g. a rule set's size and coverage
        for split in predictions:
            result[split].update(describe(dm.loader(split)))
    result["calibration"] = cfg.get("calibration")
    if uncalibrated is not None:
        result["uncalibrated"] = uncalibrated  # at threshold 0.5, before post-hoc calibration
    for key in EXPERIMENT_KEYS:
        if cfg.get(key):
            result[key] = list(cfg[key])
    if cfg.get("reference"):
        result["reference"] = plain(cfg.reference)

    write_parquet(run_dir / PREDICTIONS_FILE, predictions_frame(predictions, dm.ids))
    write_monitor_reference(run_dir, dm, predictions)  # what `zoo monitor` compares new files with
    write_reliability(run_dir, predictions, title=f"{cfg.model.name} on {dm.dataset_name}, test split")
    write_json(run_dir / PREPROCESSING_FILE, {**dm.preprocessor.to_dict(), **dm.schema()})
    artifacts = getattr(model, "write_artifacts", None)
    if callable(artifacts):
        artifacts(run_dir, dm)
    write_score(run_dir, model, cfg)  # score.json (points scaling) and scorecard.csv/.md in points
    add_fairness(result, cfg, dm, predictions)  # dataset.protected: fair-lending metrics (test)
    write_json(run_dir / METRICS_FILE, result)
    write_explanations(run_dir, model, dm, cfg)  # importance, partial dependence, model card
    write_manifest(run_dir, data=dm.source, versions=library_versions())
    return result


def write_reliability(run_dir: Path, predictions: dict[str, dict[str, np.ndarray]], *, title: str) -> None:
    """`reliability.csv` (10 bins per split: predicted vs observed bad rate) and a PNG of the test split."""
    tables = [
        reliability_table(pred["prob"], pred["y"], n_bins=10).assign(split=split)
        for split, pred in predictions.items()
    ]
    write_csv(run_dir / RELIABILITY_FILE, pd.concat(tables, ignore_index=True))
    plot_reliability(tables[-1], run_dir / "reliability.png", title=title)


def predictions_frame(
    predictions: dict[str, dict[str, np.ndarray]], ids: dict[str, np.ndarray]
) -> pd.DataFrame:
    """Validation and test rows: split, row (position in the input file), id, label, probability."""
    parts = []
    for split, pred in predictions.items():
        part = pd.DataFrame(
            {
                "split": split,
                "row": pred["row"].astype(np.int64),
                "label": pred["y"].astype(np.int8),
                "prob": pred["prob"].astype(np.float32),
            }
        )
        if split in ids:
            part.insert(2, "id", ids[split])
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame["split"] = frame["split"].astype("category")
    return frame
