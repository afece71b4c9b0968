"""`zoo-train`: a thin Hydra app around `train(cfg) -> result`, which sweepers and tests call."""

from __future__ import annotations

import inspect
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import MisconfigurationException, SIGTERMException

from zoo import registry
from zoo.calibration import fit_calibrator, plot_reliability, reliability_table
from zoo.data.datamodule import CreditDataModule
from zoo.data.preprocess import library_versions
from zoo.errors import ZooError
from zoo.expected_warnings import quiet_fit
from zoo.explain import write_explanations
from zoo.manifest import load_checkpoint, write_manifest
from zoo.metrics import METRIC_NAMES, compute_metrics, youden_threshold
from zoo.models.base import CreditModel
from zoo.optim import Recipe
from zoo.outputs import (
    CALIBRATION_FILE,
    CONFIG_FILE,
    FAILURES_DIR,
    METRICS_FILE,
    OBJECTIVE_FILE,
    PREDICTIONS_FILE,
    PREPROCESSING_FILE,
    RELIABILITY_FILE,
    discard_run_dir,
    write_csv,
    write_json,
    write_parquet,
    write_text,
)
from zoo.pruning import pruned_epoch, pruning_callbacks
from zoo.resume import (
    SIGTERM_EXIT,
    AtomicCheckpointIO,
    ResumeState,
    Terminated,
    keep_logs,
    resumable_checkpoint,
)
from zoo.settings import check_run_settings

log = logging.getLogger(__name__)

#: The classes and factories a run's config may name as `_target_` (in `logger` and `optim`), at any
#: depth: experiment loggers, torch's optimisers and schedules, the zoo's own (conf/optim/). Nothing
#: else: a config must not call project or library functions (delete a directory, write a file).
CONFIG_TARGETS = (
    *(f"pytorch_lightning.loggers.{name}" for name in ("CSVLogger", "TensorBoardLogger", "MLFlowLogger")),
    *(f"pytorch_lightning.loggers.{name}" for name in ("WandbLogger", "CometLogger")),
    *(
        f"torch.optim.{name}"
        for name, obj in vars(torch.optim).items()
        if inspect.isclass(obj)
        and issubclass(obj, torch.optim.Optimizer)
        and obj is not torch.optim.Optimizer
    ),
    *(
        f"torch.optim.lr_scheduler.{name}"
        for name, obj in vars(torch.optim.lr_scheduler).items()
        if inspect.isclass(obj)
        and issubclass(obj, torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau)
        and name not in ("LRScheduler", "_LRScheduler")
    ),
    *(f"zoo.optim.{name}" for name in ("adam", "lbfgs", "warmup_cosine", "one_cycle", "plateau")),
)
#: What Hydra itself may build from the `hydra:` section (sweep callbacks, the search-space hook).
HYDRA_TARGETS = ("zoo.sweeps.TrialRecorder", "zoo.sweeps.claim_trial")


def check_targets(node: Any, where: str) -> None:
    """Refuse any `_target_` in a config subtree (at any depth) that is not in `CONFIG_TARGETS`."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None and target not in CONFIG_TARGETS:
            raise ZooError(
                f"{where}._target_={target!r} is not something a config may build; allowed: Lightning "
                "loggers (CSVLogger, TensorBoardLogger, ...), torch.optim optimisers and schedules, "
                "zoo.optim factories (docs/configuration.md)"
            )
        for key, value in node.items():
            if key != "_target_":
                check_targets(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_targets(value, f"{where}[{i}]")


def build_from_config(node: Any, where: str, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate` of a checked config subtree, under an allowlist of exactly
    `CONFIG_TARGETS` (no outer allowlist adds to it)."""
    from hydra.utils import execution_whitelist as allow
    from hydra.utils import instantiate

    plain = _plain(node)
    check_targets(plain, where)
    try:
        with allow(list(CONFIG_TARGETS), reset=True):
            return instantiate(plain, **kwargs)
    except Exception as err:  # an unknown argument in a user's config
        raise ZooError(
            f"{where} config: {(str(err).strip().splitlines() or [type(err).__name__])[0]}"
        ) from None


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


