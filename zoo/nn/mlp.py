"""The multilayer perceptron shared by the deep models, and per-feature linear layers."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from zoo.nn.norm import OneRowBatchNorm1d


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
                layers[f"norm{i}"] = OneRowBatchNorm1d(h)
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


class FeatureWiseLinear(nn.Module):
    """n independent linear layers, one per feature, at once: [B, n, d_in] -> [B, n, d_out].

    rtdl's NLinear; stacked with activations it gives each feature an MLP of its own (the shape
    functions of a neural additive model). With no features there are no parameters.
    """

    weight: nn.Parameter | None
    bias: nn.Parameter | None

    def __init__(self, n_features: int, d_in: int, d_out: int, *, bias: bool = True) -> None:
        super().__init__()
        if n_features < 0:
            raise ValueError(f"n_features={n_features}, expected an integer >= 0")
        if d_in < 1 or d_out < 1:
            raise ValueError(f"d_in={d_in}, d_out={d_out}, expected positive integers")
        self.n_features = n_features
        self.d_in = d_in
        self.d_out = d_out
        bound = 1 / math.sqrt(d_in)  # nn.Linear's default initialisation, per feature
        self.weight = self.bias = None  # no parameters without features: unused ones break DDP
        if n_features:
            self.weight = nn.Parameter(torch.empty(n_features, d_in, d_out).uniform_(-bound, bound))
        if n_features and bias:
            self.bias = nn.Parameter(torch.empty(n_features, d_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1:] != (self.n_features, self.d_in):
            raise ValueError(f"x.shape={tuple(x.shape)}, expected [batch, {self.n_features}, {self.d_in}]")
        if self.weight is None:
            return x.new_zeros(x.shape[0], 0, self.d_out)
        out = torch.einsum("bni,nio->bno", x, self.weight)
        return out if self.bias is None else out + self.bias
