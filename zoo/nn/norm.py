"""Normalisation layers: BatchNorm that also trains on a batch of one row (`data.batch_size=1`, a
ragged last batch), and the choice between it, LayerNorm and no normalisation by name."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OneRowBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d that normalises a training batch holding one value per channel by its running
    statistics, left unchanged, where plain BatchNorm1d raises (a single value has no batch
    variance). Same parameters and buffers as BatchNorm1d, so checkpoints load either way."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.numel() == x.shape[1] and self.running_mean is not None:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps
            )
        return super().forward(x)


NORMALIZATIONS = ("batch", "layer", "none")


def make_norm(kind: str, width: int) -> nn.Module:
    """`batch` (OneRowBatchNorm1d: statistics over the batch), `layer` (LayerNorm: over each row's
    features, so training and scoring normalise a row alike) or `none` (the identity)."""
    if kind == "batch":
        return OneRowBatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"normalization={kind!r}, expected one of {list(NORMALIZATIONS)}")
