"""Factorisation machine (Rendle 2010): a linear model plus factorised pairwise interactions.

    y = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j        (Rendle 2010, Eq. 1)
Categorical fields are one-hot, so x_i = 1 for the row's value of each field: the linear term is
one weight per (field, value) and v_i that value's embedding. A numeric field j enters as w_j x_j
and as the token x_j v_j (`NumericTokenizer` without bias), as in Rendle's real-valued features;
`first_order="piecewise_linear"` puts a piecewise-linear f_j(x_j) over the saved bins in place of
w_j x_j (the zoo's default, chosen on the benchmark suite).
"""

from __future__ import annotations

from typing import Any

import torch

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel
from zoo.nn import EMBEDDING_STD, FieldTokens, FirstOrder, FMInteraction


class FM(CreditModel):
    """Factorisation machine: linear term plus sum_{i<j} <v_i, v_j> x_i x_j over all fields."""

    family = "interaction"

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        d_embedding: int = 4,
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

    def forward(self, batch: Batch) -> torch.Tensor:
        x_cat, x_num = batch["x_cat"], batch["x_num"]
        return self.first_order(x_cat, x_num) + self.interaction(self.tokens(x_cat, x_num))
