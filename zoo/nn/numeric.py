"""Numeric-feature embeddings: float[B, n] -> float[B, n, d].

Linear tokens as in FT-Transformer (Gorishniy et al. 2021); periodic and piecewise-linear
embeddings from Gorishniy et al. 2022, "On Embeddings for Numerical Features in Tabular Deep
Learning", through the authors' `rtdl_num_embeddings` package.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import rtdl_num_embeddings
import torch
from torch import nn

NumericEmbeddingKind = Literal["linear", "periodic", "piecewise_linear"]
KINDS: tuple[str, ...] = ("linear", "periodic", "piecewise_linear")


class NumericTokenizer(nn.Module):
    """Per-field linear tokens x_j W_j + b_j: float[B, n] -> float[B, n, d] (FT-Transformer, Eq. 1).

    With no fields there are no parameters and the output is float[B, 0, d].
    """

    weight: nn.Parameter | None
    bias: nn.Parameter | None

    def __init__(
        self, n_features: int, d_token: int, *, bias: bool = True, init_std: float | None = None
    ) -> None:
        super().__init__()
        if n_features < 0:
            raise ValueError(f"n_features={n_features}, expected an integer >= 0")
        if d_token < 1:
            raise ValueError(f"d_token={d_token}, expected a positive integer")
        self.n_features = n_features
        self.d_token = d_token
        if init_std is not None and not (init_std > 0 and math.isfinite(init_std)):
            raise ValueError(f"init_std={init_std}, expected a positive number or None")
        bound = d_token**-0.5  # the uniform(-1/sqrt(d), 1/sqrt(d)) initialisation of rtdl
        self.weight = self.bias = None  # no parameters without fields: unused ones break DDP
        if n_features:
            self.weight = nn.Parameter(torch.empty(n_features, d_token).uniform_(-bound, bound))
            if init_std is not None:
                nn.init.normal_(self.weight, std=init_std)
        if n_features and bias:
            self.bias = nn.Parameter(torch.empty(n_features, d_token).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"x.shape={tuple(x.shape)}, expected [batch, {self.n_features}]")
        if self.weight is None:
            return x.new_zeros(x.shape[0], 0, self.d_token)
        tokens = x[..., None] * self.weight
        return tokens if self.bias is None else tokens + self.bias


class PiecewiseLinearEmbeddings(rtdl_num_embeddings.PiecewiseLinearEmbeddings):
    """rtdl's piecewise-linear embeddings, the same parameters and outputs, computed by lookup.

    rtdl builds the encoding float[B, n, bins] and multiplies it by float[n, bins, d]. An encoding
    is [1, ..., 1, frac, 0, ..., 0], so the product is a running sum of the bins' weights up to
    x's bin plus frac times that bin's weight: two row lookups per field, float[B, n, d] memory
    instead of float[B, n, bins]. Equal to rtdl's output up to float rounding, and 5-8x faster a
    forward call at 5,000-50,000 rows (benchmarks/numeric_embedding.py), where explanations and
    scoring spend their time.
    """

    def __init__(
        self, bins: list[torch.Tensor], d_embedding: int, *, activation: bool, version: Literal["A", "B"]
    ) -> None:
        super().__init__(bins, d_embedding, activation=activation, version=version)
        n_features, width = self.impl.weight.shape
        # rtdl's layout puts each field's last bin in the last column; `order` lists the bins of a
        # field in their real order, padding columns (never used) after them.
        order = torch.empty(n_features, width, dtype=torch.long)
        inner = torch.full((n_features, max(width - 1, 1)), math.inf)  # interior edges, +inf padded
        for i, field_edges in enumerate(bins):
            n_bins = len(field_edges) - 1
            head = list(range(n_bins - 1))
            order[i] = torch.tensor(head + [width - 1] + list(range(n_bins - 1, width - 1)))
            inner[i, : n_bins - 1] = field_edges[1:-1]
        self.register_buffer("order", order, persistent=False)
        self.register_buffer("inner_edges", inner, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2:
            raise ValueError(f"x.shape={tuple(x.shape)}, expected [batch, n_features]")
        n_features, width = self.order.shape
        d = self.linear.weight.shape[-1]
        offsets = torch.arange(n_features, device=x.device) * width
        # The bin of each value, as a row of the [n * width] tables: interior edges it has reached.
        row = torch.searchsorted(self.inner_edges, x.T.contiguous(), right=True).T + offsets
        real = (self.order + offsets[:, None]).flatten()  # rtdl's columns in real bin order
        frac = torch.addcmul(self.impl.bias.flatten()[real][row], self.impl.weight.flatten()[real][row], x)
        weight = self.linear.weight.reshape(-1, d)[real].view(n_features, width, d)
        below = weight.cumsum(dim=1) - weight  # the bins below x's bin have encoding 1
        if self.linear.bias is not None:
            below = below + self.linear.bias[:, None]
        linear0 = self.linear0
        if linear0 is not None and self.activation is None:  # the linear term joins in place
            below = below + linear0.bias[:, None]
        both = torch.nn.functional.embedding(row, torch.cat([below, weight], dim=-1).view(-1, 2 * d))
        out = torch.addcmul(both[..., :d], frac[..., None], both[..., d:])
        if linear0 is not None and self.activation is None:
            return out.addcmul_(x[..., None], linear0.weight)
        if self.activation is not None:
            out = self.activation(out)
        return out if linear0 is None else linear0(x) + out


def bins_from_edges(edges: Sequence[Sequence[float] | torch.Tensor]) -> list[torch.Tensor]:
    """Per-field bin edges in rtdl's format (sorted, distinct, >= 2 per field) from quantile edges.

    Duplicate edges (quantiles of a discrete field) are dropped; a field with a single distinct
    edge (a constant field) gets [v - 1, v + 1], one bin, which rtdl treats as min-max scaling.
    """
    bins = []
    for i, field_edges in enumerate(edges):
        values = torch.as_tensor(field_edges, dtype=torch.float32).flatten().unique()  # sorted
        if values.numel() == 0:
            raise ValueError(f"edges[{i}] is empty, expected at least one bin edge per field")
        if not values.isfinite().all():
            raise ValueError(f"edges[{i}]={values.tolist()}, expected finite bin edges")
        if values.numel() == 1:
            values = torch.cat([values - 1, values + 1])
        bins.append(values)
    return bins


class NumericEmbedding(nn.Module):
    """Numeric embeddings of Gorishniy et al. 2022: float[B, n] -> float[B, n, d].

    `kind` is "linear" (FT-Transformer tokens, plus ReLU when `activation`: the paper's LR),
    "periodic" (Section 3.3, PLR with the default ReLU) or "piecewise_linear" (Section 3.2, needs
    `bins`). `activation=None` takes the recommended default: True for periodic, False otherwise.
    `lite` (periodic: one shared output layer) and `version="B"` (piecewise-linear: a linear term plus
    a zero-initialised piecewise part) come from the authors' later TabR and TabM papers.
    """

    embedding: nn.Module | None

    def __init__(
        self,
        kind: NumericEmbeddingKind,
        n_features: int,
        d_embedding: int,
        *,
        bins: Sequence[Sequence[float] | torch.Tensor] | None = None,
        activation: bool | None = None,
        n_frequencies: int = 48,
        frequency_init_scale: float = 0.01,
        lite: bool = False,
        version: Literal["A", "B"] = "B",
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}, expected one of {list(KINDS)}")
        if n_features < 0:
            raise ValueError(f"n_features={n_features}, expected an integer >= 0")
        if d_embedding < 1:
            raise ValueError(f"d_embedding={d_embedding}, expected a positive integer")
        if n_frequencies < 1:
            raise ValueError(f"n_frequencies={n_frequencies}, expected a positive integer")
        if not (frequency_init_scale > 0 and math.isfinite(frequency_init_scale)):
            raise ValueError(f"frequency_init_scale={frequency_init_scale}, expected a positive number")
        if version not in ("A", "B"):
            raise ValueError(f"version={version!r}, expected 'A' or 'B'")
        if activation is None:
            activation = kind == "periodic"
        if kind == "periodic" and lite and not activation:
            raise ValueError(f"lite={lite}, activation={activation}: lite periodic embeddings need the ReLU")
        if kind == "piecewise_linear":
            if bins is None:
                raise ValueError("kind='piecewise_linear' needs bins, the bin edges of each field")
            if len(bins) != n_features:
                raise ValueError(f"len(bins)={len(bins)}, expected one list of edges per field: {n_features}")
        self.kind = kind
        self.n_features = n_features
        self.d_embedding = d_embedding
        self.activation = activation
        self.embedding = None
        if n_features == 0:  # no parameters at all: a parameter without gradient breaks DDP
            return
        if kind == "linear":
            tokenizer = NumericTokenizer(n_features, d_embedding)
            self.embedding = nn.Sequential(tokenizer, nn.ReLU()) if activation else tokenizer
        elif kind == "periodic":
            self.embedding = rtdl_num_embeddings.PeriodicEmbeddings(
                n_features,
                d_embedding,
                n_frequencies=n_frequencies,
                frequency_init_scale=frequency_init_scale,
                activation=activation,
                lite=lite,
            )
        else:
            assert bins is not None
            with warnings.catch_warnings():
                # 0/1 indicators and near-constant fields have one bin by design: rtdl's note on it
                # ("the same as MinMaxScaler") is expected, not something a user can act on.
                warnings.filterwarnings("ignore", message=".*has just two bin edges.*")
                self.embedding = PiecewiseLinearEmbeddings(
                    bins_from_edges(bins), d_embedding, activation=activation, version=version
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"x.shape={tuple(x.shape)}, expected [batch, {self.n_features}]")
        if self.embedding is None:
            return x.new_zeros(x.shape[0], 0, self.d_embedding)
        return self.embedding(x)


# --- the one setting every neural model reads its numerics through -----------------------------


def check_numeric_embedding(kind: str | None) -> str | None:
    """A model's `numeric_embedding` setting: None (numerics as encoded) or one of KINDS."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"numeric_embedding={kind!r}, expected null or one of {list(KINDS)}")
    return kind


def make_numeric_embedding(
    kind: str | None, n_features: int, d_embedding: int, *, bins: Sequence[Sequence[float]] | None = None
) -> NumericEmbedding | None:
    """The embedding a flat-input model puts in front of its numerics, or None for none.

    Flat models (MLPs over a concatenation) read numerics as `embed_flat(embedding, x)`:
    float[B, n] as encoded, or float[B, n * d] through the embedding.
    """
    kind = check_numeric_embedding(kind)
    if kind is None or n_features == 0:
        return None
    return NumericEmbedding(kind, n_features, d_embedding, bins=bins)  # type: ignore[arg-type]


def embed_flat(embedding: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    """Numerics for a flat input: as they are, or embedded and flattened to [B, n * d]."""
    return x if embedding is None else embedding(x).flatten(1)


def flat_width(embedding: NumericEmbedding | None, n_features: int) -> int:
    """How many columns `embed_flat` gives for n numeric fields."""
    return n_features if embedding is None else n_features * embedding.d_embedding


def numeric_tokens(
    kind: str | None,
    n_features: int,
    d_embedding: int,
    *,
    bins: Sequence[Sequence[float]] | None = None,
    bias: bool = True,
    init_std: float | None = None,
) -> nn.Module:
    """One d-vector per numeric field, float[B, n] -> float[B, n, d], for token models: linear tokens
    x_j w_j (+ b_j) when `kind` is None (the models' papers), else the chosen embedding.
    `init_std` draws the linear tokens' w_j from N(0, init_std^2) instead of rtdl's uniform."""
    kind = check_numeric_embedding(kind)
    if kind is None or n_features == 0:
        return NumericTokenizer(n_features, d_embedding, bias=bias, init_std=init_std)
    return NumericEmbedding(kind, n_features, d_embedding, bins=bins)  # type: ignore[arg-type]
