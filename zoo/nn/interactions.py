"""Feature-interaction layers over field embeddings [B, f, d]: FM, SENET, bilinear, cross-compression."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

BilinearKind = Literal["field_all", "field_each", "field_interaction"]
BILINEAR_KINDS: tuple[str, ...] = ("field_all", "field_each", "field_interaction")


def _check_fields(x: torch.Tensor, n_fields: int) -> None:
    if x.ndim != 3 or x.shape[1] != n_fields:
        raise ValueError(f"x.shape={tuple(x.shape)}, expected [batch, {n_fields}, d_embedding]")


class FMInteraction(nn.Module):
    """The FM second-order term (Rendle 2010, Eq. 5): sum_{i<j} <v_i, v_j> over [B, f, d] -> [B].

    Computed as 0.5 * ((sum_i v_i)^2 - sum_i v_i^2) summed over d; `reduce_sum=False` keeps d: [B, d].
    """

    def __init__(self, *, reduce_sum: bool = True) -> None:
        super().__init__()
        self.reduce_sum = reduce_sum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3:
            raise ValueError(f"x.shape={tuple(x.shape)}, expected [batch, n_fields, d_embedding]")
        pairwise = 0.5 * (x.sum(dim=1).square() - x.square().sum(dim=1))
        return pairwise.sum(dim=-1) if self.reduce_sum else pairwise


GATES: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class SENET(nn.Module):
    """Squeeze-Excitation over fields (FiBiNET, Huang et al. 2019, Eqs. 3-5): [B, f, d] -> [B, f, d].

    Squeeze: mean over d; excitation: A = s(W2 ReLU(W1 z)) with f -> max(1, f // r) -> f; re-weight
    v_i * a_i. `gate` is s: "relu" (FiBiNET), "sigmoid" (SENet, Hu et al. 2018) or "tanh"; `bias`
    adds biases to both layers (FiBiNET's Eq. 4 has none).
    """

    def __init__(
        self,
        n_fields: int,
        *,
        reduction_ratio: int = 3,
        gate: Literal["relu", "sigmoid", "tanh"] = "relu",
        bias: bool = False,
    ) -> None:
        super().__init__()
        if n_fields < 0:
            raise ValueError(f"n_fields={n_fields}, expected an integer >= 0")
        if reduction_ratio < 1:
            raise ValueError(f"reduction_ratio={reduction_ratio}, expected a positive integer")
        if gate not in GATES:
            raise ValueError(f"gate={gate!r}, expected one of {list(GATES)}")
        self.n_fields = n_fields
        self.d_reduced = max(1, n_fields // reduction_ratio)
        self.excitation: nn.Sequential | None = None
        if n_fields:  # no parameters without fields: a parameter without gradient breaks DDP
            self.excitation = nn.Sequential(
                nn.Linear(n_fields, self.d_reduced, bias=bias),
                nn.ReLU(),
                nn.Linear(self.d_reduced, n_fields, bias=bias),
                GATES[gate](),
            )

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The field weights A: [B, f, d] -> [B, f] (>= 0 with the ReLU gate, in (0, 1) with sigmoid)."""
        _check_fields(x, self.n_fields)
        if self.excitation is None:
            return x.new_zeros(x.shape[0], 0)
        return self.excitation(x.mean(dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)[..., None]


class BilinearInteraction(nn.Module):
    """FiBiNET's bilinear interaction (Huang et al. 2019, Eqs. 6-8): p_ij = (v_i W) * v_j for all i < j.

    [B, f, d] -> [B, f(f-1)/2, d]. `kind` shares W across all pairs ("field_all"), has one W_i per
    left field ("field_each") or one W_ij per pair ("field_interaction").
    """

    left: torch.Tensor
    right: torch.Tensor
    weight: nn.Parameter | None

    def __init__(self, n_fields: int, d_embedding: int, *, kind: BilinearKind = "field_all") -> None:
        super().__init__()
        if n_fields < 0:
            raise ValueError(f"n_fields={n_fields}, expected an integer >= 0")
        if d_embedding < 1:
            raise ValueError(f"d_embedding={d_embedding}, expected a positive integer")
        if kind not in BILINEAR_KINDS:
            raise ValueError(f"kind={kind!r}, expected one of {list(BILINEAR_KINDS)}")
        self.n_fields = n_fields
        self.d_embedding = d_embedding
        self.kind = kind
        left, right = torch.triu_indices(n_fields, n_fields, offset=1)
        self.register_buffer("left", left, persistent=False)
        self.register_buffer("right", right, persistent=False)
        self.n_pairs = len(left)
        # field_each: W_i for i = 0..f-2 only; the last field is never on the left of a pair, and an
        # unused W_{f-1} would be a parameter without gradient (breaks DDP).
        n_weights = {"field_all": 1, "field_each": n_fields - 1, "field_interaction": self.n_pairs}[kind]
        if self.n_pairs:
            weight = torch.empty(n_weights, d_embedding, d_embedding)
            self.weight = nn.Parameter(nn.init.uniform_(weight, -(d_embedding**-0.5), d_embedding**-0.5))
        else:
            self.register_parameter("weight", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_fields(x, self.n_fields)
        if self.weight is None:
            return x.new_zeros(x.shape[0], 0, x.shape[2])
        v_left, v_right = x[:, self.left], x[:, self.right]
        if self.kind == "field_all":
            projected = v_left @ self.weight[0]
        elif self.kind == "field_each":
            projected = torch.einsum("bfd,fde->bfe", x[:, :-1], self.weight)[:, self.left]
        else:
            projected = torch.einsum("bpd,pde->bpe", v_left, self.weight)
        return projected * v_right


class CrossCompression(nn.Module):
    """Cross-compression units (MKR, Wang et al. 2019, Eq. 3) over paired field vectors v, u: [B, f, d].

    Each unit forms C = v u^T (d x d) per field and compresses it back to two vectors,
        v' = C w_vv + C^T w_uv + b_v,    u' = C w_vu + C^T w_uu + b_u,
    with weights shared across fields. C w = v (u . w) and C^T w = u (v . w), so C is never built.
    `n_units` units are stacked, each with its own weights.
    """

    def __init__(self, d_embedding: int, *, n_units: int = 1) -> None:
        super().__init__()
        if d_embedding < 1:
            raise ValueError(f"d_embedding={d_embedding}, expected a positive integer")
        if n_units < 1:
            raise ValueError(f"n_units={n_units}, expected a positive integer")
        self.d_embedding = d_embedding
        self.n_units = n_units
        bound = d_embedding**-0.5
        # Per unit: w_vv, w_uv, w_vu, w_uu as the rows of [4, d]; biases b_v, b_u as [2, d].
        self.weight = nn.Parameter(torch.empty(n_units, 4, d_embedding).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(n_units, 2, d_embedding))

    def forward(self, v: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if v.ndim != 3 or v.shape != u.shape or v.shape[2] != self.d_embedding:
            raise ValueError(
                f"v.shape={tuple(v.shape)}, u.shape={tuple(u.shape)}, expected two equal shapes "
                f"[batch, n_fields, {self.d_embedding}]"
            )
        for weight, bias in zip(self.weight, self.bias, strict=True):
            w_vv, w_uv, w_vu, w_uu = weight
            u_w = u @ torch.stack([w_vv, w_vu], dim=1)  # [B, f, 2]: u . w_vv, u . w_vu
            v_w = v @ torch.stack([w_uv, w_uu], dim=1)  # [B, f, 2]: v . w_uv, v . w_uu
            v, u = (
                v * u_w[..., :1] + u * v_w[..., :1] + bias[0],
                v * u_w[..., 1:] + u * v_w[..., 1:] + bias[1],
            )
        return v, u
