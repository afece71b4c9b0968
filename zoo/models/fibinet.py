"""FiBiNET (Huang et al. 2019): SENET field importance plus bilinear feature interactions.

    E -> SENET -> V;  p = Bilinear(E), q = Bilinear(V);  y = sigmoid(w0 + sum_i w_i x_i + DNN([p, q]))
(Eqs. 3-11: the deep model, whose output adds the linear term). The bilinear type ("field_all",
"field_each", "field_interaction") is configurable; the default "field_interaction" is the
paper's best on both of its datasets (Table 5). SENET uses the paper's ReLU gate and ratio 3;
sizes default to the reference implementation's (DeepCTR: embedding 8, MLP 256-128).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel
from zoo.nn import (
    MLP,
    SENET,
    BilinearInteraction,
    FieldTokens,
    FirstOrder,
    embed_flat,
    flat_width,
    make_numeric_embedding,
)


class FiBiNET(CreditModel):
    """FiBiNET: bilinear interactions of raw and SENET-re-weighted embeddings, then an MLP."""

    family = "interaction"

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        d_embedding: int = 8,
        reduction_ratio: int = 3,
        bilinear_type: str = "field_interaction",
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.2,
        numeric_tokens: bool = False,
        numeric_embedding: str | None = None,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        spec = self.feature_spec
        self.first_order = FirstOrder(spec.cardinalities, spec.n_numeric)
        # CHOICE: numerics join the MLP's input directly, as in the reference implementation
        # (DeepCTR); `numeric_tokens` makes each one a field token of SENET and the bilinear layer
        # instead. The paper's data (Criteo, Avazu) has its numerics discretised into fields.
        self.numeric_tokens = numeric_tokens
        self.numeric_embedding = numeric_embedding
        bins = spec.numeric_bins(numeric_embedding)
        self.tokens = FieldTokens(
            spec.cardinalities,
            spec.n_numeric if numeric_tokens else 0,
            d_embedding,
            numeric_embedding=numeric_embedding,
            bins=bins if numeric_tokens else None,
        )
        # Numerics that are not tokens join the deep part, as encoded or embedded.
        self.embed_numeric = (
            None
            if numeric_tokens
            else make_numeric_embedding(numeric_embedding, spec.n_numeric, d_embedding, bins=bins)
        )
        f = self.tokens.n_fields
        # NOTE: a single field has no pair: the combination layer is empty and the MLP reads the
        # embedding itself, so the model stays defined (the paper assumes many fields).
        self.n_pairs = f * (f - 1) // 2
        paired = f if self.n_pairs else 0  # no SENET without pairs: its weights would get no gradient
        kind: Any = bilinear_type
        self.senet = SENET(paired, reduction_ratio=reduction_ratio, gate="relu")
        self.bilinear = BilinearInteraction(paired, d_embedding, kind=kind)
        self.bilinear_reweighted = BilinearInteraction(paired, d_embedding, kind=kind)
        d_in = 2 * self.n_pairs * d_embedding if self.n_pairs else f * d_embedding
        d_in += 0 if numeric_tokens else flat_width(self.embed_numeric, spec.n_numeric)
        self.deep = MLP(d_in, list(hidden), dropout=dropout, d_out=1)

    def forward(self, batch: Batch) -> torch.Tensor:
        x_cat, x_num = batch["x_cat"], batch["x_num"]
        e = self.tokens(x_cat, x_num if self.numeric_tokens else x_num[:, :0])
        if self.n_pairs:
            e = torch.cat([self.bilinear(e), self.bilinear_reweighted(self.senet(e))], dim=1)
        combined = e.flatten(1)
        if not self.numeric_tokens:
            combined = torch.cat([combined, embed_flat(self.embed_numeric, x_num)], dim=1)
        return self.first_order(x_cat, x_num) + self.deep(combined).squeeze(-1)
