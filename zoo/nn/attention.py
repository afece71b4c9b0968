"""Attention over field embeddings [B, f, d]: AutoInt's interacting layer and AFM-style pooling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _check_fields(x: torch.Tensor, d_embedding: int) -> None:
    if x.ndim != 3 or x.shape[2] != d_embedding:
        raise ValueError(f"x.shape={tuple(x.shape)}, expected [batch, n_fields, {d_embedding}]")


class FieldAttention(nn.Module):
    """AutoInt's interacting layer (Song et al. 2019, Eqs. 5-8): multi-head self-attention across fields.

    [B, f, d] -> [B, f, d_attention]: ReLU(concat_h sum_k a^h_mk W^h_V e_k + W_Res e_m); `d_attention`
    is the width of all heads together (default d_embedding).
    """

    def __init__(
        self,
        d_embedding: int,
        *,
        n_heads: int = 2,
        d_attention: int | None = None,
        residual: bool = True,
        dropout: float = 0.0,
        scaled: bool = False,
    ) -> None:
        super().__init__()
        if d_embedding < 1:
            raise ValueError(f"d_embedding={d_embedding}, expected a positive integer")
        if n_heads < 1:
            raise ValueError(f"n_heads={n_heads}, expected a positive integer")
        if d_attention is None:
            d_attention = d_embedding
        if d_attention < 1 or d_attention % n_heads:
            raise ValueError(
                f"d_attention={d_attention} (d_embedding={d_embedding}), expected a positive multiple of "
                f"n_heads={n_heads}"
            )
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout={dropout}, expected 0 <= dropout < 1")
        self.d_embedding = d_embedding
        self.n_heads = n_heads
        self.d_out = d_attention
        self.dropout = dropout
        # Eq. 5 scores <W_Q e_m, W_K e_k> unscaled; `scaled` divides by sqrt(d_head) (Vaswani et al.).
        self.scale = (d_attention // n_heads) ** -0.5 if scaled else 1.0
        # The paper's projections have no biases.
        self.query = nn.Linear(d_embedding, d_attention, bias=False)
        self.key = nn.Linear(d_embedding, d_attention, bias=False)
        self.value = nn.Linear(d_embedding, d_attention, bias=False)
        self.residual = nn.Linear(d_embedding, d_attention, bias=False) if residual else None

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, f, H * d_head] -> [B, H, f, d_head]."""
        return x.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention of each field on every field, a^h_mk: [B, f, d] -> [B, n_heads, f, f]."""
        _check_fields(x, self.d_embedding)
        scores = self._heads(self.query(x)) @ self._heads(self.key(x)).transpose(-2, -1)
        return torch.softmax(scores * self.scale, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_fields(x, self.d_embedding)
        if x.shape[1] == 0:
            return x.new_zeros(x.shape[0], 0, self.d_out)
        attended = F.scaled_dot_product_attention(
            self._heads(self.query(x)),
            self._heads(self.key(x)),
            self._heads(self.value(x)),
            dropout_p=self.dropout if self.training else 0.0,
            scale=self.scale,
        )
        out = attended.transpose(1, 2).flatten(-2)
        if self.residual is not None:
            out = out + self.residual(x)
        return torch.relu(out)


ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


class AttentionPooling(nn.Module):
    """Attention pooling over a set (AFM, Xiao et al. 2017, Eqs. 4-5): [B, f, d] -> [B, d].

    sum_i a_i v_i with a = softmax_i(h^T s(W v_i + b)); s is ReLU (AFM) or tanh (additive attention,
    Bahdanau et al. 2015; AFCC). `weights` returns a, for models that re-weight rather than pool.
    """

    def __init__(self, d_in: int, *, d_attention: int = 16, activation: str = "relu") -> None:
        super().__init__()
        if d_in < 1:
            raise ValueError(f"d_in={d_in}, expected a positive integer")
        if d_attention < 1:
            raise ValueError(f"d_attention={d_attention}, expected a positive integer")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r}, expected one of {list(ACTIVATIONS)}")
        self.d_in = d_in
        self.attention = nn.Sequential(
            nn.Linear(d_in, d_attention),
            ACTIVATIONS[activation](),
            nn.Linear(d_attention, 1, bias=False),  # h^T; a bias would cancel in the softmax
        )

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights a: [B, f, d] -> [B, f], summing to 1 over f (for f > 0)."""
        _check_fields(x, self.d_in)
        return torch.softmax(self.attention(x).squeeze(-1), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.weights(x)[..., None] * x).sum(dim=1)
