"""Building the Lightning `Trainer` of a gradient-trained run: checkpoints, early stopping,
pruning, logger, compile, and the optimiser recipe the model calls."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from zoo.base_rate import StartAtBaseRate
from zoo.config_targets import build_from_config, plain
from zoo.errors import ZooError
from zoo.optim import Recipe
from zoo.pruning import pruning_callbacks
from zoo.resume import AtomicCheckpointIO, ResumeState

#: What every model logs each validation epoch, and which way is better: early stopping and
#: checkpoints can watch either.
MONITORED = {"val/loss": "min", "val/auc": "max"}
#: trainer.compile: false (eager), or a torch.compile mode; reduce-overhead adds CUDA graphs on GPU.
COMPILE_MODES = (False, "default", "reduce-overhead", "max-autotune")
MLFLOW = "pytorch_lightning.loggers.MLFlowLogger"


def monitor_mode(stop: Any) -> str:
    """The early-stopping mode: it follows from the metric; an explicit one must agree."""
    monitor = str(stop.monitor)
    if monitor not in MONITORED:
        raise ZooError(f"early_stopping.monitor={monitor!r}, expected one of {', '.join(MONITORED)}")
    mode = stop.get("mode")
    if mode is not None and mode != MONITORED[monitor]:
        raise ZooError(
            f"early_stopping.mode={mode!r} contradicts monitor {monitor!r}, which is better when "
            f"{'lower' if MONITORED[monitor] == 'min' else 'higher'}; set mode to "
            f"{MONITORED[monitor]!r} or leave it null"
        )
    return MONITORED[monitor]


def patience_epochs(stop: Any, steps_per_epoch: int, *, full_batch: bool = False) -> int:
    """Patience in validation epochs, never shorter than `patience_steps` optimiser steps: a
    1,000-row set (a few steps an epoch) and a 1M-row set both get room to improve. A
    full-batch optimiser (L-BFGS) solves to convergence every epoch: plain epochs then."""
    if full_batch:
        return int(stop.patience)
    return max(int(stop.patience), -(-int(stop.get("patience_steps", 0)) // max(1, steps_per_epoch)))


def build_recipe(cfg: DictConfig) -> Recipe:
    """The optimiser and schedule of `cfg.optim`, as a `Recipe` the model calls."""
    optim = cfg.optim
    optimizer = build_from_config(optim.optimizer, "optim.optimizer")
    scheduler = build_from_config(optim.scheduler, "optim.scheduler") if optim.get("scheduler") else None
    stop = cfg.early_stopping
    return Recipe(optimizer, scheduler, monitor=str(stop.monitor), monitor_mode=monitor_mode(stop))


def progress_bar(value: Any) -> bool:
    """`enable_progress_bar: null` shows Lightning's bar on a terminal only (not in logs or CI)."""
    if value is not None:
        return bool(value)
    return sys.stderr.isatty() and not os.environ.get("CI")


def logger_paths(logger_cfg: Any, run_dir: Path) -> dict[str, str]:
    """Where an experiment logger writes: under the run directory (`save_dir`). MLflow without a
    `tracking_uri`: a SQLite store `mlflow.db` there, artifacts in `mlflow_artifacts/` (MLflow 3
    refuses to start a file store, and SQLite alone would put artifacts in the working directory)."""
    paths = {"save_dir": str(run_dir)}
    if logger_cfg.get("_target_") == MLFLOW and not logger_cfg.get("tracking_uri"):
        paths["tracking_uri"] = f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"
        if not logger_cfg.get("artifact_location"):
            paths["artifact_location"] = str((run_dir / "mlflow_artifacts").resolve())
    return paths


def build_trainer(
    cfg: DictConfig, run_dir: Path, model: pl.LightningModule, steps_per_epoch: int
) -> tuple[pl.Trainer, pl.callbacks.ModelCheckpoint]:
    """The run's Trainer and its checkpoint callback (best by the monitored metric, and last)."""
    stop = cfg.early_stopping
    mode = monitor_mode(stop)
    checkpoint = pl.callbacks.ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor=stop.monitor,
        mode=mode,
        save_top_k=1,
        save_last=True,  # checkpoints/last.ckpt: where `resume=<run dir>` continues from
        enable_version_counter=False,  # one best.ckpt per run directory, never best-v1.ckpt
    )
    callbacks: list[pl.Callback] = [
        checkpoint,
        pl.callbacks.EarlyStopping(
            monitor=stop.monitor,
            mode=mode,
            patience=patience_epochs(stop, steps_per_epoch, full_batch=bool(cfg.optim.get("full_batch"))),
            min_delta=stop.min_delta,
        ),
    ]
    if cfg.get("start_at_base_rate", False):  # absent from configs saved before it existed
        callbacks.append(StartAtBaseRate())
    callbacks.append(ResumeState())  # generators and shuffle order, for a bitwise resume
    callbacks += pruning_callbacks(cfg)  # a trial of an Optuna sweep: report each epoch, stop when pruned
    logger: Any = False
    logger_cfg = cfg.get("logger")
    if logger_cfg and logger_cfg.get("_target_"):
        logger = build_from_config(logger_cfg, "logger", **logger_paths(logger_cfg, run_dir))
    trainer_kwargs = dict(plain(cfg.trainer))
    trainer_kwargs["enable_progress_bar"] = progress_bar(trainer_kwargs.get("enable_progress_bar"))
    compile_mode = trainer_kwargs.pop("compile", None) or False  # torch.compile of forward
    if compile_mode not in COMPILE_MODES:
        expected = ", ".join(map(str, COMPILE_MODES))
        raise ZooError(f"trainer.compile={compile_mode!r}, expected one of {expected}")
    if compile_mode:
        model.compile(mode=None if compile_mode == "default" else compile_mode)
    if cfg.optim.get("gradient_clip") is not None and model.automatic_optimization:
        trainer_kwargs["gradient_clip_val"] = float(cfg.optim.gradient_clip)
    try:
        trainer = pl.Trainer(
            **trainer_kwargs,
            callbacks=callbacks,
            logger=logger,
            default_root_dir=str(run_dir),
            plugins=[AtomicCheckpointIO()],
        )
    except (TypeError, ValueError, MisconfigurationException) as err:
        raise ZooError(f"trainer config: {str(err).strip().splitlines()[0]}") from None
    return trainer, checkpoint
