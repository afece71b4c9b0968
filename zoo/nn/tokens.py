"""Whole-row layers of the interaction models: one token per field, and the first-order (linear) term."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.nn.embeddings import FieldEmbedding, OneHotLinear
from zoo.nn.numeric import NumericEmbedding, numeric_tokens


class FieldTokens(nn.Module):
    """One d-vector per field, categorical embeddings then numeric tokens x_j v_j: [B, m + n, d].

    Every field, categorical or numeric, is one token; a numeric token scales a learned vector by
    the value (FM, Rendle 2010; AutoInt, Song et al. 2019, Eq. 2), so a value at the training mean
    (and a missing one, imputed there) gives a zero token. `numeric_embedding` replaces those
    linear tokens by an embedding of Gorishniy et al. 2022 (`zoo.nn.numeric_tokens`).
    `numeric_init_std` starts the linear tokens at that scale (models whose token products enter
    the logit directly pass `EMBEDDING_STD`, the categorical embeddings' scale).
    """

    def __init__(
        self,
        cardinalities: Sequence[int],
        n_numeric: int,
        d_embedding: int,
        *,
        numeric_embedding: str | None = None,
        bins: Sequence[Sequence[float]] | None = None,
        numeric_init_std: float | None = None,
    ) -> None:
        super().__init__()
        self.embed = FieldEmbedding(cardinalities, d_embedding)
        self.tokenize = numeric_tokens(
            numeric_embedding, n_numeric, d_embedding, bins=bins, bias=False, init_std=numeric_init_std
        )
        self.n_fields = self.embed.n_fields + n_numeric
        self.d_embedding = d_embedding

    def forward(self, x_cat: torch.Tensor, x_num: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.embed(x_cat), self.tokenize(x_num)], dim=1)


FIRST_ORDER_KINDS = ("linear", "piecewise_linear")


class FirstOrder(nn.Module):
    """The linear term w0 + sum_i w_i x_i: one weight per categorical value, one per numeric: [B].

    `numeric="piecewise_linear"` (with `bins`, each numeric field's bin edges) puts a piecewise-linear
    function f_j(x_j) in place of w_j x_j: an additive term that can draw a step at a threshold, the
    piecewise-linear embedding (version B) of width 1 summed over fields.
    """

    def __init__(
        self,
        cardinalities: Sequence[int],
        n_numeric: int,
        *,
        numeric: str = "linear",
        bins: Sequence[Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        if numeric not in FIRST_ORDER_KINDS:
            raise ValueError(f"first_order={numeric!r}, expected one of {list(FIRST_ORDER_KINDS)}")
        self.categorical = OneHotLinear(cardinalities)
        # The numeric term starts at zero, as a logistic regression does.
        self.numeric: nn.Module | None = None
        if n_numeric and numeric == "piecewise_linear":
            self.numeric = NumericEmbedding("piecewise_linear", n_numeric, 1, bins=bins)
            for parameter in self.numeric.parameters():
                nn.init.zeros_(parameter)
        elif n_numeric:
            self.numeric = nn.Linear(n_numeric, 1)
            nn.init.zeros_(self.numeric.weight)
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, x_cat: torch.Tensor, x_num: torch.Tensor) -> torch.Tensor:
        logit = self.categorical(x_cat) + self.bias
        if self.numeric is not None:
            logit = logit + self.numeric(x_num).flatten(1).sum(1)
        return logit
