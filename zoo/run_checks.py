"""Every check of a run's config before any work: typed settings (zoo/settings.py), threshold,
early stopping, calibration, the optimised metric, and what the config would build."""

from __future__ import annotations

from omegaconf import DictConfig

from zoo.config_targets import check_targets, plain
from zoo.errors import ZooError
from zoo.metrics import METRIC_NAMES
from zoo.settings import check_run_settings
from zoo.thresholds import check_threshold
from zoo.trainer import monitor_mode

CALIBRATION = (None, "platt", "isotonic")


def check_settings(cfg: DictConfig) -> None:
    """Reject bad run settings (threshold, early stopping, optimised metric, what the config would
    instantiate) before any work."""
    check_run_settings(cfg)  # types, unknown keys, sizes, epochs, the device (zoo/settings.py)
    check_threshold(cfg.threshold)
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
        check_targets(plain(cfg.get(where)), where)
