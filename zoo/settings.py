"""The typed schema of `zoo-train`'s primary config, checked before a run writes anything.

Hydra composes `conf/config.yaml`; this schema then types every run-level setting (an integer
seed, positive batch sizes, ...) and refuses keys it does not know, so a misspelt or unknown
setting is one `error:` line instead of a setting silently ignored or a traceback mid-run.
Config groups (dataset, model, optim, trainer, logger) are checked by their own consumers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from zoo.errors import ZooError
from zoo.points import check_score_settings


@dataclass
class DataSettings:
    batch_size: int = 256
    eval_batch_size: int = 8192
    split: dict[str, float] = field(default_factory=lambda: {"train": 0.6, "val": 0.2, "test": 0.2})
    n_folds: int | None = None
    fold: int = 0
    split_seed: int | None = None
    split_column: str | None = None
    fold_column: str | None = None
    date_column: str | None = None
    drop_last: bool = False


@dataclass
class EarlyStopping:
    monitor: str = "val/loss"
    mode: str | None = None
    patience: int = 10
    patience_steps: int = 300
    min_delta: float = 0.0


@dataclass
class ScoreSettings:
    """Scores in points (zoo/points.py): base_points at good:bad odds base_odds, pdo to double them."""

    base_points: float = 600.0
    base_odds: float = 50.0
    pdo: float = 20.0


@dataclass
class RunSettings:
    """Every top-level key of the primary config; groups are free-form mappings here."""

    dataset: Any = None
    optim: Any = None
    model: Any = None
    trainer: Any = None
    logger: Any = None
    seed: int = 0
    data: DataSettings = field(default_factory=DataSettings)
    threshold: Any = 0.5
    calibration: str | None = None
    start_at_base_rate: bool = True
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    optimized_metric: str = "val/auc"
    allow_test_selection: bool = False
    resume: str | None = None
    explain: Any = None
    score: ScoreSettings = field(default_factory=ScoreSettings)
    sweep: Any = None
    ensemble: Any = None  # conf/ensemble/*.yaml: read by the callback that builds ensembles (zoo/ensemble/)
    experiment_name: str | None = None
    experiment_metrics: list[str] | None = None
    experiment_charts: list[str] | None = None
    experiment_tradeoff: list[str] | None = None
    reference: Any = None
    fairness: Any = None  # checked by zoo.fairness.settings


def _one_line(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None) or getattr(err, "key", None)
    value = getattr(err, "value", None) if hasattr(err, "value") else None
    message = str(getattr(err, "msg", err)).splitlines()[0]
    if "not in" in message and key:  # an unknown key
        return f"{key} is not a setting of zoo-train; see conf/config.yaml for the settings it takes"
    if key and value is not None:
        return f"{key}={value!r}: {message}"
    return f"{key}: {message}" if key else message


def typed(cfg: DictConfig) -> DictConfig:
    """`cfg` merged onto the schema: values coerced to their types, unknown keys refused."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    try:
        return OmegaConf.merge(OmegaConf.structured(RunSettings), plain)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        raise ZooError(_one_line(err)) from None


def check_ranges(cfg: DictConfig) -> None:
    """Bounds the types cannot say: sizes, counts, epochs, folds, the device asked for."""
    data = cfg.data
    for key in ("batch_size", "eval_batch_size"):
        if data[key] < 1:
            raise ZooError(f"data.{key}={data[key]}, expected a positive integer")
    if data.n_folds is not None:
        if data.n_folds < 2:
            raise ZooError(f"data.n_folds={data.n_folds}, expected an integer >= 2 (or null)")
        if not 0 <= data.fold < data.n_folds:
            raise ZooError(f"data.fold={data.fold}, expected 0 <= fold < n_folds={data.n_folds}")
    trainer = cfg.trainer or {}
    epochs = trainer.get("max_epochs")
    if epochs is not None and (not isinstance(epochs, int) or epochs == 0 or epochs < -1):
        raise ZooError(
            f"trainer.max_epochs={epochs!r}, expected a positive integer (or -1: until early stopping); "
            "0 epochs would save an untrained model as a finished run"
        )
    accelerator = str(trainer.get("accelerator", "cpu"))
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ZooError(
                f"trainer.accelerator={accelerator!r} but this machine has no usable CUDA device "
                "(torch.cuda.is_available() is False); use trainer=cpu"
            )


