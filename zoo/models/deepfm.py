"""DeepFM (Guo et al. 2017): an FM and an MLP sharing one embedding per field, summed in one logit.

    y = sigmoid(y_FM + y_DNN)        (Guo et al. 2017, Eq. 1)
y_FM is the factorisation machine (linear term plus pairwise inner products); y_DNN an MLP over
the concatenated field embeddings. Sizes default to the reference implementation's (DeepCTR:
embedding 8, MLP 256-128); the paper's (section 3.2.1: 10, 400-400-400, dropout 0.5) over-fit
credit sets of a few thousand rows (docs/models/interaction.md). `first_order` as in `FM`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel
from zoo.nn import EMBEDDING_STD, MLP, FieldTokens, FirstOrder, FMInteraction


class DeepFM(CreditModel):
    """DeepFM: an FM and an MLP over the same field embeddings, logits summed."""

    family = "interaction"

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        d_embedding: int = 8,
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.2,
        numeric_embedding: str | None = None,
        first_order: str = "linear",
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        spec = self.feature_spec
        self.first_order = FirstOrder(
            spec.cardinalities, spec.n_numeric, numeric=first_order, bins=spec.numeric_bins(first_order)
        )
        self.numeric_embedding = numeric_embedding
        self.tokens = FieldTokens(
            spec.cardinalities,
            spec.n_numeric,
            d_embedding,
            numeric_embedding=numeric_embedding,
            bins=spec.numeric_bins(numeric_embedding),
            numeric_init_std=EMBEDDING_STD,  # token products enter the logit: start them small
        )
        self.interaction = FMInteraction()
        self.deep = MLP(self.tokens.n_fields * d_embedding, list(hidden), dropout=dropout, d_out=1)

    def forward(self, batch: Batch) -> torch.Tensor:
        tokens = self.tokens(batch["x_cat"], batch["x_num"])
        y_fm = self.first_order(batch["x_cat"], batch["x_num"]) + self.interaction(tokens)
        return y_fm + self.deep(tokens.flatten(1)).squeeze(-1)
