"""Neural additive model (Agarwal et al., "Neural Additive Models", NeurIPS 2021) for credit-zoo.

A scorecard with learned curves: logit = bias + one weight per category + f_j(x_j) per numeric,
each f_j a small MLP of its own feature only, so every feature's effect can be plotted alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel
from zoo.nn import FeatureWiseLinear, OneHotLinear


class NeuralAdditiveModel(CreditModel):
    """Neural additive model: one weight per category plus a small MLP curve per numeric feature."""

    family = "additive"

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        hidden: Sequence[int] = (32, 16),
        dropout: float = 0.1,
        use_crosses: bool = False,
        learning_rate: float = 1e-2,
        weight_decay: float = 1e-5,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden={list(hidden)}, expected one or more positive layer widths")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout={dropout}, expected 0 <= dropout < 1")
        spec = self.feature_spec
        self.use_crosses = use_crosses
        self.bias = nn.Parameter(torch.zeros(()))
        # The category weights are the scorecard's points. OneHotLinear keeps them in a plain
        # parameter, which AdamW decays like the curves' weights (embedding tables are not).
        self.categorical = OneHotLinear(spec.cardinalities)
        self.crosses = OneHotLinear(spec.cross_cardinalities if use_crosses else [])
        # One MLP per numeric feature, all evaluated at once: [B, n, 1] -> [B, n, 1].
        # NOTE: differs from the paper: ReLU hidden units instead of ExU, no feature dropout
        # and no output penalty.
        layers: list[nn.Module] = []
        width = 1
        for h in hidden:
            layers += [FeatureWiseLinear(spec.n_numeric, width, int(h)), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        layers.append(FeatureWiseLinear(spec.n_numeric, width, 1))
        self.curves = nn.Sequential(*layers)

    def contributions(self, x_num: torch.Tensor) -> torch.Tensor:
        """Each numeric feature's additive term f_j(x_j): float[B, n] -> float[B, n]."""
        return self.curves(x_num.unsqueeze(-1)).squeeze(-1)

    def forward(self, batch: Batch) -> torch.Tensor:
        logit = self.bias + self.categorical(batch["x_cat"]) + self.contributions(batch["x_num"]).sum(1)
        if self.use_crosses:
            logit = logit + self.crosses(batch["x_cross"])
        return logit
