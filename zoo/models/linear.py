"""Logistic regression over one-hot categoricals, scaled numerics and (optionally) crosses."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel
from zoo.nn import OneHotLinear
from zoo.outputs import write_csv

#: The scorecard view of a linear (or wide) part, written into the run directory.
WIDE_WEIGHTS_FILE = "wide_weights.csv"
WIDE_WEIGHTS_COLUMNS = ["field", "value", "kind", "weight"]


def wide_weights_table(
    feature_spec: FeatureSpec,
    *,
    categorical: Sequence[tuple[str, torch.Tensor]] = (),
    crosses: Sequence[tuple[str, torch.Tensor]] = (),
    numeric: Sequence[tuple[str, float]] = (),
    intercept: float | None = None,
) -> pd.DataFrame:
    """One row per coefficient (field, value, kind, weight): the intercept first, then the rest
    sorted by |weight| descending, so a row's score is rebuilt from the table alone.

    `categorical` and `crosses` pair a field name with its weight vector (one weight per index,
    reserved missing/unseen included); `numeric` pairs a numeric field with its weight: per
    standard deviation, since numerics are standardised (missing indicators are 0/1).
    """
    rows: list[tuple[str, str, str, float]] = []
    for kind, fields in (("categorical", categorical), ("cross", crosses)):
        for name, weights in fields:
            values = weights.detach().float().cpu().tolist()
            field = feature_spec.field(name)
            labels = [field.label(i) for i in range(len(values))]  # type: ignore[union-attr]
            rows.extend((name, label, kind, w) for label, w in zip(labels, values, strict=True))
    rows.extend((name, "", "numeric", float(w)) for name, w in numeric)
    table = pd.DataFrame(rows, columns=WIDE_WEIGHTS_COLUMNS)
    order = table["weight"].abs().sort_values(ascending=False, kind="stable").index
    table = table.loc[order]
    if intercept is not None:
        row = [("(intercept)", "", "intercept", float(intercept))]
        first = pd.DataFrame(row, columns=WIDE_WEIGHTS_COLUMNS)
        table = pd.concat([first, table])
    return table.reset_index(drop=True)


class LogisticRegression(CreditModel):
    """Logistic regression: one linear layer over one-hot categoricals, numerics (and crosses).

    `lr_cross` (LR+Cross) is this class with `use_crosses: true` in its config.
    """

    family = "linear"
    starts_at_base_rate = False  # solved to its optimum (L-BFGS): the start does not matter

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        use_crosses: bool = False,
        l2: float = 1e-3,
        learning_rate: float = 1e-2,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        if l2 < 0:
            raise ValueError(f"l2={l2}, expected a number >= 0")
        spec = self.feature_spec
        self.use_crosses = use_crosses
        self.l2 = l2
        self.categorical = OneHotLinear(spec.cardinalities)
        self.crosses = OneHotLinear(spec.cross_cardinalities if use_crosses else [])
        with warnings.catch_warnings():  # with no numerics; its initialisation is replaced by zeros
            warnings.filterwarnings("ignore", "Initializing zero-element tensors is a no-op")
            self.numeric = nn.Linear(spec.n_numeric, 1, bias=True)
        nn.init.zeros_(self.numeric.weight)
        nn.init.zeros_(self.numeric.bias)

    def penalty(self) -> torch.Tensor | float:
        """(l2 / 2) * ||w||^2 over the coefficients (not the intercept), added to the mean log-loss:
        the objective of scikit-learn's LogisticRegression with C = 1 / (l2 * n_train)."""
        if not self.l2:
            return 0.0
        weights = [p for name, p in self.named_parameters() if not name.endswith("bias")]
        return 0.5 * self.l2 * sum((w.double() ** 2).sum() for w in weights)

    def forward(self, batch: Batch) -> torch.Tensor:
        logit = self.categorical(batch["x_cat"]) + self.numeric(batch["x_num"]).squeeze(-1)
        if self.use_crosses:
            logit = logit + self.crosses(batch["x_cross"])
        return logit

    def wide_weights(self) -> pd.DataFrame:
        """The coefficients as a scorecard table (see `wide_weights_table`)."""
        spec = self.feature_spec
        crosses = spec.crosses if self.use_crosses else ()
        return wide_weights_table(
            spec,
            categorical=[
                (f.name, w) for f, w in zip(spec.categorical, self.categorical.field_weights(), strict=True)
            ],
            crosses=[(f.name, w) for f, w in zip(crosses, self.crosses.field_weights(), strict=True)],
            numeric=list(zip(spec.numeric_names, self.numeric.weight[0].tolist(), strict=True)),
            intercept=float(self.numeric.bias.item()),
        )

    def write_artifacts(self, run_dir: Path, data: Any = None) -> None:
        """Write `wide_weights.csv`, the coefficients sorted by magnitude."""
        write_csv(Path(run_dir) / WIDE_WEIGHTS_FILE, self.wide_weights())

    # --- explanations (zoo.explain) ---------------------------------------------------------

    def field_terms(self, arrays: dict[str, Any]) -> dict[str, Any]:
        """Each field's additive term of the logit (the intercept aside), float64[B] per field."""
        from zoo.explain.contributions import linear_terms

        spec = self.feature_spec
        return linear_terms(
            spec,
            arrays,
            categorical=list(enumerate(self.categorical.field_weights())),
            crosses=list(enumerate(self.crosses.field_weights())) if self.use_crosses else [],
            numeric=list(enumerate(self.numeric.weight[0].tolist())),
        )

    def logit_terms(self, arrays: dict[str, Any]) -> Any:
        """logit = intercept + each field's term, exactly: the scorecard in points (zoo.points)."""
        from zoo.points import LogitTerms

        return LogitTerms(float(self.numeric.bias.item()), self.field_terms(arrays))

    def scorecard_weights(self) -> pd.DataFrame:
        """The coefficients per attribute (field, attribute, kind, weight) for `scorecard.csv`."""
        from zoo.points import wide_scorecard

        return wide_scorecard(self.wide_weights(), self.feature_spec)

    def field_contributions(self, arrays: dict[str, Any], reference: dict[str, Any]) -> Any:
        """Exact: each field's term minus its mean over the training reference rows, so a row's
        contributions sum to its logit minus the mean training logit."""
        from zoo.explain.contributions import Contributions, additive

        terms = self.field_terms(arrays)
        return Contributions(additive(terms, self.field_terms(reference)), list(terms), LINEAR_METHOD)

    def native_importance(self, val: dict[str, Any], reference: dict[str, Any]) -> pd.DataFrame:
        """Std of each field's logit term over the training reference rows (frequency-weighted
        spread of its category weights; |w| for a standardised numeric)."""
        return term_spread(self.field_terms(reference), "linear term std over training rows")


#: How linear contributions are measured, as `zoo predict` names it in `reason_method`.
LINEAR_METHOD = "exact linear contribution vs training mean"


def term_spread(terms: dict[str, Any], method: str) -> pd.DataFrame:
    """One row per field: the standard deviation of its logit term (a native importance)."""
    import numpy as np

    return pd.DataFrame(
        {"field": list(terms), "method": method, "importance": [float(np.std(t)) for t in terms.values()]}
    )
