"""`train(cfg) -> result`: one model on one dataset, from config to a sealed run directory; what
`zoo-train` (zoo/app.py), sweeps, benchmarks and tests call."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from zoo import registry
from zoo.config_targets import plain
from zoo.data.datamodule import CreditDataModule
from zoo.errors import ZooError
from zoo.fitting import fit
from zoo.models.base import CreditModel
from zoo.outputs import CONFIG_FILE, OBJECTIVE_FILE, write_json, write_text
from zoo.resume import keep_logs
from zoo.run_checks import check_settings
from zoo.run_outputs import write_run
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
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    dm = build_datamodule(cfg, model_class(cfg.model))
    model = build_model(cfg.model, dm.feature_spec)
    model.recipe = build_recipe(cfg)
    if resume_from is not None:
        keep_logs(run_dir)  # before the logger starts: Lightning's CSV logger deletes its old file
    # The resolved config first: an interrupted run is resumed with exactly this config.
    write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))
    fitted = fit(cfg, model, dm, run_dir, resume_from=resume_from)
    if fitted is None:  # not global rank 0: rank 0 writes the run's outputs
        return {}
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
