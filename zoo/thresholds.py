"""The decision threshold of a run: a fixed number, or Youden's J on the validation split."""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.metrics import youden_threshold


def choose_threshold(setting: Any, val_probs: np.ndarray, val_labels: np.ndarray) -> tuple[float, str]:
    """The threshold `setting` asks for and how it was chosen ("fixed" or "youden")."""
    if isinstance(setting, str):
        if setting != "youden":
            raise ZooError(f"threshold={setting!r}, expected a number in [0, 1] or 'youden'")
        return youden_threshold(val_probs, val_labels), "youden"
    value = float(setting)
    if not 0.0 <= value <= 1.0:
        raise ZooError(f"threshold={value}, expected a number in [0, 1] or 'youden'")
    return value, "fixed"


def check_threshold(setting: Any) -> None:
    """Refuse a bad `threshold` setting before any work."""
    choose_threshold(setting, np.array([0.2, 0.8]), np.array([0, 1]))
