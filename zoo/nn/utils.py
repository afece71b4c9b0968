"""Small tensor helpers shared by the models."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def select(x: torch.Tensor, index: Sequence[int]) -> torch.Tensor:
    """Columns `index` of x (a no-op when all columns are wanted in order)."""
    if list(index) == list(range(x.shape[1])):
        return x
    return x[:, list(index)]
