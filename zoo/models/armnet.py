"""ARM-Net (Cai et al., SIGMOD 2021, "ARM-Net: Adaptive Relation Modeling Network for Structured Data"),
the one-head variant the authors recommend (their `armnet_1h`).

Every field (categorical or numeric) is one embedding e_j in R^d. The adaptive relation module has o
exponential neurons; neuron i takes each field to a power w_ij given by gated sparse attention with a
learned query q_i, a bilinear key map W shared by the neurons and learned values v_i:
    w_ij = v_ij * alpha-entmax_j( q_i^T W e_j / sqrt(d_k) )       (sparse: many w_ij are exactly 0)
    y_i  = exp( sum_j w_ij z_j ),  z_j = log x_j                  (= prod_j x_j ^ w_ij, a cross feature)
element-wise over the d dimensions, so y_i is in R^d. The authors' code takes the embeddings to be the
logarithms already, z_j = e_j (x_j = exp(e_j) is the feature in "exponential space": no logarithm of a
sign-less embedding is needed), and so does the default here; `log_abs: true` instead takes z_j =
log(|e_j| + eps), the product of the embeddings' magnitudes. Then BatchNorm over the neurons, and an MLP
(2 x 256, Linear-BN-ReLU-dropout) to the logit. `ensemble: true` is the paper's ARM-Net+: a DNN over its own
field embeddings beside it, the two logits joined by a linear layer started at (0.5, 0.5), as the
authors' `ensemble` option. Where the paper is silent the choice is marked "CHOICE"
here and listed in docs/models/resnet_armnet.md.
"""

from __future__ import annotations

from typing import Any

import torch
from entmax import entmax_bisect
from torch import nn

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel
from zoo.nn import MLP, FieldTokens, OneRowBatchNorm1d

#: The epsilon of log(|e| + eps) with `log_abs`; the authors' code clamps its input values at 1e-3.
LOG_EPS = 1e-3
#: CHOICE: the exponent of a neuron is capped here, so exp stays finite in float32 (and its square,
#: in BatchNorm's variance) whatever the numerics' range; the authors' inputs are clamped to [1e-3, 1].
MAX_EXPONENT = 20.0
#: CHOICE: bisection steps of alpha-entmax (the package's and the authors' default: 50). The threshold's
#: bracket is narrower than 1 and halves each step, so 25 steps pin it to 3e-8, past float32's resolution
#: (gates differ from 50 steps' by < 2e-7); the bisection is most of ARM-Net's time, and this halves it.
ENTMAX_ITERATIONS = 25


class ExponentialNeurons(nn.Module):
    """ARM-Net's adaptive relation module, one head: [B, f, d] field embeddings -> [B, o, d] neurons.

    `weights` gives the interaction weights w [B, o, f] (v * alpha-entmax of the bilinear scores; alpha = 1
    is softmax); `forward` gives y = exp(sum_j w_ij z_j) with z = e (log-space embeddings, the authors'
    code) or z = log(|e| + eps) (`log_abs`).
    """

    def __init__(
        self,
        n_fields: int,
        d_embedding: int,
        n_neurons: int,
        *,
        d_key: int | None = None,
        alpha: float = 1.7,
        log_abs: bool = False,
    ) -> None:
        super().__init__()
        if n_fields < 1:
            raise ValueError(f"n_fields={n_fields}, expected a positive integer")
        if n_neurons < 1:
            raise ValueError(f"n_neurons={n_neurons}, expected a positive integer")
        d_key = d_embedding if d_key is None else d_key  # the authors' default: d_k = d
        if d_embedding < 1 or d_key < 1:
            raise ValueError(f"d_embedding={d_embedding}, d_key={d_key}, expected positive integers")
        if not alpha >= 1:
            raise ValueError(f"alpha={alpha}, expected alpha >= 1 (1: softmax, 2: sparsemax)")
        self.n_fields, self.d_embedding, self.n_neurons = n_fields, d_embedding, n_neurons
        self.alpha = float(alpha)
        self.log_abs = log_abs
        self.scale = d_key**-0.5
        self.key = nn.Linear(d_embedding, d_key, bias=False)  # W, shared by the neurons (one head)
        self.query = nn.Parameter(torch.empty(n_neurons, d_key))  # q_i
        self.value = nn.Parameter(torch.empty(n_neurons, n_fields))  # v_ij
        # As the authors: Xavier-uniform with gain 1.414 for queries and values (W: Linear's default).
        nn.init.xavier_uniform_(self.query, gain=1.414)
        nn.init.xavier_uniform_(self.value, gain=1.414)

    def gates(self, tokens: torch.Tensor) -> torch.Tensor:
        """alpha-entmax over the fields of the scores q_i^T W e_j / sqrt(d_k): [B, o, f], rows sum to 1."""
        if tokens.ndim != 3 or tokens.shape[1:] != (self.n_fields, self.d_embedding):
            raise ValueError(
                f"tokens.shape={tuple(tokens.shape)}, expected [batch, {self.n_fields}, {self.d_embedding}]"
            )
        scores = torch.einsum("bfk,ok->bof", self.key(tokens), self.query) * self.scale
        if self.alpha == 1:
            return scores.softmax(dim=-1)
        return entmax_bisect(scores, alpha=self.alpha, dim=-1, n_iter=ENTMAX_ITERATIONS)

    def weights(self, tokens: torch.Tensor) -> torch.Tensor:
        """The interaction weights w_ij = v_ij * gate_ij, each field's power in each neuron: [B, o, f]."""
        return self.gates(tokens) * self.value

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        logs = torch.log(tokens.abs() + LOG_EPS) if self.log_abs else tokens
        exponent = torch.einsum("bfd,bof->bod", logs, self.weights(tokens))
        return torch.exp(exponent.clamp(max=MAX_EXPONENT))


