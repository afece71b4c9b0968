"""SAE: a stacked denoising autoencoder, pretrained greedily layer by layer, then fine-tuned.

A baseline of "Adaptive Feature Cross-Compression for Credit Default Prediction" (IEEE Access
2023, Table 2: Adam, learning rate 0.003, kept by experiment=afcc_table3; the everyday 1e-3 was
chosen on the benchmark suite); the method is Bengio et al. 2007 ("Greedy layer-wise
training of deep networks") with the denoising criterion of Vincent et al. 2010 ("Stacked
denoising autoencoders", JMLR 11):
1. input x_0 = [flattened categorical embeddings, encoded numerics], as the DNN reads it;
2. encoder h_k = ReLU(W_k h_{k-1} + b_k), widths 128-64-32;
3. pretraining, one layer at a time, the layers below frozen: corrupt the layer's input with
   masking noise (x~ = x * m, m_i ~ Bernoulli(1 - noise)), encode, decode, and minimise the
   error of reconstructing the clean input. Layer 1 reconstructs the data itself (per numeric
   0.5 (x - x^)^2, per categorical field the cross-entropy over its categories, summed over
   fields); layer k > 1 reconstructs h_{k-1} (0.5 ||h - h^||^2);
4. fine-tuning: a linear head on h_K, the whole stack trained end to end on BCE by the normal run.
Pretraining runs at the start of a fit (`on_train_start`), `pretrain_epochs` epochs per layer;
the decoders serve only there. Choices the papers leave open are marked "CHOICE" here and
listed in docs/models/autoencoders.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel, broadcast_from_rank0, fit_batches
from zoo.nn import FieldEmbedding, embed_flat, flat_width, make_numeric_embedding
from zoo.outputs import write_csv

#: The reconstruction loss of each layer and pretraining epoch, written with every `sae` run.
PRETRAINING_FILE = "sae_pretraining.csv"


class TabularDecoder(nn.Module):
    """The last decoder layer when the target is the data itself: a value per numeric and logits
    over each categorical field's categories, side by side in one tensor [B, n + sum(cardinalities)].

    Reconstructing the data, not the learned embeddings, leaves no trivial solution in which the
    embeddings shrink to zero. Shared by `sae` and `vae`.
    """

    def __init__(self, d_in: int, cardinalities: Sequence[int], n_numeric: int) -> None:
        super().__init__()
        self.cardinalities = tuple(int(c) for c in cardinalities)
        self.n_numeric = n_numeric
        d_out = n_numeric + sum(self.cardinalities)
        if d_out < 1:
            raise ValueError("no numeric and no categorical field to reconstruct, expected at least one")
        self.linear = nn.Linear(d_in, d_out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h)

    def loss(self, decoded: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Negative log-likelihood of each row, summed over fields, float[B]: 0.5 (x - x^)^2 per
        numeric (a unit-variance Gaussian, constant dropped), cross-entropy per categorical field."""
        numeric, categorical = decoded.split([self.n_numeric, sum(self.cardinalities)], dim=1)
        error = 0.5 * (numeric - batch["x_num"]).square().sum(1)
        for j, logits in enumerate(categorical.split(self.cardinalities, dim=1)):
            error = error + F.cross_entropy(logits, batch["x_cat"][:, j], reduction="none")
        return error


def encoder_input(embed: FieldEmbedding, embed_numeric: nn.Module | None, batch: Batch) -> torch.Tensor:
    """x_0: the flattened categorical embeddings and the (embedded) numerics, [B, m * d + n (* d)]."""
    return torch.cat([embed(batch["x_cat"]).flatten(1), embed_flat(embed_numeric, batch["x_num"])], dim=1)


