"""The attention network that weighs candidate rules (step 4 of the rules paper's method).

Each rule j has a learnable key k_j and value v_j; a context vector c(x) is read from the row's
features. A row attends only to the rules it satisfies (mask R), softmax over them:

    a_ij = softmax_{j : R_ij = 1}(c(x_i) . k_j / sqrt(d)),   logit_i = b + n_i sum_j a_ij v_j

with n_i the number of rules row i satisfies. CHOICE: the factor n_i makes uniform attention the
additive rule model (b + sum of the active rules' values, RuleFit's form), which attention then
re-weights per row; a plain average (no n_i) lets a few rules carry all the weight, leaving the
rest unranked (measured on `german`: two rules held 97% of the attention mass).

Loss: BCE + l1 * sum_j |v_j| + entropy * mean_i H(a_i). A rule's global weight is its mean
attention over the rows it covers x |v_j| x support_j: how much of the model's decisions it
carries, which the selection step ranks by.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo.nn import MLP, FieldEmbedding


class RuleAttention(nn.Module):
    """Masked attention over the rules a row satisfies; returns logits[B] and attention[B, n]."""

    def __init__(
        self,
        *,
        n_rules: int,
        cardinalities: list[int],
        n_numeric: int,
        d_attention: int = 16,
        d_embedding: int = 4,
        hidden: int = 64,
        base_logit: float = 0.0,
    ) -> None:
        super().__init__()
        if n_rules < 1:
            raise ValueError(f"n_rules={n_rules}, expected at least one candidate rule")
        self.embed = FieldEmbedding(cardinalities, d_embedding) if cardinalities else None
        d_context = len(cardinalities) * d_embedding + n_numeric
        # A row with no field at all still gets a (constant) context from the bias alone.
        self.context = MLP(max(d_context, 1), [hidden], d_out=d_attention)
        self.keys = nn.Parameter(torch.randn(n_rules, d_attention) / math.sqrt(d_attention))
        self.values = nn.Parameter(torch.zeros(n_rules))
        self.bias = nn.Parameter(torch.tensor(float(base_logit)))
        self.scale = 1.0 / math.sqrt(d_attention)

    def forward(
        self, x_cat: torch.Tensor, x_num: torch.Tensor, active: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [x_num] if x_num.shape[1] else []
        if self.embed is not None:
            parts.insert(0, self.embed(x_cat).flatten(1))
        features = torch.cat(parts, dim=1) if parts else x_num.new_zeros(len(active), 1)
        scores = self.context(features) @ self.keys.T * self.scale
        scores = scores.masked_fill(~active, float("-inf"))
        attention = torch.softmax(scores, dim=1)
        attention = torch.where(active, attention, torch.zeros_like(attention))  # rows with no rule: 0
        n_active = active.sum(dim=1, dtype=attention.dtype)
        return self.bias + n_active * (attention @ self.values), attention


@dataclass(frozen=True)
class AttentionFit:
    """What one fit of the attention network leaves: per-rule global weight, value, mean
    attention over covered rows, and the epochs it trained."""

    weight: np.ndarray
    value: np.ndarray
    attention: np.ndarray
    epochs: int


def _entropy(attention: torch.Tensor) -> torch.Tensor:
    return -(attention * torch.log(attention.clamp_min(1e-12))).sum(dim=1).mean()


def _network(
    train: dict[str, torch.Tensor],
    *,
    cardinalities: list[int],
    n_numeric: int,
    d_attention: int,
    hidden: int,
    seed: int,
) -> RuleAttention:
    """A RuleAttention initialised from `seed` alone, the caller's random state untouched (torch's
    layers draw their initial weights from the global generator: forked here and restored)."""
    base_rate = float(train["y"].float().mean().clamp(1e-3, 1 - 1e-3))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return RuleAttention(
            n_rules=train["R"].shape[1],
            cardinalities=cardinalities,
            n_numeric=n_numeric,
            d_attention=d_attention,
            hidden=hidden,
            base_logit=math.log(base_rate / (1 - base_rate)),
        )


def fit_attention(
    train: dict[str, torch.Tensor],
    val: dict[str, torch.Tensor],
    *,
    cardinalities: list[int],
    n_numeric: int,
    d_attention: int,
    hidden: int,
    learning_rate: float,
    l1: float,
    entropy: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    seed: int,
    device: torch.device | str = "cpu",
) -> AttentionFit:
    """Train RuleAttention on `train` (x_cat, x_num, R bool[N, n], y) with Adam on `device`, stop
    when the validation log-loss has not improved for `patience` epochs, keep the best epoch's
    state. Initial weights and shuffling come from `seed` alone (a CPU generator, so every device
    sees the same order); torch's global random state is left as it was. Deterministic kernels
    follow the run's `trainer.deterministic`, which `zoo.fitting` sets for the whole fit."""
    device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    net = _network(
        train,
        cardinalities=cardinalities,
        n_numeric=n_numeric,
        d_attention=d_attention,
        hidden=hidden,
        seed=seed,
    ).to(device)
    train = {key: value.to(device) for key, value in train.items()}
    val = {key: value.to(device) for key, value in val.items()}
    optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate)
    n = len(train["y"])
    best_loss, best_state, best_epoch, epoch = math.inf, copy.deepcopy(net.state_dict()), 0, 0
    for epoch in range(1, max_epochs + 1):
        net.train()
        for index in torch.randperm(n, generator=generator).to(device).split(batch_size):
            logits, attention = net(train["x_cat"][index], train["x_num"][index], train["R"][index])
            loss = F.binary_cross_entropy_with_logits(logits, train["y"][index].float())
            # Per batch: mean log-loss + l1 * sum_j |v_j|, the lasso's scale (lambda = l1).
            loss = loss + l1 * net.values.abs().sum() + entropy * _entropy(attention)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        net.eval()
        with torch.no_grad():
            logits, _ = net(val["x_cat"], val["x_num"], val["R"])
            val_loss = float(F.binary_cross_entropy_with_logits(logits, val["y"].float()))
        if val_loss < best_loss:
            best_loss, best_state, best_epoch = val_loss, copy.deepcopy(net.state_dict()), epoch
        elif epoch - best_epoch >= patience:
            break
    net.load_state_dict(best_state)
    net.eval()
    with torch.no_grad():
        _, attention = net(train["x_cat"], train["x_num"], train["R"])
        covered = train["R"].float().sum(0)
        mean_attention = (attention.sum(0) / covered.clamp_min(1)).cpu().numpy()
        support = (covered / n).cpu().numpy()
        value = net.values.detach().cpu().numpy().copy()
    return AttentionFit(
        weight=mean_attention * np.abs(value) * support, value=value, attention=mean_attention, epochs=epoch
    )
