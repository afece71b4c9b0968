"""AFCC: adaptive feature cross-compression for credit default prediction.

"Adaptive Feature Cross-Compression for Credit Default Prediction" (IEEE Access 2023). Three parts:
1. categorical branch: field embeddings E, a SENET gate giving field weights and V = weights * E,
   and cross-compression units pairing each raw embedding v = e_j with its re-weighted form u = V_j;
   the branch outputs H, the 2m slots [v'_j, u'_j];
2. an attention-augmented MLP over H: score_i = q^T tanh(W h_i + b), softmax over the slots, the
   re-weighted slots flattened into an MLP (256-128, ReLU, dropout 0.2);
3. numeric branch: an MLP (128-64) over the shared numeric encoding.
Head: the two branches concatenated -> linear -> logit. `gate`, `cross_compression` and
`attention` switch each part off for ablations. `slot_norm: layer` puts a LayerNorm on each slot
of H, so a slot's scale cannot grow with the product of its embedding and gate (see `__init__`).
Where the paper is silent, the choice is marked "CHOICE" here and listed in docs/models/afcc.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import nn

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel
from zoo.nn import (
    MLP,
    SENET,
    AttentionPooling,
    CrossCompression,
    FieldEmbedding,
    embed_flat,
    flat_width,
    make_numeric_embedding,
)
from zoo.outputs import write_csv
from zoo.plots import plot_ranking

if TYPE_CHECKING:
    from zoo.data.datamodule import CreditDataModule

#: The SENET field weights averaged over the test rows, and their chart.
FIELD_WEIGHTS_FILE = "senet_field_weights.csv"
FIELD_WEIGHTS_PLOT = "senet_field_weights.png"
#: `slot_norm`: none (the paper's H) or a LayerNorm over each slot, named as `zoo.nn.make_norm` names them.
SLOT_NORMS = ("none", "layer")


class AFCC(CreditModel):
    """AFCC: SENET-gated embeddings, cross-compression with their re-weighted form, attention MLP."""

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        d_embedding: int = 16,
        reduction_ratio: int = 3,
        gate_activation: str = "sigmoid",
        gate: bool = True,
        cross_compression: bool = True,
        n_cross_units: int = 1,
        attention: bool = True,
        d_attention: int = 32,
        hidden: Sequence[int] = (256, 128),
        numeric_hidden: Sequence[int] = (128, 64),
        dropout: float = 0.2,
        numeric_embedding: str | None = None,
        slot_norm: str = "none",
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        spec = self.feature_spec
        m = spec.n_categorical
        self.use_gate = gate
        self.use_cross_compression = cross_compression
        self.use_attention = attention
        self.embed = FieldEmbedding(spec.cardinalities, d_embedding)
        # CHOICE: the excitation layers carry biases, as the paper's A = s(W^T E + b) does
        # (FiBiNET's have none); the gate's output activation defaults to sigmoid.
        self.senet = None
        if gate:
            # SENET refuses a name outside its Literal with a one-line ValueError at run time
            self.senet = SENET(m, reduction_ratio=reduction_ratio, gate=gate_activation, bias=True)  # type: ignore[arg-type]
        self.cross = None
        if cross_compression and m:
            self.cross = CrossCompression(d_embedding, n_units=n_cross_units)
        self.slot_attention = None
        if attention and m:
            self.slot_attention = AttentionPooling(d_embedding, d_attention=d_attention, activation="tanh")
        # CHOICE: `slot_norm: layer` normalises each slot of H over its d values (one LayerNorm
        # shared by the slots). Cross-compression multiplies an embedding by its gated form, and
        # the attention weights favour the largest slot, so without it a category seen only among
        # good loans can grow one slot far past the rest and set the logit alone (-25 on a held-out
        # fold of lendingclub_openintro). "none" (the constructor's default) keeps the paper's H.
        if slot_norm not in SLOT_NORMS:
            raise ValueError(f"slot_norm={slot_norm!r}, expected one of {list(SLOT_NORMS)}")
        self.slot_norm = nn.LayerNorm(d_embedding) if slot_norm == "layer" and m else None
        self.fused = MLP(2 * m * d_embedding, list(hidden), dropout=dropout) if m else None
        # CHOICE: the numeric MLP uses the same ReLU and dropout as the fused one.
        self.numeric_embedding = numeric_embedding
        self.embed_numeric = make_numeric_embedding(
            numeric_embedding, spec.n_numeric, d_embedding, bins=spec.numeric_bins(numeric_embedding)
        )
        d_numeric = flat_width(self.embed_numeric, spec.n_numeric)
        self.numeric = MLP(d_numeric, list(numeric_hidden), dropout=dropout) if spec.n_numeric else None
        d_head = (self.fused.d_out if self.fused else 0) + (self.numeric.d_out if self.numeric else 0)
        if d_head == 0:
            raise ValueError("feature_spec has no categorical and no numeric field, expected at least one")
        self.head = nn.Linear(d_head, 1)

    def field_weights(self, batch: Batch) -> torch.Tensor:
        """The SENET gate's weight of each categorical field per row: float[B, m] (ones without a gate)."""
        embedded = self.embed(batch["x_cat"])
        if self.senet is None:
            return embedded.new_ones(embedded.shape[:2])
        return self.senet.gate(embedded)

    def categorical_slots(self, batch: Batch) -> torch.Tensor:
        """H: the 2m slots [v'_1, ..., v'_m, u'_1, ..., u'_m] of the categorical branch, [B, 2m, d]."""
        e = self.embed(batch["x_cat"])
        v = e if self.senet is None else self.senet(e)
        if self.cross is not None:
            e, v = self.cross(e, v)
        h = torch.cat([e, v], dim=1)  # without cross-compression: [E, V]
        return h if self.slot_norm is None else self.slot_norm(h)

    def forward(self, batch: Batch) -> torch.Tensor:
        parts = []
        if self.fused is not None:
            h = self.categorical_slots(batch)
            if self.slot_attention is not None:
                # CHOICE: the softmax weights are scaled by the number of slots, so a uniform
                # attention leaves H as it is and the MLP sees inputs on the embeddings' scale.
                h = h * (h.shape[1] * self.slot_attention.weights(h))[..., None]
            parts.append(self.fused(h.flatten(1)))
        if self.numeric is not None:
            parts.append(self.numeric(embed_flat(self.embed_numeric, batch["x_num"])))
        return self.head(torch.cat(parts, dim=1)).squeeze(-1)

    @torch.no_grad()
    def field_importance(self, batches: Any) -> pd.DataFrame:
        """The gate's field weights over `batches`: mean and std per categorical field, largest first."""
        was_training = self.training
        self.eval()
        weights = [self.field_weights(batch).double().cpu() for batch in batches]
        self.train(was_training)
        names = [f.name for f in self.feature_spec.categorical]
        stacked = torch.cat(weights) if weights else torch.zeros(0, len(names), dtype=torch.float64)
        table = pd.DataFrame(
            {
                "field": names,
                "weight": stacked.mean(0).tolist() if len(stacked) else [float("nan")] * len(names),
                "std": stacked.std(0, correction=0).tolist() if len(stacked) else [float("nan")] * len(names),
                "rows": len(stacked),
            }
        )
        table = table.sort_values("weight", ascending=False, kind="stable").reset_index(drop=True)
        return table.assign(rank=range(1, len(table) + 1))

    def write_artifacts(self, run_dir: Path, data: CreditDataModule) -> None:
        """Write the SENET field weights averaged over the test rows (CSV and bar chart); none
        when the gate is ablated or there is no categorical field."""
        if self.senet is None or not self.feature_spec.n_categorical:
            return
        table = self.field_importance(data.loader("test"))
        write_csv(Path(run_dir) / FIELD_WEIGHTS_FILE, table)
        plot_ranking(
            table["field"],
            table["weight"],
            Path(run_dir) / FIELD_WEIGHTS_PLOT,
            errors=table["std"],
            xlabel="SENET field weight (mean ± std over test rows)",
            title=f"AFCC field weights on {data.dataset_name}",
        )

    def native_importance(self, val: dict[str, Any], reference: dict[str, Any]) -> pd.DataFrame | None:
        """The SENET gate's mean field weight over the validation rows (zoo.explain's native rows)."""
        if self.senet is None or not self.feature_spec.n_categorical:
            return None
        device = self.head.weight.device
        batch = {k: torch.from_numpy(v).to(device) for k, v in val.items() if k.startswith("x_")}
        table = self.field_importance([batch])
        return pd.DataFrame(
            {
                "field": table["field"],
                "method": "SENET mean gate over validation rows",
                "importance": table["weight"],
                "std": table["std"],
            }
        )
