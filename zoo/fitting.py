"""Fitting a built model on its DataModule, by one of two paths:

- gradient steps in a Lightning `Trainer` (checkpoints, early stopping, pruning, resume);
- a direct fit, for a model fitted once by its own library (`fits_directly`: boosted trees,
  forests, rule sets): every training row at once, no epoch loop, then one checkpoint.

Either way the caller gets the best model back from its checkpoint, as `zoo predict` loads it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import MisconfigurationException, SIGTERMException

from zoo.config_targets import plain
from zoo.errors import ZooError
from zoo.expected_warnings import quiet_fit
from zoo.manifest import load_checkpoint
from zoo.models.base import CreditModel
from zoo.outputs import CHECKPOINT_FILE
from zoo.pruning import pruned_epoch
from zoo.resume import AtomicCheckpointIO, Terminated, lightning_handles_sigterm
from zoo.trainer import build_trainer

#: The trainer settings that say where a direct fit runs; the rest belong to the epoch loop.
PLACEMENT = ("accelerator", "devices", "num_nodes", "strategy", "precision")


@dataclass
class Fitted:
    """The best model, loaded from its checkpoint, and how the fit went."""

    model: CreditModel
    checkpoint: Path
    seconds: float
    epochs: int
    pruned_at_epoch: int | None = None


def fit_record(fitted: Fitted, run_dir: Path) -> dict[str, Any]:
    """How the fit went, for the run's state: what a resume needs to write the outputs alone."""
    return {
        "checkpoint": fitted.checkpoint.relative_to(run_dir).as_posix(),
        "seconds": fitted.seconds,
        "epochs": fitted.epochs,
        "pruned_at_epoch": fitted.pruned_at_epoch,
    }


def refitted(record: dict[str, Any], cls: type, run_dir: Path, cfg: DictConfig) -> Fitted:
    """The `Fitted` of a fit that ended before an interruption, from its record and checkpoint."""
    device, _ = placement(cfg.trainer)
    path = run_dir / str(record["checkpoint"])
    return Fitted(
        load_checkpoint(cls, path, map_location=device),
        path,
        float(record["seconds"]),
        int(record["epochs"]),
        record.get("pruned_at_epoch"),
    )


def fits_directly(cls: type) -> bool:
    """Whether a model class is fitted once by its own library rather than by gradient steps."""
    return bool(getattr(cls, "fits_directly", False))


def fit(
    cfg: DictConfig, model: CreditModel, dm: Any, run_dir: Path, *, resume_from: Path | None = None
) -> Fitted | None:
    """Fit `model` on `dm` as `cfg` says, writing checkpoints under `run_dir`; None on a process
    other than global rank 0 (it writes nothing else)."""
    if fits_directly(type(model)):
        return fit_directly_in_run(cfg, model, dm, run_dir)
    return fit_by_gradient(cfg, model, dm, run_dir, resume_from=resume_from)


def fit_by_gradient(
    cfg: DictConfig, model: CreditModel, dm: Any, run_dir: Path, *, resume_from: Path | None = None
) -> Fitted | None:
    """Lightning's epoch loop; the best checkpoint by the monitored metric is loaded back."""
    trainer, checkpoint = build_trainer(cfg, run_dir, model, steps_per_epoch=len(dm.loader("train")))
    started = time.perf_counter()
    try:
        # Lightning's warnings a zoo run expects (zoo/expected_warnings.py); its SIGTERM handling
        with quiet_fit(model), lightning_handles_sigterm():
            trainer.fit(model, datamodule=dm, ckpt_path=resume_from, weights_only=True)
    except SIGTERMException:
        last = checkpoint.last_model_path
        where = f"the checkpoint of its last finished epoch ({last})" if last else "no checkpoint yet"
        raise Terminated(
            f"terminated by SIGTERM during epoch {trainer.current_epoch}; the run keeps {where}"
        ) from None
    seconds = time.perf_counter() - started
    if not trainer.is_global_zero:
        return None
    best = checkpoint.best_model_path
    if not best:
        raise ZooError(
            f"model {cfg.model.name!r} finished {trainer.current_epoch} epochs without a validation "
            f"epoch, so there is no best checkpoint; expected trainer.limit_val_batches > 0"
        )
    loaded = load_checkpoint(type(model), best, map_location=trainer.strategy.root_device)
    return Fitted(loaded, Path(best), seconds, int(trainer.current_epoch), pruned_epoch(trainer))


def placement(trainer_cfg: Any) -> tuple[torch.device, int]:
    """The device and world size the run's trainer settings ask for, as Lightning resolves them."""
    kwargs = {k: v for k, v in dict(plain(trainer_cfg)).items() if k in PLACEMENT and v is not None}
    try:
        trainer = pl.Trainer(
            **kwargs,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
    except (TypeError, ValueError, MisconfigurationException) as err:
        raise ZooError(f"trainer config: {str(err).strip().splitlines()[0]}") from None
    return trainer.strategy.root_device, int(trainer.world_size)


def fit_directly_in_run(cfg: DictConfig, model: CreditModel, dm: Any, run_dir: Path) -> Fitted:
    """A direct fit under the run's settings: on the run's device, in this one process.

    CHOICE: more than one process is refused rather than fitted on every rank. The fit is one
    process's job (a library's own fit, not gradient steps to average); N ranks would repeat it
    N times on the same rows for nothing."""
    device, world = placement(cfg.trainer)
    if world > 1:
        raise ZooError(
            f"model {cfg.model.name!r} is fitted once on every training row, not trained across "
            f"processes: trainer world size is {world}, expected 1 (trainer.devices=1, trainer.num_nodes=1)"
        )
    started = time.perf_counter()
    with deterministic(bool(cfg.trainer.get("deterministic", False))):
        fit_directly(model.to(device), dm)
    seconds = time.perf_counter() - started
    path = run_dir / CHECKPOINT_FILE
    save_fitted(model, path)
    return Fitted(load_checkpoint(type(model), path, map_location=device), path, seconds, epochs=0)


@contextmanager
def deterministic(on: bool) -> Iterator[None]:
    """Deterministic torch kernels inside when `on` (what Lightning sets for a gradient fit with
    `trainer.deterministic`), the caller's setting restored outside."""
    before = torch.are_deterministic_algorithms_enabled()
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if on and torch.cuda.is_available() and workspace is None:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"  # what deterministic cuBLAS needs
    torch.use_deterministic_algorithms(on)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        if workspace is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def fit_directly(model: Any, dm: Any) -> Any:
    """Fit a direct-fit model once on every training and validation row of `dm`."""
    model.fit_datamodule(dm)
    return model


def save_fitted(model: pl.LightningModule, path: Path) -> Path:
    """A checkpoint of a directly fitted model in Lightning's format (weights, hyperparameters and
    the model's own `on_save_checkpoint` state), written atomically; `load_from_checkpoint` reads it."""
    checkpoint: dict[str, Any] = {
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": pl.__version__,
        "state_dict": model.state_dict(),
    }
    if model.hparams:
        if hasattr(model, "_hparams_name"):
            checkpoint[model.CHECKPOINT_HYPER_PARAMS_NAME] = model._hparams_name
        checkpoint[model.CHECKPOINT_HYPER_PARAMS_KEY] = dict(model.hparams)
    model.on_save_checkpoint(checkpoint)
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)
    return Path(path)
