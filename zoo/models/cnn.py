"""CNN baseline of the AFCC paper: a 1-D convolutional network over the fields read as a sequence.

"Adaptive Feature Cross-Compression for Credit Default Prediction" (IEEE Access 2023) compares
AFCC with a CNN (Table 2: Adam, learning rate 1e-3) and gives nothing more. Here a row is a
sequence of L = m + n field tokens t_1..t_L (d = 16): the m categorical embeddings in spec order,
then the n numeric tokens x_j w_j + b_j in x_num's order (missing indicators included). Then

    h^(k) = ReLU(Conv1d_k(h^(k-1))),   h^(0) = [t_1..t_L],   kernel 3, 64 channels, k = 1, 2
    z = [max_l h^(2)_l, mean_l h^(2)_l]                       (global max and mean pooling)
    logit = MLP(z)                                            (64 hidden, ReLU, dropout 0.2)

Convolutions are zero-padded to keep the length, so a single field is a valid sequence. Where the
paper is silent, the choice is marked "CHOICE" here and listed in docs/models/sequence.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel
from zoo.nn import MLP, FieldEmbedding, numeric_tokens


class CNN(CreditModel):
    """CNN: 1-D convolutions over the field tokens, global max and mean pooling, an MLP head."""

    family = "sequence"

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        d_embedding: int = 16,
        channels: Sequence[int] = (64, 64),
        kernel_size: int = 3,
        hidden: Sequence[int] = (64,),
        dropout: float = 0.2,
        numeric_embedding: str | None = None,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        if d_embedding < 1:
            raise ValueError(f"d_embedding={d_embedding}, expected a positive integer")
        if not channels or any(int(c) < 1 for c in channels):
            raise ValueError(f"channels={list(channels)}, expected one or more positive widths")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size}, expected an odd positive integer")
        spec = self.feature_spec
        if spec.n_categorical + spec.n_numeric == 0:
            raise ValueError("the feature spec has no fields, expected at least one to make a sequence")
        # The sequence: categorical fields in spec order, then numeric fields (x_num's columns).
        self.token_names = (*(f.name for f in spec.categorical), *spec.numeric_names)
        self.embed = FieldEmbedding(spec.cardinalities, d_embedding)
        # CHOICE: numeric tokens carry a bias per field (x_j w_j + b_j, as FT-Transformer's
        # tokenizer): the shared kernels and the global pooling know a field only by its token,
        # and without b_j a value at the training mean (or a missing one) would be the zero token.
        self.numeric_embedding = numeric_embedding
        self.tokenize = numeric_tokens(
            numeric_embedding, spec.n_numeric, d_embedding, bins=spec.numeric_bins(numeric_embedding)
        )
        layers: list[nn.Module] = []
        width = d_embedding
        for c in (int(c) for c in channels):
            # CHOICE: zero "same" padding, so the length is kept and one field is a valid sequence.
            layers += [nn.Conv1d(width, c, kernel_size, padding=kernel_size // 2), nn.ReLU()]
            width = c
        self.conv = nn.Sequential(*layers)
        # CHOICE: max and mean pooling concatenated, then an MLP (64 hidden, ReLU, dropout 0.2).
        self.head = MLP(2 * width, list(hidden), dropout=dropout, d_out=1)

    def tokens(self, batch: Batch) -> torch.Tensor:
        """The field tokens in sequence order (`token_names`): [B, L, d]."""
        return torch.cat([self.embed(batch["x_cat"]), self.tokenize(batch["x_num"])], dim=1)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """The convolutional feature map of a token sequence: [B, L, d] -> [B, channels, L]."""
        return self.conv(tokens.transpose(1, 2))

    def forward(self, batch: Batch) -> torch.Tensor:
        features = self.features(self.tokens(batch))
        pooled = torch.cat([features.amax(dim=2), features.mean(dim=2)], dim=1)
        return self.head(pooled).squeeze(-1)