def build_model(model_cfg: Any, feature_spec: Any) -> CreditModel:
    """Construct the registered model class with the config's hyperparameters."""
    hparams = dict(_plain(model_cfg))
    cls = model_class(model_cfg)
    name = hparams.pop("name")
    hparams.pop("description", None)  # what `zoo models` shows, not a hyperparameter
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
            value = value.detach()
            if value.is_floating_point():  # probabilities as float32; row ids and labels keep their type
                value = value.float()
            parts.setdefault(key, []).append(value.cpu().numpy())
    return {key: np.concatenate(values) for key, values in parts.items()}


#: What every model logs each validation epoch, and which way is better: early stopping and
#: checkpoints can watch either.
MONITORED = {"val/loss": "min", "val/auc": "max"}
CALIBRATION = (None, "platt", "isotonic")


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


def check_settings(cfg: DictConfig) -> None:
    """Reject bad run settings (threshold, early stopping, optimised metric, what the config would
    instantiate) before any work."""
    check_run_settings(cfg)  # types, unknown keys, sizes, epochs, the device (zoo/settings.py)
    _threshold(cfg.threshold, np.array([0.2, 0.8]), np.array([0, 1]))
    monitor_mode(cfg.early_stopping)
    for key in ("patience", "patience_steps"):
        value = cfg.early_stopping.get(key, 0)
        if not isinstance(value, int) or value < 0:
            raise ZooError(f"early_stopping.{key}={value!r}, expected an integer >= 0")
    if cfg.get("calibration") not in CALIBRATION:
        raise ZooError(f"calibration={cfg.calibration!r}, expected null, 'platt' or 'isotonic'")
    split, _, metric = str(cfg.optimized_metric).partition("/")
    if split not in ("val", "test") or metric not in METRIC_NAMES:
        raise ZooError(
            f"optimized_metric={cfg.optimized_metric!r}, expected val/<metric> (or test/<metric>) "
            f"with a metric among {', '.join(METRIC_NAMES)}"
        )
    if split == "test" and not cfg.get("allow_test_selection", False):
        raise ZooError(
            f"optimized_metric={cfg.optimized_metric!r} would choose hyperparameters on the test split; "
            f"use val/{metric}, or set allow_test_selection=true to do so knowingly"
        )
    for where in ("logger", "optim"):
        check_targets(_plain(cfg.get(where)), where)


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


def _progress_bar(value: Any) -> bool:
    """`enable_progress_bar: null` shows Lightning's bar on a terminal only (not in logs or CI)."""
    if value is not None:
        return bool(value)
    return sys.stderr.isatty() and not os.environ.get("CI")


MLFLOW = "pytorch_lightning.loggers.MLFlowLogger"


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


#: trainer.compile: false (eager), or a torch.compile mode; reduce-overhead adds CUDA graphs on GPU.
COMPILE_MODES = (False, "default", "reduce-overhead", "max-autotune")


def _trainer(
    cfg: DictConfig, run_dir: Path, model: pl.LightningModule, steps_per_epoch: int
) -> tuple[pl.Trainer, pl.callbacks.ModelCheckpoint]:
    stop = cfg.early_stopping
    mode = monitor_mode(stop)
    checkpoint = pl.callbacks.ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor=stop.monitor,
        mode=mode,
        save_top_k=1,
        save_last=True,  # checkpoints/last.ckpt: where `resume=<run dir>` continues from
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
    callbacks.append(ResumeState())  # generators and shuffle order, for a bitwise resume
    callbacks += pruning_callbacks(cfg)  # a trial of an Optuna sweep: report each epoch, stop when pruned
    logger: Any = False
    logger_cfg = cfg.get("logger")
    if logger_cfg and logger_cfg.get("_target_"):
        logger = build_from_config(logger_cfg, "logger", **logger_paths(logger_cfg, run_dir))
    trainer_kwargs = dict(_plain(cfg.trainer))
    trainer_kwargs["enable_progress_bar"] = _progress_bar(trainer_kwargs.get("enable_progress_bar"))
    compile_mode = (
        trainer_kwargs.pop("compile", None) or False
    )  # torch.compile of forward (docs/performance.md)
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


