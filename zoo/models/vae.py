"""Supervised VAE: a variational autoencoder whose latent code also feeds a default classifier.

A baseline of "Adaptive Feature Cross-Compression for Credit Default Prediction" (IEEE Access
2023, Table 2: Adam, learning rate 0.005); the VAE is Kingma & Welling 2014 ("Auto-encoding
variational Bayes"), the classifier on its latent code as in Kingma et al. 2014's M1 model, trained
jointly here rather than in two stages:
1. input x = [flattened categorical embeddings, encoded numerics], as the DNN reads it;
2. encoder MLP 128-64, then mu = W_mu h + b_mu and log sigma^2 = W_s h + b_s (latent size 16);
3. z = mu + sigma * eps, eps ~ N(0, I) (reparameterisation) in training;
4. decoder MLP 64-128 from z back to the data: a value per numeric, logits per categorical field;
5. head: a linear logit of z in training and of mu at inference (deterministic predictions);
6. loss = BCE + beta * (reconstruction + w_t * KL), with
   reconstruction = sum over fields of 0.5 (x - x^)^2 (numerics) or cross-entropy (categoricals),
   KL = sum_j 0.5 (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1), both averaged over rows, and the KL
   weight w_t = min(1, t / kl_warmup_steps) at optimiser step t (KL annealing, Bowman et al. 2016).
Choices the papers leave open are marked "CHOICE" here and listed in docs/models/autoencoders.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel, Output
from zoo.models.sae import TabularDecoder, encoder_input
from zoo.nn import MLP, FieldEmbedding, flat_width, make_numeric_embedding


class SupervisedVAE(CreditModel):
    """Supervised VAE: encoder 128-64 to a 16-d Gaussian latent, mirrored decoder, classifier on z."""

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        hidden: Sequence[int] = (128, 64),
        d_latent: int = 16,
        d_embedding: int = 8,
        beta: float = 0.1,
        kl_warmup_steps: int = 200,
        numeric_embedding: str | None = None,
        learning_rate: float = 5e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        widths = [int(h) for h in hidden]
        if not widths:
            raise ValueError(f"hidden={list(hidden)}, expected one or more positive layer widths")
        if d_latent < 1:
            raise ValueError(f"d_latent={d_latent}, expected a positive integer")
        if beta < 0:
            raise ValueError(f"beta={beta}, expected a number >= 0")
        if kl_warmup_steps < 0:
            raise ValueError(f"kl_warmup_steps={kl_warmup_steps}, expected an integer >= 0 (0: no warm-up)")
        spec = self.feature_spec
        self.beta = beta
        self.kl_warmup_steps = kl_warmup_steps
        self.embed = FieldEmbedding(spec.cardinalities, d_embedding)
        self.numeric_embedding = numeric_embedding
        self.embed_numeric = make_numeric_embedding(
            numeric_embedding, spec.n_numeric, d_embedding, bins=spec.numeric_bins(numeric_embedding)
        )
        self.encoder = MLP(
            spec.n_categorical * d_embedding + flat_width(self.embed_numeric, spec.n_numeric), widths
        )
        self.mu = nn.Linear(widths[-1], d_latent)
        self.log_var = nn.Linear(widths[-1], d_latent)
        self.decoder = MLP(d_latent, widths[::-1])
        # CHOICE: the decoder reconstructs the data (numerics, and each categorical field as
        # a distribution over its categories), not the learned embeddings: an embedding target
        # would be trivial to meet by shrinking the embeddings to zero.
        self.reconstruct = TabularDecoder(widths[0], spec.cardinalities, spec.n_numeric)
        # CHOICE: a linear head on the latent code, so the classifier's power is the encoder's.
        self.head = nn.Linear(d_latent, 1)
        #: Optimiser steps taken without a trainer (a plain loop): training-mode `loss` calls
        #: with gradients on. With a trainer attached, `global_step` is the step instead.
        self.steps_without_trainer = 0

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The approximate posterior q(z | x): mean and log-variance, each [B, d_latent]."""
        h = self.encoder(encoder_input(self.embed, self.embed_numeric, batch))
        return self.mu(h), self.log_var(h)

    def forward(self, batch: Batch) -> Output:
        mu, log_var = self.encode(batch)
        if not self.training:
            return self.head(mu).squeeze(-1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        return {
            "logits": self.head(z).squeeze(-1),
            "mu": mu,
            "log_var": log_var,
            "z": z,
            "decoded": self.reconstruct(self.decoder(z)),
        }

    @property
    def step(self) -> int:
        """The optimiser step the KL weight follows: the trainer's, else the model's own count."""
        return int(self.global_step) if self._trainer is not None else self.steps_without_trainer

    def kl_weight(self, step: int | None = None) -> float:
        """w_t = min(1, t / kl_warmup_steps): 0 at the first step, 1 from `kl_warmup_steps` on."""
        step = self.step if step is None else step
        return 1.0 if self.kl_warmup_steps == 0 else min(1.0, step / self.kl_warmup_steps)

    def loss(self, batch: Batch, output: Output) -> torch.Tensor | Mapping[str, torch.Tensor]:
        """BCE + beta * (reconstruction + w_t * KL), each term returned so the run logs it."""
        if isinstance(output, torch.Tensor):  # an eval-mode output: logits alone, BCE alone
            return super().loss(batch, output)
        bce = F.binary_cross_entropy_with_logits(output["logits"], batch["y"])
        reconstruction = self.reconstruct.loss(output["decoded"], batch).mean()
        mu, log_var = output["mu"], output["log_var"]
        kl = (0.5 * (mu.square() + log_var.exp() - log_var - 1).sum(1)).mean()
        kl_weight = self.kl_weight()
        if self.training and torch.is_grad_enabled() and self._trainer is None:
            self.steps_without_trainer += 1
        return {
            "loss": bce + self.beta * (reconstruction + kl_weight * kl),
            "bce": bce,
            "reconstruction": reconstruction,
            "kl": kl,
            "kl_weight": bce.new_tensor(kl_weight),
        }
