"""The multilayer perceptron shared by the deep models."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """Linear -> (BatchNorm) -> activation -> (dropout) blocks; `d_out` adds a final linear `head`.

    Layers are named `linear{i}`, `norm{i}`, `activation{i}`, `dropout{i}` and `head` inside `net`.
    """

    def __init__(
        self,
        d_in: int,
        hidden: Sequence[int],
        *,
        dropout: float = 0.0,
        d_out: int | None = None,
        batch_norm: bool = False,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        if d_in < 1:
            raise ValueError(f"d_in={d_in}, expected a positive integer")
        if any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden={list(hidden)}, expected positive layer widths")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout={dropout}, expected 0 <= dropout < 1")
        if d_out is not None and d_out < 1:
            raise ValueError(f"d_out={d_out}, expected a positive integer or None")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        width = d_in
        for i, h in enumerate(int(h) for h in hidden):
            layers[f"linear{i}"] = nn.Linear(width, h)
            if batch_norm:
                layers[f"norm{i}"] = nn.BatchNorm1d(h)
            layers[f"activation{i}"] = activation()
            if dropout:
                layers[f"dropout{i}"] = nn.Dropout(dropout)
            width = h
        if d_out is not None:
            layers["head"] = nn.Linear(width, d_out)
            width = d_out
        self.net = nn.Sequential(layers)
        self.d_in = d_in
        self.d_out = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