class StackedAutoencoder(CreditModel):
    """Stacked denoising autoencoder (128-64-32), pretrained layer-wise, fine-tuned with a linear head."""

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        hidden: Sequence[int] = (128, 64, 32),
        d_embedding: int = 8,
        noise: float = 0.2,
        pretrain_epochs: int = 20,
        dropout: float = 0.1,
        numeric_embedding: str | None = None,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        widths = [int(h) for h in hidden]
        if not widths or any(h < 1 for h in widths):
            raise ValueError(f"hidden={list(hidden)}, expected one or more positive layer widths")
        if not 0 <= noise < 1:
            raise ValueError(f"noise={noise}, expected a masking share 0 <= noise < 1")
        if pretrain_epochs < 0:
            raise ValueError(
                f"pretrain_epochs={pretrain_epochs}, expected an integer >= 0 (0: no pretraining)"
            )
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout={dropout}, expected 0 <= dropout < 1")
        spec = self.feature_spec
        self.noise = noise
        self.pretrain_epochs = pretrain_epochs
        self.embed = FieldEmbedding(spec.cardinalities, d_embedding)
        self.numeric_embedding = numeric_embedding
        self.embed_numeric = make_numeric_embedding(
            numeric_embedding, spec.n_numeric, d_embedding, bins=spec.numeric_bins(numeric_embedding)
        )
        sizes = [spec.n_categorical * d_embedding + flat_width(self.embed_numeric, spec.n_numeric), *widths]
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False))
        # CHOICE: dropout after each encoder layer while fine-tuning (none while pretraining,
        # where masking noise is the corruption).
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(widths[-1], 1)
        # One decoder per layer, trained only while pretraining: frozen otherwise, so the
        # fine-tuning optimiser never sees them and no parameter goes without a gradient (DDP).
        self.decoders: nn.ModuleList | None = None
        if pretrain_epochs:
            # CHOICE: each decoder is a single linear layer (a shallow autoencoder per layer, as
            # Vincent et al.); layer 1's reconstructs the data, the others the code below.
            deeper = [nn.Linear(b, a) for a, b in zip(widths, widths[1:], strict=False)]
            self.decoders = nn.ModuleList(
                [TabularDecoder(widths[0], spec.cardinalities, spec.n_numeric), *deeper]
            )
            self.decoders.requires_grad_(False)
        #: Mean reconstruction loss per row, [layer, epoch]; NaN until pretrained. In the state
        #: dict, so a checkpoint knows it is pretrained and keeps the record.
        self.pretrain_history: torch.Tensor
        self.register_buffer("pretrain_history", torch.full((len(widths), pretrain_epochs), math.nan))

    @property
    def pretrained(self) -> bool:
        return bool(self.pretrain_history.numel()) and bool(torch.isfinite(self.pretrain_history).all())

    def code(self, batch: Batch) -> torch.Tensor:
        """h_K: the input through every encoder layer (dropout in training mode)."""
        h = encoder_input(self.embed, self.embed_numeric, batch)
        for linear in self.encoder:
            h = self.dropout(torch.relu(linear(h)))
        return h

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.head(self.code(batch)).squeeze(-1)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """Masking noise: each entry set to 0 with probability `noise` (0 is a numeric's mean)."""
        # CHOICE: masking noise on every entry of the layer's input, for layer 1 on single
        # embedding coordinates as well as numerics.
        return x * (torch.rand_like(x) >= self.noise) if self.noise else x

    def pretrain(self, batches: Iterable[Batch]) -> torch.Tensor:
        """Greedy layer-wise denoising pretraining, `pretrain_epochs` passes over `batches` per
        layer, each layer with its own Adam at `learning_rate`; returns `pretrain_history`."""
        if self.decoders is None:
            return self.pretrain_history
        was_training = self.training
        self.train()
        with torch.enable_grad():
            for k, (layer, decoder) in enumerate(zip(self.encoder, self.decoders, strict=True)):
                # CHOICE: layer 1 trains the embeddings with it (its target is the data, so they
                # cannot collapse); deeper layers read the frozen codes of the layers below.
                params = [*layer.parameters(), *decoder.parameters()]
                if k == 0:
                    params += list(self.embed.parameters())
                # CHOICE: plain Adam at the fine-tuning rate, no weight decay, no schedule.
                optimizer = torch.optim.Adam(params, lr=self.learning_rate)
                decoder.requires_grad_(True)
                for epoch in range(self.pretrain_epochs):
                    total, rows = 0.0, 0
                    for batch in batches:
                        batch = {key: value.to(self.device) for key, value in batch.items()}
                        errors = self._reconstruction_error(k, decoder, batch)
                        optimizer.zero_grad(set_to_none=True)
                        errors.mean().backward()
                        optimizer.step()
                        total, rows = total + float(errors.detach().sum()), rows + len(errors)
                    self.pretrain_history[k, epoch] = total / max(rows, 1)
                decoder.requires_grad_(False)
        self.zero_grad(set_to_none=True)
        self.train(was_training)
        return self.pretrain_history

    def _reconstruction_error(self, k: int, decoder: nn.Module, batch: Batch) -> torch.Tensor:
        """Per-row error of layer k's denoising autoencoder, float[B]: the data for layer 1
        (embeddings trained with it), the frozen code of the layers below for the others."""
        if k == 0:
            code = torch.relu(
                self.encoder[0](self.corrupt(encoder_input(self.embed, self.embed_numeric, batch)))
            )
            assert isinstance(decoder, TabularDecoder)  # layer 1's decoder reconstructs the data
            return decoder.loss(decoder(code), batch)
        with torch.no_grad():
            x = encoder_input(self.embed, self.embed_numeric, batch)
            for linear in self.encoder[:k]:
                x = torch.relu(linear(x))
        decoded = decoder(torch.relu(self.encoder[k](self.corrupt(x))))
        return 0.5 * (decoded - x).square().sum(1)

    def on_train_start(self) -> None:
        """Pretrain before the first fine-tuning step, once: not again on a resumed fit."""
        if self.decoders is None or self.pretrained:
            return
        batches = fit_batches(self, "train")
        assert batches is not None  # fit sets the training loader up before on_train_start
        self.pretrain(batches)
        # Under DDP each rank pretrained on its own shard: all start fine-tuning from rank 0's.
        broadcast_from_rank0([*self.parameters(), self.pretrain_history])

    def pretraining_table(self) -> pd.DataFrame:
        """`pretrain_history` as rows: layer (1 = nearest the input), its width, epoch, reconstruction."""
        history = self.pretrain_history.double().cpu()
        return pd.DataFrame(
            [
                {"layer": k + 1, "width": self.encoder[k].out_features, "epoch": e + 1, "reconstruction": v}
                for k, row in enumerate(history.tolist())
                for e, v in enumerate(row)
            ],
            columns=["layer", "width", "epoch", "reconstruction"],
        )

    def write_artifacts(self, run_dir: Path, data: Any = None) -> None:
        """Write the pretraining record (`sae_pretraining.csv`); none without pretraining."""
        if self.pretrained:
            write_csv(Path(run_dir) / PRETRAINING_FILE, self.pretraining_table())
