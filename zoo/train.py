"""`train(cfg) -> result`: one model on one dataset, from config to a sealed run directory; what
`zoo-train` (zoo/app.py), sweeps, benchmarks and tests call."""

from __future__ import annotations

import inspect
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from zoo import registry
from zoo.config_targets import plain
from zoo.data.datamodule import CreditDataModule
from zoo.data.sources import DATASET_DEFAULTS
from zoo.errors import ZooError
from zoo.fitting import Fitted, fit, fit_record, refitted
from zoo.models.base import CreditModel
from zoo.outputs import CONFIG_FILE, OBJECTIVE_FILE, discard_run_dir, write_json, write_text
from zoo.resume import ResumePoint, Terminated, keep_logs
from zoo.run_checks import check_settings
from zoo.run_outputs import write_run
from zoo.run_state import (
    check_new_run_dir,
    check_place,
    child_rank,
    framework_entries,
    read_record,
    run_lock,
    write_state,
)
from zoo.trainer import build_recipe


def config_dir() -> Path:
    """`conf/` inside the installed package (wheel), or beside it in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise RuntimeError(f"credit-zoo configs not found beside {here}")


def model_class(model_cfg: Any) -> type:
    """The registered class a model config names."""
    name = model_cfg.get("name")
    if not name:
        raise ZooError("model.name is not set; choose one with model=<name>")
    return registry.get(str(name))


def build_model(model_cfg: Any, feature_spec: Any) -> CreditModel:
    """Construct the registered model class with the config's hyperparameters."""
    hparams = dict(plain(model_cfg))
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


def build_datamodule(cfg: DictConfig, model_cls: type) -> CreditDataModule:
    """The run's DataModule, built (read, split, preprocessed on training rows)."""
    data = cfg.data
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
    return dm


def train(
    cfg: DictConfig, run_dir: Path | str | None = None, *, resume: ResumePoint | None = None
) -> dict[str, Any]:
    """Train one model on one dataset into a new run directory, which it seals with a manifest.

    Returns the result written to metrics.json; `result["val"]["auc"]` is what sweeps optimise.
    `resume`: where an interrupted run in `run_dir` continues (`zoo.resume.resume_point`). The
    run's state (`state.json`) follows it: training, then finished, failed or interrupted.
    """
    if run_dir is None:
        from hydra.core.hydra_config import HydraConfig

        run_dir = HydraConfig.get().runtime.output_dir
    run_dir = Path(run_dir)
    check_settings(cfg)
    if child_rank():  # a DDP worker: rank 0 owns the run directory and its record
        return _train(cfg, run_dir, resume)
    check_place(run_dir)
    with run_lock(run_dir):  # first: a second writer is told the directory is in use
        framework = framework_entries()
        if resume is None:
            check_new_run_dir(run_dir, framework)
        write_state(run_dir, "training")
        try:
            result = _train(cfg, run_dir, resume)
        except ZooError:
            if resume is None:  # bad input: a refused run leaves nothing behind
                discard_run_dir(run_dir, framework, framework)
            else:  # the interrupted run stays as it was, to be resumed once the input is right
                _interrupted(run_dir)
            raise
        except (Terminated, KeyboardInterrupt) as err:
            _interrupted(run_dir)
            raise Terminated(
                f"{err or 'interrupted'}; continue it with: zoo-train resume={run_dir}"
            ) from None
        except BaseException as err:
            with suppress(OSError):  # a full disk may refuse the record too; the error still shows
                write_state(
                    run_dir, "failed", error=(str(err).strip().splitlines() or [type(err).__name__])[0]
                )
            raise
        write_state(run_dir, "finished")  # after the manifest that seals the run
    return result


def _interrupted(run_dir: Path) -> None:
    """Record the run as interrupted, keeping the record of a fit that had ended (resume then
    writes its outputs alone)."""
    fitted = read_record(run_dir).get("fitted")
    with suppress(OSError):
        write_state(run_dir, "interrupted", **({"fitted": fitted} if fitted else {}))


def _train(cfg: DictConfig, run_dir: Path, resume: ResumePoint | None) -> dict[str, Any]:
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    model_cls = model_class(cfg.model)
    dm = build_datamodule(cfg, model_cls)
    model = build_model(cfg.model, dm.feature_spec)
    model.recipe = build_recipe(cfg)
    checkpoint = resume.checkpoint if resume is not None else None
    if checkpoint is not None:
        keep_logs(run_dir)  # before the logger starts: Lightning's CSV logger deletes its old file
    # The resolved config first: an interrupted run is resumed with exactly this config. Left-out
    # preprocessing keys are written out, so it says what the run used whatever the defaults become.
    with open_dict(cfg):
        for key, default in DATASET_DEFAULTS.items():
            cfg.dataset.setdefault(key, default)
    write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))
    fitted: Fitted | None
    if resume is not None and resume.fitted is not None:  # the fit had ended: write the outputs
        fitted = refitted(resume.fitted, model_cls, run_dir, cfg)
    else:
        fitted = fit(cfg, model, dm, run_dir, resume_from=checkpoint)
    if fitted is None:  # not global rank 0: rank 0 writes the run's outputs
        return {}
    write_state(run_dir, "training", fitted=fit_record(fitted, run_dir))
    return write_run(cfg, fitted, dm, run_dir)


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


if __name__ == "__main__":  # `python -m zoo.train ...`, as `zoo-train ...`
    from zoo.app import main

    main()
