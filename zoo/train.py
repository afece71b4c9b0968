"""`zoo-train`: a thin Hydra app around `train(cfg) -> result`, which sweepers and tests call."""

from __future__ import annotations

import inspect
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from zoo import registry
from zoo.data.datamodule import CreditDataModule
from zoo.data.preprocess import library_versions
from zoo.errors import ZooError
from zoo.manifest import write_manifest
from zoo.metrics import METRIC_NAMES, compute_metrics, youden_threshold
from zoo.outputs import (
    CONFIG_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    PREPROCESSING_FILE,
    discard_run_dir,
    write_json,
    write_parquet,
    write_text,
)

log = logging.getLogger(__name__)

#: Targets that configs may name for `hydra.utils.instantiate` (Hydra 1.4's execution allowlist).
TRUSTED_TARGETS = ["pytorch_lightning.loggers.*", "pytorch_lightning.callbacks.*", "zoo.*"]


def config_dir() -> Path:
    """`conf/` inside the installed package (wheel), or beside it in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise RuntimeError(f"credit-zoo configs not found beside {here}")


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg


def model_class(model_cfg: Any) -> type:
    """The registered class a model config names."""
    name = model_cfg.get("name")
    if not name:
        raise ZooError("model.name is not set; choose one with model=<name>")
    return registry.get(str(name))


def build_model(model_cfg: Any, feature_spec: Any) -> pl.LightningModule:
    """Construct the registered model class with the config's hyperparameters."""
    hparams = dict(_plain(model_cfg))
    cls = model_class(model_cfg)
    name = hparams.pop("name")
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", "feature_spec")]
    for key in hparams:
        if key not in accepted:
            raise ZooError(
                f"model.{key} is not a hyperparameter of {name!r}; expected one of: {', '.join(accepted)}"
            )
    try:
        return cls(feature_spec=feature_spec, **hparams)
    except (ValueError, TypeError) as err:
        raise ZooError(f"model {name!r}: {err}") from None


def _threshold(cfg_value: Any, val_probs: np.ndarray, val_labels: np.ndarray) -> tuple[float, str]:
    if isinstance(cfg_value, str):
        if cfg_value != "youden":
            raise ZooError(f"threshold={cfg_value!r}, expected a number in [0, 1] or 'youden'")
        return youden_threshold(val_probs, val_labels), "youden"
    value = float(cfg_value)
    if not 0.0 <= value <= 1.0:
        raise ZooError(f"threshold={value}, expected a number in [0, 1] or 'youden'")
    return value, "fixed"


@torch.no_grad()
def predict(model: pl.LightningModule, dm: CreditDataModule, split: str) -> dict[str, np.ndarray]:
    """Probabilities, labels and row ids of one split, in row order."""
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    for i, batch in enumerate(dm.loader(split)):
        out = model.predict_step(batch, i)
        for key, value in out.items():
            parts.setdefault(key, []).append(value.detach().float().cpu().numpy())
    return {key: np.concatenate(values) for key, values in parts.items()}


MONITORED = ("val/auc", "val/loss")
"""What every model logs each validation epoch: early stopping and checkpoints can watch either."""


def check_settings(cfg: DictConfig) -> None:
    """Reject bad run settings (threshold, early stopping, optimised metric) before any work."""
    _threshold(cfg.threshold, np.array([0.2, 0.8]), np.array([0, 1]))
    stop = cfg.early_stopping
    if stop.monitor not in MONITORED:
        raise ZooError(f"early_stopping.monitor={stop.monitor!r}, expected one of {', '.join(MONITORED)}")
    mode = str(stop.get("mode", "max"))
    if mode not in ("min", "max"):
        raise ZooError(f"early_stopping.mode={mode!r}, expected 'max' (AUC-like) or 'min' (loss-like)")
    split, _, metric = str(cfg.optimized_metric).partition("/")
    if split not in ("val", "test") or metric not in METRIC_NAMES:
        raise ZooError(
            f"optimized_metric={cfg.optimized_metric!r}, expected val/<metric> (or test/<metric>) "
            f"with a metric among {', '.join(METRIC_NAMES)}"
        )


def _trainer(cfg: DictConfig, run_dir: Path) -> tuple[pl.Trainer, pl.callbacks.ModelCheckpoint]:
    from hydra.utils import execution_whitelist as allow
    from hydra.utils import instantiate

    stop = cfg.early_stopping
    mode = str(stop.get("mode", "max"))
    checkpoint = pl.callbacks.ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="best", monitor=stop.monitor, mode=mode, save_top_k=1
    )
    callbacks: list[pl.Callback] = [
        checkpoint,
        pl.callbacks.EarlyStopping(
            monitor=stop.monitor, mode=mode, patience=stop.patience, min_delta=stop.min_delta
        ),
    ]
    logger: Any = False
    logger_cfg = cfg.get("logger")
    if logger_cfg and logger_cfg.get("_target_"):
        with allow(TRUSTED_TARGETS):
            logger = instantiate(logger_cfg, save_dir=str(run_dir))
    trainer_kwargs = dict(_plain(cfg.trainer))
    try:
        trainer = pl.Trainer(
            **trainer_kwargs, callbacks=callbacks, logger=logger, default_root_dir=str(run_dir)
        )
    except (TypeError, ValueError) as err:
        raise ZooError(f"trainer config: {err}") from None
    return trainer, checkpoint