class ARMNet(CreditModel):
    """ARM-Net (one head): exponential neurons, powers from sparse attention over the fields, then an MLP."""

    family = "interaction"

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        d_embedding: int = 10,
        n_neurons: int = 128,
        alpha: float = 1.7,
        log_abs: bool = False,
        mlp_layers: int = 2,
        mlp_width: int = 256,
        dropout: float = 0.0,
        ensemble: bool = False,
        deep_layers: int = 2,
        deep_width: int = 256,
        numeric_embedding: str | None = None,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        if mlp_layers < 0:
            raise ValueError(f"mlp_layers={mlp_layers}, expected an integer >= 0")
        if ensemble and deep_layers < 1:
            raise ValueError(f"deep_layers={deep_layers}, expected a positive integer with ensemble: true")
        spec = self.feature_spec
        # One token per field: categorical embeddings, numerics as x_j v_j, as the authors' Embedding
        # (embedding of the feature id times its value).
        self.numeric_embedding = numeric_embedding

        def field_tokens() -> FieldTokens:
            return FieldTokens(
                spec.cardinalities,
                spec.n_numeric,
                d_embedding,
                numeric_embedding=numeric_embedding,
                bins=spec.numeric_bins(numeric_embedding),
            )

        self.tokens = field_tokens()
        if self.tokens.n_fields == 0:
            raise ValueError("feature_spec has no categorical and no numeric field, expected at least one")
        self.neurons = ExponentialNeurons(
            self.tokens.n_fields, d_embedding, n_neurons, alpha=alpha, log_abs=log_abs
        )
        # BatchNorm1d over [B, o, d]: statistics per neuron over the batch and the embedding dimensions.
        # CHOICE: its running statistics are the plain average over training batches (momentum=None),
        # not an exponential average started at (0, 1). Near initialisation the exponents are ~0.01, so
        # the neurons are 1 + O(0.01) with variance ~1e-5: the default momentum 0.1 needs ~100 steps to
        # forget the initial variance 1, and with 3 steps an epoch (german) eval-mode outputs stayed
        # nearly constant (test Brier at the base rate's). Measured in docs/models/resnet_armnet.md.
        # A training batch of one row is normalised by the running statistics (OneRowBatchNorm1d).
        self.norm = OneRowBatchNorm1d(n_neurons, momentum=None)
        self.mlp = MLP(
            n_neurons * d_embedding, [mlp_width] * mlp_layers, dropout=dropout, d_out=1, batch_norm=True
        )
        # ARM-Net+ (the authors' `ensemble`): a DNN over separate field embeddings of the same kind,
        # its logit and ARM-Net's joined by a linear layer that starts as their average.
        self.ensemble = ensemble
        if ensemble:
            self.deep_tokens = field_tokens()  # the same kind of tokens, their own weights
            self.deep = MLP(
                self.tokens.n_fields * d_embedding,
                [deep_width] * deep_layers,
                dropout=dropout,
                d_out=1,
                batch_norm=True,
            )
            self.join = nn.Linear(2, 1)
            nn.init.constant_(self.join.weight, 0.5)
            nn.init.zeros_(self.join.bias)

    def interaction_weights(self, batch: Batch) -> torch.Tensor:
        """Each neuron's power of each field for each row, w [B, o, fields] (categorical then numeric)."""
        return self.neurons.weights(self.tokens(batch["x_cat"], batch["x_num"]))

    def forward(self, batch: Batch) -> torch.Tensor:
        neurons = self.norm(self.neurons(self.tokens(batch["x_cat"], batch["x_num"])))
        logit = self.mlp(neurons.flatten(1))
        if self.ensemble:
            deep = self.deep(self.deep_tokens(batch["x_cat"], batch["x_num"]).flatten(1))
            logit = self.join(torch.cat([logit, deep], dim=1))
        return logit.squeeze(-1)
