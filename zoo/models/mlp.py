"""Multi-layer perceptron over categorical embeddings and numerics (the papers' DNN baseline)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel
from zoo.nn import MLP, FieldEmbedding, embed_flat, flat_width, make_numeric_embedding


class DNN(CreditModel):
    """MLP (default 256-128-64, ReLU) over categorical embeddings and encoded numerics.

    `dnn_cross` (DNN+Cross) is this class with `use_crosses: true` in its config;
    `numeric_embedding` (null, linear, periodic, piecewise_linear) embeds each numeric first.
    """

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        hidden: Sequence[int] = (256, 128, 64),
        d_embedding: int = 8,
        dropout: float = 0.2,
        use_crosses: bool = False,
        numeric_embedding: str | None = None,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        spec = self.feature_spec
        self.use_crosses = use_crosses
        self.embed = FieldEmbedding(spec.cardinalities, d_embedding)
        self.embed_crosses = FieldEmbedding(spec.cross_cardinalities if use_crosses else [], d_embedding)
        n_fields = spec.n_categorical + (spec.n_crosses if use_crosses else 0)
        # Numerics enter as they are, or through a learned embedding (Gorishniy et al. 2022):
        # piecewise-linear on the training quantiles the spec carries, or periodic.
        self.numeric_embedding = numeric_embedding
        self.embed_numeric = make_numeric_embedding(
            numeric_embedding, spec.n_numeric, d_embedding, bins=spec.numeric_bins(numeric_embedding)
        )
        d_numeric = flat_width(self.embed_numeric, spec.n_numeric)
        self.mlp = MLP(n_fields * d_embedding + d_numeric, list(hidden), dropout=dropout, d_out=1)

    def forward(self, batch: Batch) -> torch.Tensor:
        parts = [self.embed(batch["x_cat"]).flatten(1), embed_flat(self.embed_numeric, batch["x_num"])]
        if self.use_crosses:
            parts.append(self.embed_crosses(batch["x_cross"]).flatten(1))
        return self.mlp(torch.cat(parts, dim=1)).squeeze(-1)
