"""Logistic regression over one-hot categoricals, scaled numerics and (optionally) crosses."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel
from zoo.models.layers import OneHotLinear


class LogisticRegression(CreditModel):
    """Logistic regression: one linear layer over one-hot categoricals and scaled numerics."""

    family = "linear"

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        use_crosses: bool = False,
        learning_rate: float = 1e-2,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        spec = self.feature_spec
        self.use_crosses = use_crosses
        self.categorical = OneHotLinear(spec.cardinalities)
        self.crosses = OneHotLinear(spec.cross_cardinalities if use_crosses else [])
        self.numeric = nn.Linear(spec.n_numeric, 1, bias=True)
        nn.init.zeros_(self.numeric.weight)
        nn.init.zeros_(self.numeric.bias)

    # One-hot weights are the model's coefficients: decay them like the numeric weights.
    no_decay = ("bias",)

    def forward(self, batch: Batch) -> torch.Tensor:
        logit = self.categorical(batch["x_cat"]) + self.numeric(batch["x_num"]).squeeze(-1)
        if self.use_crosses:
            logit = logit + self.crosses(batch["x_cross"])
        return logit


class LogisticRegressionCross(LogisticRegression):
    """Logistic regression over one-hot categoricals plus one-hot cross features (LR+Cross)."""

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        use_crosses: bool = True,
        learning_rate: float = 1e-2,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__(
            feature_spec=feature_spec,
            use_crosses=use_crosses,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
        )
