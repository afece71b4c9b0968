"""Building blocks shared by the models: embeddings, one-hot linear terms, MLPs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn


class FieldEmbedding(nn.Module):
    """One embedding table for several categorical fields: int64[B, k] -> float[B, k, d].

    The fields share a single table with per-field offsets, which is one lookup instead of k.
    With no fields there is no table at all: a parameter that never gets a gradient breaks DDP.
    """

    offsets: torch.Tensor
    embedding: nn.Embedding | None

    def __init__(self, cardinalities: Sequence[int], d_embedding: int) -> None:
        super().__init__()
        if d_embedding < 1:
            raise ValueError(f"d_embedding={d_embedding}, expected a positive integer")
        offsets = torch.tensor([0, *list(cardinalities)[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets if len(cardinalities) else torch.zeros(0, dtype=torch.long))
        self.embedding = None
        if len(cardinalities):
            self.embedding = nn.Embedding(int(sum(cardinalities)), d_embedding)
            nn.init.normal_(self.embedding.weight, std=0.05)
        self.n_fields = len(cardinalities)
        self.d_embedding = d_embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embedding is None:
            return torch.zeros(x.shape[0], 0, self.d_embedding, device=x.device)
        return self.embedding(x + self.offsets)


class OneHotLinear(nn.Module):
    """Logistic-regression term over one-hot categoricals: sum of one weight per (field, value).

    Equivalent to a linear layer over the one-hot encoding, without materialising it.
    """

    def __init__(self, cardinalities: Sequence[int]) -> None:
        super().__init__()
        self.weights = FieldEmbedding(cardinalities, 1)
        if self.weights.embedding is not None:
            nn.init.zeros_(self.weights.embedding.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weights.embedding is None:
            return torch.zeros(x.shape[0], device=x.device)
        return self.weights(x).sum(dim=(1, 2))

    def field_weights(self) -> list[torch.Tensor]:
        """One weight vector per field, indexed like the field's categories (0 missing, 1 unseen)."""
        if self.weights.embedding is None:
            return []
        table = self.weights.embedding.weight[:, 0]
        starts = cast(torch.Tensor, self.weights.offsets).tolist()
        cardinalities = [b - a for a, b in zip(starts, [*starts[1:], table.shape[0]], strict=True)]
        return [table[start : start + n] for start, n in zip(starts, cardinalities, strict=True)]


class MLP(nn.Module):
    """Linear -> activation -> dropout blocks; `d_out` adds a final linear layer."""

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
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout={dropout}, expected 0 <= dropout < 1")
        if any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden={list(hidden)}, expected positive layer widths")
        layers: list[nn.Module] = []
        width = d_in
        for h in hidden:
            layers.append(nn.Linear(width, int(h)))
            if batch_norm:
                layers.append(nn.BatchNorm1d(int(h)))
            layers.append(activation())
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        if d_out is not None:
            layers.append(nn.Linear(width, d_out))
            width = d_out
        self.net = nn.Sequential(*layers)
        self.d_out = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def select(x: torch.Tensor, index: Sequence[int]) -> torch.Tensor:
    """Columns `index` of x (a no-op when all columns are wanted in order)."""
    if list(index) == list(range(x.shape[1])):
        return x
    return x[:, list(index)]