def train(cfg: DictConfig, run_dir: Path | str | None = None) -> dict[str, Any]:
    """Train one model on one dataset and write metrics.json, predictions and the checkpoint.

    Returns the result written to metrics.json; `result["val"]["auc"]` is what sweeps optimise.
    """
    if run_dir is None:
        from hydra.core.hydra_config import HydraConfig

        run_dir = HydraConfig.get().runtime.output_dir
    run_dir = Path(run_dir)
    check_settings(cfg)
    threshold_cfg = cfg.threshold
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    data = cfg.data
    model_cls = model_class(cfg.model)
    dm = CreditDataModule(
        cfg.dataset,
        batch_size=data.batch_size,
        eval_batch_size=data.eval_batch_size,
        split=data.split,
        n_folds=data.n_folds,
        fold=data.fold,
        seed=int(cfg.seed),
        split_seed=data.get("split_seed"),
        raw_values=bool(getattr(model_cls, "uses_raw_values", False)),
    )
    dm.build()
    model = build_model(cfg.model, dm.feature_spec)
    trainer, checkpoint = _trainer(cfg, run_dir)

    started = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    fit_seconds = time.perf_counter() - started
    if not trainer.is_global_zero:
        return {}

    best_path = checkpoint.best_model_path
    if not best_path:
        # Models that take no optimiser steps (a booster fitted once) never trigger the callback.
        best_path = str(run_dir / "checkpoints" / "best.ckpt")
        trainer.save_checkpoint(best_path)
    if best_path:
        device = trainer.strategy.root_device
        model = model_cls.load_from_checkpoint(best_path, map_location=device, weights_only=True)
    predictions = {split: predict(model, dm, split) for split in ("val", "test")}
    threshold, method = _threshold(threshold_cfg, predictions["val"]["prob"], predictions["val"]["y"])
    result: dict[str, Any] = {
        "model": cfg.model.name,
        "dataset": dm.dataset_name,
        "seed": int(cfg.seed),
        "fold": int(data.fold) if data.n_folds else None,
        "experiment": cfg.get("experiment_name"),
        "threshold": threshold,
        "threshold_method": method,
        "fit_seconds": round(fit_seconds, 3),
        "epochs": int(trainer.current_epoch),
        "best_checkpoint": str(Path(best_path).relative_to(run_dir)) if best_path else None,
        "rows": dm.rows(),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
    }
    for split, pred in predictions.items():
        result[split] = compute_metrics(pred["prob"], pred["y"], threshold=threshold)
    if cfg.get("experiment_metrics"):
        result["experiment_metrics"] = list(cfg.experiment_metrics)
    if cfg.get("reference"):
        result["reference"] = _plain(cfg.reference)

    write_parquet(run_dir / PREDICTIONS_FILE, predictions_frame(predictions, dm.ids))
    write_json(run_dir / PREPROCESSING_FILE, {**dm.preprocessor.to_dict(), **dm.schema()})
    write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))
    artifacts = getattr(model, "write_artifacts", None)
    if callable(artifacts):
        artifacts(run_dir)
    write_json(run_dir / METRICS_FILE, result)
    write_manifest(run_dir, data=dm.source, versions=library_versions())
    return result


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


def format_table(result: dict[str, Any]) -> str:
    """Validation and test metrics side by side, for the terminal."""
    names = list(result["test"])
    lines = [
        f"{result['model']} on {result['dataset']} (seed {result['seed']}, "
        f"threshold {result['threshold']:.3f} {result['threshold_method']})",
        f"{'metric':<10} {'val':>8} {'test':>8}",
    ]
    for name in names:
        val, test = result["val"][name], result["test"][name]
        lines.append(f"{name:<10} {val:>8.4f} {test:>8.4f}")
    return "\n".join(lines)


def _hydra_app() -> Any:
    import hydra

    @hydra.main(
        config_path=str(config_dir()),
        config_name="config",
        execution_whitelist=TRUSTED_TARGETS,
    )
    def run(cfg: DictConfig) -> float:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        before = {entry.name for entry in run_dir.iterdir()} if run_dir.is_dir() else set()
        framework = {str(hydra_cfg.output_subdir), f"{hydra_cfg.job.name}.log"}
        try:
            result = train(cfg, run_dir)
        except ZooError as err:
            # Bad input: remove what the run wrote. Anything else (a crash, Ctrl-C, pre-emption)
            # keeps the run directory: its checkpoints hold the training done so far.
            discard_run_dir(run_dir, before, framework)
            print(f"error: {err}", file=sys.stderr)
            if hydra_cfg.mode == RunMode.MULTIRUN:
                raise  # Hydra records the job as failed and the sweep goes on with the others
            sys.exit(2)
        if not result:
            return float("nan")
        print(format_table(result))
        print(f"run directory: {run_dir}")
        split, _, metric = str(cfg.optimized_metric).partition("/")
        return float(result[split][metric])

    return run


def main() -> None:
    """Console entry point: register plugin configs, then hand over to Hydra."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    registry.store_configs(config_dir())
    _hydra_app()()


if __name__ == "__main__":
    main()
