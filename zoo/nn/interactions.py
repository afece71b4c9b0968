"""Feature-interaction layers over field embeddings [B, f, d]: FM, FiBiNET's SENET and bilinear."""

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


class SENET(nn.Module):
    """Squeeze-Excitation over fields (FiBiNET, Huang et al. 2019, Eqs. 3-5): [B, f, d] -> [B, f, d].

    Squeeze: mean over d; excitation: A = s(W2 ReLU(W1 z)) with f -> max(1, f // r) -> f; re-weight v_i * a_i.
    """

    def __init__(
        self, n_fields: int, *, reduction_ratio: int = 3, gate: Literal["relu", "sigmoid"] = "relu"
    ) -> None:
        super().__init__()
        if n_fields < 0:
            raise ValueError(f"n_fields={n_fields}, expected an integer >= 0")
        if reduction_ratio < 1:
            raise ValueError(f"reduction_ratio={reduction_ratio}, expected a positive integer")
        if gate not in ("relu", "sigmoid"):
            raise ValueError(f"gate={gate!r}, expected 'relu' (FiBiNET) or 'sigmoid' (SENet, Hu et al. 2018)")
        self.n_fields = n_fields
        self.d_reduced = max(1, n_fields // reduction_ratio)
        self.excitation: nn.Sequential | None = None
        if n_fields:  # no parameters without fields: a parameter without gradient breaks DDP
            # Eq. 4 has no biases: A = s2(W2 s1(W1 Z)).
            self.excitation = nn.Sequential(
                nn.Linear(n_fields, self.d_reduced, bias=False),
                nn.ReLU(),
                nn.Linear(self.d_reduced, n_fields, bias=False),
                nn.ReLU() if gate == "relu" else nn.Sigmoid(),
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
