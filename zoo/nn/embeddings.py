"""Categorical-field layers: a shared embedding table and the one-hot logistic-regression term."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _check_cardinalities(cardinalities: Sequence[int]) -> list[int]:
    """Each field's cardinality, which counts the reserved missing (0) and unseen (1) indices."""
    values = [int(c) for c in cardinalities]
    if any(c < 2 for c in values):
        raise ValueError(f"cardinalities={values}, expected integers >= 2 (indices 0 and 1 are reserved)")
    return values


def _field_offsets(cardinalities: Sequence[int]) -> torch.Tensor:
    """Where each field starts in a table that stacks all fields: [0, c0, c0 + c1, ...]."""
    return torch.tensor([0, *cardinalities[:-1]], dtype=torch.long).cumsum(0)


def _check_n_fields(x: torch.Tensor, n_fields: int) -> None:
    if x.ndim != 2 or x.shape[1] != n_fields:
        raise ValueError(f"x.shape={tuple(x.shape)}, expected [batch, {n_fields}]")


#: The initial scale of categorical embeddings, N(0, 0.05^2).
EMBEDDING_STD = 0.05


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
        self.cardinalities = tuple(_check_cardinalities(cardinalities))
        self.n_fields = len(self.cardinalities)
        self.d_embedding = d_embedding
        self.register_buffer("offsets", _field_offsets(self.cardinalities))
        self.embedding = None
        if self.n_fields:
            self.embedding = nn.Embedding(sum(self.cardinalities), d_embedding)
            nn.init.normal_(self.embedding.weight, std=EMBEDDING_STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_n_fields(x, self.n_fields)
        if self.embedding is None:
            return torch.zeros(x.shape[0], 0, self.d_embedding, device=x.device)
        return self.embedding(x + self.offsets)


class OneHotLinear(nn.Module):
    """Logistic-regression term over one-hot categoricals: sum of one weight per (field, value).

    Equivalent to a linear layer over the one-hot encoding, without materialising it. The table is
    a plain [sum(cardinalities), 1] parameter, not an nn.Embedding: these are coefficients to decay.
    """

    offsets: torch.Tensor
    weight: nn.Parameter | None

    def __init__(self, cardinalities: Sequence[int]) -> None:
        super().__init__()
        self.cardinalities = tuple(_check_cardinalities(cardinalities))
        self.n_fields = len(self.cardinalities)
        self.register_buffer("offsets", _field_offsets(self.cardinalities))
        if self.n_fields:
            self.weight = nn.Parameter(torch.zeros(sum(self.cardinalities), 1))
        else:
            self.register_parameter("weight", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_n_fields(x, self.n_fields)
        if self.weight is None:
            return torch.zeros(x.shape[0], device=x.device)
        return F.embedding(x + self.offsets, self.weight).sum(dim=(1, 2))

    def field_weights(self) -> list[torch.Tensor]:
        """One weight vector per field, indexed like the field's categories (0 missing, 1 unseen)."""
        if self.weight is None:
            return []
        return list(self.weight[:, 0].split(self.cardinalities))