def train(
    cfg: DictConfig, run_dir: Path | str | None = None, *, resume_from: Path | None = None
) -> dict[str, Any]:
    """Train one model on one dataset and write metrics.json, predictions and the checkpoint.

    Returns the result written to metrics.json; `result["val"]["auc"]` is what sweeps optimise.
    `resume_from`: a last checkpoint of this run to continue from (zoo/resume.py).
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
        split_column=data.get("split_column"),
        fold_column=data.get("fold_column"),
        date_column=data.get("date_column"),
        drop_last=bool(data.get("drop_last", False)),
        raw_values=bool(getattr(model_cls, "uses_raw_values", False)),
    )
    dm.build()
    if cfg.optim.get("full_batch"):
        dm.batch_size = max(1, dm.rows()["train"])
    model = build_model(cfg.model, dm.feature_spec)
    model.recipe = build_recipe(cfg)
    if resume_from is not None:
        keep_logs(run_dir)  # before the logger starts: Lightning's CSV logger deletes its old file
    trainer, checkpoint = _trainer(cfg, run_dir, model, steps_per_epoch=len(dm.loader("train")))

    # The resolved config first: an interrupted run is resumed with exactly this config.
    write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))
    started = time.perf_counter()
    try:
        with quiet_fit(model):  # Lightning's warnings a zoo run expects (zoo/expected_warnings.py)
            trainer.fit(model, datamodule=dm, ckpt_path=resume_from, weights_only=True)
    except SIGTERMException:
        last = checkpoint.last_model_path
        where = f"the checkpoint of its last finished epoch ({last})" if last else "no checkpoint yet"
        raise Terminated(
            f"terminated by SIGTERM during epoch {trainer.current_epoch}; the run keeps {where}"
            + (f"; continue it with: zoo-train resume={run_dir}" if last else "")
        ) from None
    fit_seconds = time.perf_counter() - started
    if not trainer.is_global_zero:
        return {}

    best_path = checkpoint.best_model_path
    if not best_path:
        # Models that take no optimiser steps (a booster fitted once) never trigger the callback.
        best_path = str(run_dir / "checkpoints" / "best.ckpt")
        trainer.save_checkpoint(best_path, weights_only=False)  # full state, as the callback saves
    if best_path:
        device = trainer.strategy.root_device
        model = load_checkpoint(model_cls, best_path, map_location=device)
    predictions = {split: predict(model, dm, split) for split in ("val", "test")}
    uncalibrated = None
    if cfg.get("calibration"):
        # Fitted on validation rows only: test metrics stay honest (validation ones are optimistic).
        calibrator = fit_calibrator(cfg.calibration, predictions["val"]["prob"], predictions["val"]["y"])
        uncalibrated = {s: compute_metrics(p["prob"], p["y"]) for s, p in predictions.items()}
        for pred in predictions.values():
            pred["prob"] = calibrator.transform(pred["prob"]).astype(np.float32)
        write_json(run_dir / CALIBRATION_FILE, calibrator.to_dict())
    threshold, method = _threshold(threshold_cfg, predictions["val"]["prob"], predictions["val"]["y"])
    result: dict[str, Any] = {
        "model": cfg.model.name,
        "dataset": dm.dataset_name,
        "seed": int(cfg.seed),
        "fold": int(data.fold) if data.n_folds or data.get("fold_column") else None,
        "split_seed": dm.split_seed,
        "experiment": cfg.get("experiment_name"),
        "threshold": threshold,
        "threshold_method": method,
        "fit_seconds": round(fit_seconds, 3),
        "epochs": int(trainer.current_epoch),
        "best_checkpoint": str(Path(best_path).relative_to(run_dir)) if best_path else None,
        "rows": dm.rows(),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "warnings": dm.warnings,  # the data guards' findings (zoo/data/guards.py)
    }
    fit_description = getattr(model, "fit_description", None)
    if callable(fit_description):  # a model fitted by its library: trees, iterations, early stopping
        result["fit"] = fit_description()
    if pruned_epoch(trainer) is not None:
        result["pruned_at_epoch"] = pruned_epoch(trainer)
    for split, pred in predictions.items():
        result[split] = compute_metrics(pred["prob"], pred["y"], threshold=threshold)
    describe = getattr(model, "split_summary", None)
    if callable(describe):  # model-specific figures per split, e.g. a rule set's size and coverage
        for split in predictions:
            result[split].update(describe(dm.loader(split)))
    result["calibration"] = cfg.get("calibration")
    if uncalibrated is not None:
        result["uncalibrated"] = uncalibrated  # at threshold 0.5, before post-hoc calibration
    if cfg.get("experiment_metrics"):
        result["experiment_metrics"] = list(cfg.experiment_metrics)
    if cfg.get("experiment_charts"):
        result["experiment_charts"] = list(cfg.experiment_charts)
    if cfg.get("experiment_tradeoff"):
        result["experiment_tradeoff"] = list(cfg.experiment_tradeoff)
    if cfg.get("reference"):
        result["reference"] = _plain(cfg.reference)

    write_parquet(run_dir / PREDICTIONS_FILE, predictions_frame(predictions, dm.ids))
    write_reliability(run_dir, predictions, title=f"{cfg.model.name} on {dm.dataset_name}, test split")
    write_json(run_dir / PREPROCESSING_FILE, {**dm.preprocessor.to_dict(), **dm.schema()})
    artifacts = getattr(model, "write_artifacts", None)
    if callable(artifacts):
        artifacts(run_dir, dm)
    write_json(run_dir / METRICS_FILE, result)
    write_explanations(run_dir, model, dm, cfg)  # importance, partial dependence, model card
    write_manifest(run_dir, data=dm.source, versions=library_versions())
    return result


def objective_value(result: dict[str, Any], metric: str) -> float:
    """The value a sweeper gets for a run: `metric` (`val/auc`) from its result; NaN for a run an
    Optuna pruner stopped (the sweeper records it failed) or a rank other than 0."""
    if not result or result.get("pruned_at_epoch") is not None:
        return float("nan")
    split, _, name = metric.partition("/")
    return float(result[split][name])


def train_folds(cfg: DictConfig, run_dir: Path, folds: int) -> dict[str, Any]:
    """Train folds 0..folds-1 of a k-fold split one after another, each a complete run in
    `run_dir/fold<i>/`, and write `objective.json`: each fold's `optimized_metric` and their mean.

    Fold 0 alone reports to an Optuna pruner; when it is pruned the other folds are not trained
    and the mean is null (the trial's value NaN). Returns what `objective.json` holds.
    """
    from zoo.sweeps import fold_config

    metric = str(cfg.optimized_metric)
    record: dict[str, Any] = {"metric": metric, "folds": folds, "values": [], "mean": None, "run_dirs": []}
    for fold in range(folds):
        try:
            result = train(fold_config(cfg, folds, fold), run_dir / f"fold{fold}")
        except ZooError as err:
            raise ZooError(f"sweep.objective_folds={folds}, fold {fold}: {err}") from None
        if not result:
            continue  # not global rank 0: rank 0 writes the record
        record["values"].append(objective_value(result, metric))
        record["run_dirs"].append(f"fold{fold}")
        if result.get("pruned_at_epoch") is not None:
            record["pruned_at_fold"] = fold
            break
    if not record["values"]:
        return {}
    if "pruned_at_fold" not in record:
        record["mean"] = float(np.mean(record["values"]))
    write_json(run_dir / OBJECTIVE_FILE, record)
    return record


def format_folds(record: dict[str, Any]) -> str:
    """Each fold's optimised metric and their mean, for the terminal."""
    values = ", ".join(f"{v:.4f}" for v in record["values"])
    mean = "pruned" if record["mean"] is None else f"{record['mean']:.4f}"
    return f"{record['metric']} over {record['folds']} folds: {values}; mean {mean}"


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


def _cell(value: Any) -> str:
    """A metric right-aligned in 8 characters; a metric that cannot be computed (null) as n/a."""
    return f"{'n/a':>8}" if value is None else f"{value:>8.4f}"


def format_table(result: dict[str, Any]) -> str:
    """Validation and test metrics side by side, for the terminal."""
    names = list(result["test"])
    width = max(len("metric"), *map(len, names))  # a model's own figures have longer names (rule_coverage)
    lines = [
        f"{result['model']} on {result['dataset']} (seed {result['seed']}, "
        f"threshold {result['threshold']:.3f} {result['threshold_method']})",
        f"{'metric':<{width}} {'val':>8} {'test':>8}",
    ]
    for name in names:
        val, test = result["val"][name], result["test"][name]
        lines.append(f"{name:<{width}} {_cell(val)} {_cell(test)}")
    return "\n".join(lines)


def _resumed(
    cfg: DictConfig, run_dir: Path, overrides: list[str], *, multirun: bool
) -> tuple[DictConfig, Path]:
    """The saved config and last checkpoint of the interrupted run `resume=` names."""
    if multirun:
        raise ZooError("resume= continues one interrupted run; it cannot be part of a multirun (-m)")
    others = [o for o in overrides if not o.lstrip("+~").startswith(("resume=", "hydra."))]
    if others:
        raise ZooError(
            "resume= continues the run with its own saved config; drop the other overrides: "
            + " ".join(others)
        )
    last = resumable_checkpoint(Path(str(cfg.resume)))
    if Path(str(cfg.resume)).resolve() != run_dir.resolve():
        raise ZooError(f"resume={cfg.resume!r} but the run directory is {str(run_dir)!r}; drop hydra.run.dir")
    saved = OmegaConf.load(run_dir / CONFIG_FILE)
    assert isinstance(saved, DictConfig)
    log.info("resuming %s from %s", run_dir, last)
    return saved, last


def _failure_path(hydra_cfg: Any) -> Path:
    return Path(hydra_cfg.sweep.dir) / FAILURES_DIR / f"{Path(hydra_cfg.runtime.output_dir).name}.json"


def record_failure(hydra_cfg: Any, err: BaseException) -> None:
    """`<sweep dir>/failures/<job>.json`: why this job of a multirun failed (`zoo leaderboard` lists it)."""
    message = (str(err).strip().splitlines() or [type(err).__name__])[0]
    try:
        write_json(
            _failure_path(hydra_cfg),
            {
                "job": Path(hydra_cfg.runtime.output_dir).name,
                "overrides": list(hydra_cfg.overrides.task),
                "error": message,
                "type": type(err).__name__,
            },
        )
    except OSError as write_err:  # the failure itself matters more than its record
        log.warning("could not record the failure of %s: %s", hydra_cfg.runtime.output_dir, write_err)


def clear_failure(hydra_cfg: Any) -> None:
    """A job that now succeeds drops the failure record of an earlier attempt."""
    _failure_path(hydra_cfg).unlink(missing_ok=True)


def _hydra_app() -> Any:
    import hydra

    @hydra.main(
        config_path=str(config_dir()),
        config_name="config",
        execution_whitelist=list(HYDRA_TARGETS),
    )
    def run(cfg: DictConfig) -> float:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from zoo.sweeps import check_sweep_job, objective_folds

        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        before = {entry.name for entry in run_dir.iterdir()} if run_dir.is_dir() else set()
        framework = {str(hydra_cfg.output_subdir), f"{hydra_cfg.job.name}.log"}
        try:
            if multirun:
                check_sweep_job(cfg.trainer)
            folds = 1  # sweep.objective_folds: a run per fold and objective.json
            if cfg.get("resume"):
                cfg, last = _resumed(cfg, run_dir, list(hydra_cfg.overrides.task), multirun=multirun)
                result = train(cfg, run_dir, resume_from=last)
            elif (folds := objective_folds(cfg)) > 1:
                result = train_folds(cfg, run_dir, folds)
            else:
                result = train(cfg, run_dir)
        except ZooError as err:
            # Bad input: remove what the run wrote. Anything else (a crash, Ctrl-C, pre-emption)
            # keeps the run directory: its checkpoints hold the training done so far.
            discard_run_dir(run_dir, before, framework)
            print(f"error: {err}", file=sys.stderr)
            if multirun:
                record_failure(hydra_cfg, err)
                raise  # Hydra records the job as failed and the sweep goes on with the others
            sys.exit(2)
        except Terminated as err:
            print(f"error: {err}", file=sys.stderr)
            if multirun:
                record_failure(hydra_cfg, err)
            sys.exit(SIGTERM_EXIT)  # a kill is never a success, for schedulers and `&&` chains alike
        except Exception as err:
            if multirun:
                record_failure(hydra_cfg, err)
            raise
        if multirun:
            clear_failure(hydra_cfg)
        if not result:
            return float("nan")
        if folds > 1:
            print(format_folds(result))
            print(f"run directories: {run_dir}/fold<0..{folds - 1}>")
            return float("nan") if result["mean"] is None else float(result["mean"])
        print(format_table(result))
        print(f"run directory: {run_dir}")
        # NaN when pruned by Optuna: the sweeper records the trial as failed
        return objective_value(result, str(cfg.optimized_metric))

    return run


def main() -> None:
    """Console entry point: register plugin configs and the sweep resolvers, then hand over to Hydra."""
    from zoo.sweeps import register_resolvers

    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    registry.store_configs(config_dir(), only=registry.chosen_models(sys.argv[1:]))
    register_resolvers()
    _hydra_app()()


if __name__ == "__main__":
    main()