#: Seeds that numpy and `pytorch_lightning.seed_everything` accept.
SEED_RANGE = (0, 2**32 - 1)
#: Characters at most in `dataset.name`: it becomes part of a run directory's name, and a file
#: name has at most 255 bytes on common file systems.
MAX_NAME_CHARS = 100


def check_seeds(cfg: DictConfig) -> None:
    """`seed` and `data.split_seed` within what numpy and Lightning accept."""
    low, high = SEED_RANGE
    for key, value in (("seed", cfg.seed), ("data.split_seed", cfg.data.split_seed)):
        if value is not None and not low <= value <= high:
            raise ZooError(f"{key}={value}, expected an integer from {low} to {high} (2**32 - 1)")


def check_dataset_name(cfg: DictConfig) -> None:
    """`dataset.name` is part of the run directory's name: short, and one path component."""
    name = (cfg.dataset or {}).get("name")
    if name is None:
        return
    text = str(name)
    shown = repr(text) if len(text) <= 40 else f"{text[:20]!r}... ({len(text)} characters)"
    if not 1 <= len(text) <= MAX_NAME_CHARS:
        raise ZooError(
            f"dataset.name={shown}, expected 1 to {MAX_NAME_CHARS} characters "
            "(it becomes part of the run directory's name)"
        )
    if text in (".", "..") or any(c in text for c in "/\\\0"):
        raise ZooError(
            f"dataset.name={shown}, expected a name without '/', '\\' or NUL that is not '.' or '..' "
            "(it becomes part of the run directory's name)"
        )


def _numbers(value: Any, key: str) -> list[tuple[str, float]]:
    """Every float in a config value, with its dotted key (list items as key[i])."""
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _numbers(v, f"{key}.{k}")]
    if isinstance(value, list):
        return [pair for i, v in enumerate(value) for pair in _numbers(v, f"{key}[{i}]")]
    return [(key, value)] if isinstance(value, float) else []


def check_model(cfg: DictConfig) -> None:
    """The model's class imports (a plugin's import error is one line), its numbers are finite,
    and its learning rates positive."""
    model = OmegaConf.to_container(cfg.model, resolve=True) if OmegaConf.is_config(cfg.model) else cfg.model
    if not isinstance(model, dict):
        return
    for key, value in _numbers(model, "model"):
        rate = key.rsplit(".", 1)[-1].endswith("learning_rate")
        if not math.isfinite(value) or (rate and value <= 0):
            expected = "a finite number > 0" if rate else "a finite number"
            raise ZooError(f"{key}={value}, expected {expected}")
    name = model.get("name")
    if name not in (None, "???"):
        from zoo import registry

        registry.get(str(name))  # unknown, or fails to import: ZooError, one line


def check_fairness(cfg: DictConfig) -> None:
    """`dataset.protected` and `dataset.allow_protected` (lists, the allowed among the protected)
    and the `fairness:` block; whether each protected column exists is known when the data is read."""
    from zoo.fairness.settings import fairness_settings, protected_columns

    protected_columns(cfg.dataset or {})
    fairness_settings(cfg)


def check_run_settings(cfg: DictConfig) -> DictConfig:
    """The typed config after every run-level check; raises ZooError with one line."""
    settings = typed(cfg)
    check_ranges(settings)
    check_seeds(settings)
    check_dataset_name(settings)
    check_model(settings)
    check_fairness(settings)  # dataset.protected, allow_protected and the fairness: block
    check_score_settings(settings)  # pdo and base_odds > 0, finite numbers
    return settings
