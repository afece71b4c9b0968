"""AutoInt (Song et al. 2019): multi-head self-attention across field tokens, then one linear layer.

Every field is a token (categorical embedding, numeric x_j v_j; Eq. 2); 3 interacting layers
(Eqs. 5-8: 2 heads, residual connections, ReLU) map them to higher-order combinations, and the
output is y = sigmoid(w^T [e_1^Res, ..., e_M^Res] + b) (Eq. 9). Sizes follow the authors' code:
embedding 16, attention width 32 per head (64 for the 2 heads), unscaled dot products.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel
from zoo.nn import FieldAttention, FieldTokens


class AutoInt(CreditModel):
    """AutoInt: 3 residual multi-head self-attention layers over field tokens, flatten -> linear."""

    family = "interaction"

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        d_embedding: int = 16,
        n_layers: int = 3,
        n_heads: int = 2,
        d_attention: int = 64,
        residual: bool = True,
        dropout: float = 0.0,
        numeric_embedding: str | None = None,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        if n_layers < 1:
            raise ValueError(f"n_layers={n_layers}, expected a positive integer")
        spec = self.feature_spec
        self.numeric_embedding = numeric_embedding
        self.tokens = FieldTokens(
            spec.cardinalities,
            spec.n_numeric,
            d_embedding,
            numeric_embedding=numeric_embedding,
            bins=spec.numeric_bins(numeric_embedding),
        )
        widths = [d_embedding] + [d_attention] * n_layers
        layers = [
            FieldAttention(d, n_heads=n_heads, d_attention=d_attention, residual=residual, dropout=dropout)
            for d in widths[:-1]
        ]
        self.interacting = nn.Sequential(*layers)
        self.head = nn.Linear(self.tokens.n_fields * d_attention, 1)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.head(self.interacting(self.tokens(batch["x_cat"], batch["x_num"])).flatten(1)).squeeze(-1)
