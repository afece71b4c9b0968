"""Wide & Deep for delinquency prediction: logistic regression and an MLP trained jointly.

Cheng et al. 2016, "Wide & Deep Learning for Recommender Systems", as adapted to SME credit
in "Wide and Deep Learning for Delinquency Risk Prediction" (eq. in section 3.3):
    y = sigmoid(W_wide x_wide + W_deep x_deep + b),
where x_wide is the one-hot (sparse) vector of the structured fields, optionally with their
crosses, and x_deep the 64-d output of a 256-128-64 ReLU MLP.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel
from zoo.models.linear import WIDE_WEIGHTS_FILE, wide_weights_table
from zoo.nn import MLP, FieldEmbedding, OneHotLinear, embed_flat, flat_width, make_numeric_embedding, select
from zoo.outputs import write_csv


class WideDeep(CreditModel):
    """Wide & Deep: LR over one-hot wide fields joined with a 256-128-64 MLP by one linear layer.

    Fields follow `feature_spec.wide` / `.deep` (the paper: structured fields and crosses to the
    wide part, behavioural numerics to the deep part); `use_crosses=False` ignores crosses.
    `wide_deep_cross` (W&D+Cross, the paper's model) is this class with `use_crosses: true`.
    """

    family = "hybrid"

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        use_crosses: bool = False,
        hidden: Sequence[int] = (256, 128, 64),
        d_embedding: int = 8,
        dropout: float = 0.2,
        numeric_embedding: str | None = None,
        learning_rate: float = 3e-3,
        wide_learning_rate: float | None = 3e-2,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        if wide_learning_rate is not None and wide_learning_rate <= 0:
            raise ValueError(f"wide_learning_rate={wide_learning_rate}, expected a positive number or None")
        self.wide_learning_rate = wide_learning_rate
        spec = self.feature_spec
        self.use_crosses = use_crosses
        wide, deep = spec.wide, spec.deep
        if not wide and not deep:  # a spec built without routing: the DataModule's default
            wide = tuple(f.name for f in spec.categorical) + tuple(f.name for f in spec.crosses)
            deep = tuple(f.name for f in spec.categorical) + spec.numeric_names
        self.wide_index = spec.indices(wide)
        self.deep_index = spec.indices(deep)
        if not use_crosses:  # the plain model sees no crosses, wherever they are routed
            self.wide_index["x_cross"] = []
            self.deep_index["x_cross"] = []
        if not any(self.deep_index.values()):
            raise ValueError(f"feature_spec.deep={list(deep)} routes no usable field to the deep part")

        # Wide: W_wide x_wide, one weight per (field, value); numerics routed here enter linearly.
        self.wide_categorical = OneHotLinear([spec.cardinalities[i] for i in self.wide_index["x_cat"]])
        self.wide_crosses = OneHotLinear([spec.cross_cardinalities[i] for i in self.wide_index["x_cross"]])
        # A [1, n] matrix rather than nn.Linear, which warns when built with no inputs (the default).
        self.wide_numeric = nn.Parameter(torch.zeros(1, len(self.wide_index["x_num"])))

        # Deep: embeddings of the deep categoricals (and crosses) with the deep numerics -> MLP.
        deep_cardinalities = [spec.cardinalities[i] for i in self.deep_index["x_cat"]]
        deep_cross_cardinalities = [spec.cross_cardinalities[i] for i in self.deep_index["x_cross"]]
        self.deep_embed = FieldEmbedding(deep_cardinalities, d_embedding)
        self.deep_embed_crosses = FieldEmbedding(deep_cross_cardinalities, d_embedding)
        n_embedded = len(self.deep_index["x_cat"]) + len(self.deep_index["x_cross"])
        # Deep numerics as encoded, or through a numeric embedding (zoo.nn.make_numeric_embedding).
        deep_numeric = [spec.numeric[i].name for i in self.deep_index["x_num"]]
        self.numeric_embedding = numeric_embedding
        self.embed_numeric = make_numeric_embedding(
            numeric_embedding,
            len(deep_numeric),
            d_embedding,
            bins=spec.numeric_bins(numeric_embedding, deep_numeric),
        )
        d_in = n_embedded * d_embedding + flat_width(self.embed_numeric, len(deep_numeric))
        self.deep = MLP(d_in, list(hidden), dropout=dropout)

        # Fusion: one linear layer over [x_wide, x_deep]. Its weights on x_wide are the wide
        # weights above, so it reduces to wide logit + W_deep x_deep + b.
        # NOTE: "wide logit concatenated with x_deep, then Linear(1 + 64, 1)" is the same model
        # with an extra scale on the wide logit; that scale is redundant and would make the
        # exported wide weights identifiable only up to a factor, so it is fixed to 1 here.
        self.head = nn.Linear(self.deep.d_out, 1)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The base groups; with `wide_learning_rate`, the wide weights get their own rate.

        # NOTE: differs from paper (one Adam rate for all); Cheng et al. 2016 train the wide part
        # with its own optimiser (FTRL). One-hot weights need to move much further than the deep
        # weights, and on small sets a single rate leaves them behind while the MLP overfits.
        """
        groups = super().parameter_groups()
        if self.wide_learning_rate is None:
            return groups
        wide = {id(p) for name, p in self.named_parameters() if name.startswith("wide_")}
        out = []
        for group in groups:
            for is_wide in (False, True):
                params = [p for p in group["params"] if (id(p) in wide) == is_wide]
                if params:
                    lr = self.wide_learning_rate if is_wide else self.learning_rate
                    out.append({"params": params, "weight_decay": group["weight_decay"], "lr": lr})
        return out

    def wide_logit(self, batch: Batch) -> torch.Tensor:
        """W_wide x_wide: the logistic-regression part, float[B]."""
        logit = self.wide_categorical(select(batch["x_cat"], self.wide_index["x_cat"]))
        logit = logit + select(batch["x_num"], self.wide_index["x_num"]) @ self.wide_numeric[0]
        if self.wide_index["x_cross"]:
            logit = logit + self.wide_crosses(select(batch["x_cross"], self.wide_index["x_cross"]))
        return logit

    def deep_features(self, batch: Batch) -> torch.Tensor:
        """x_deep: the last hidden layer of the MLP, float[B, hidden[-1]]."""
        parts = [
            self.deep_embed(select(batch["x_cat"], self.deep_index["x_cat"])).flatten(1),
            embed_flat(self.embed_numeric, select(batch["x_num"], self.deep_index["x_num"])),
        ]
        if self.deep_index["x_cross"]:
            crosses = select(batch["x_cross"], self.deep_index["x_cross"])
            parts.append(self.deep_embed_crosses(crosses).flatten(1))
        return self.deep(torch.cat(parts, dim=1))

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.wide_logit(batch) + self.head(self.deep_features(batch)).squeeze(-1)

    def wide_weights(self) -> pd.DataFrame:
        """The wide part's coefficients as a scorecard table (see `wide_weights_table`).

        Its intercept is the output layer's bias; the logit is the table's score plus the deep
        part's contribution (`head` without its bias)."""
        spec = self.feature_spec
        return wide_weights_table(
            spec,
            categorical=[
                (spec.categorical[i].name, w)
                for i, w in zip(self.wide_index["x_cat"], self.wide_categorical.field_weights(), strict=True)
            ],
            crosses=[
                (spec.crosses[i].name, w)
                for i, w in zip(self.wide_index["x_cross"], self.wide_crosses.field_weights(), strict=True)
            ],
            numeric=[
                (spec.numeric[i].name, w)
                for i, w in zip(self.wide_index["x_num"], self.wide_numeric[0].tolist(), strict=True)
            ],
            intercept=float(self.head.bias.item()),
        )

    def write_artifacts(self, run_dir: Path, data: Any = None) -> None:
        """Write `wide_weights.csv`, the wide coefficients sorted by magnitude."""
        write_csv(Path(run_dir) / WIDE_WEIGHTS_FILE, self.wide_weights())

    # --- explanations (zoo.explain) ---------------------------------------------------------

    def wide_terms(self, arrays: dict[str, Any]) -> dict[str, Any]:
        """Each wide field's additive term of the logit, float64[B] per field."""
        from zoo.explain.contributions import linear_terms

        return linear_terms(
            self.feature_spec,
            arrays,
            categorical=list(
                zip(self.wide_index["x_cat"], self.wide_categorical.field_weights(), strict=True)
            ),
            crosses=list(zip(self.wide_index["x_cross"], self.wide_crosses.field_weights(), strict=True)),
            numeric=list(zip(self.wide_index["x_num"], self.wide_numeric[0].tolist(), strict=True)),
        )

    def logit_terms(self, arrays: dict[str, Any]) -> Any:
        """logit = the output bias + each wide field's term + the deep part (not additive in fields)."""
        from zoo.points import LogitTerms

        return LogitTerms(float(self.head.bias.item()), self.wide_terms(arrays), rest=self.deep_logit(arrays))

    def scorecard_weights(self) -> pd.DataFrame:
        """The wide coefficients per attribute (field, attribute, kind, weight) for `scorecard.csv`."""
        from zoo.points import wide_scorecard

        return wide_scorecard(self.wide_weights(), self.feature_spec)

    #: How scorecard.md qualifies the sum: the deep part has no attribute table.
    scorecard_note = "and the deep part's points, which depend on the whole row and are not in this table"

    @torch.no_grad()
    def deep_logit(self, arrays: dict[str, Any]) -> Any:
        """W_deep x_deep (the deep part's share of the logit, no bias), float64[B]."""
        was_training = self.training
        self.eval()
        device = self.head.weight.device
        batch = {k: torch.from_numpy(v).to(device) for k, v in arrays.items() if k.startswith("x_")}
        out = (self.head(self.deep_features(batch)).squeeze(-1) - self.head.bias).double().cpu().numpy()
        self.train(was_training)
        return out

    def field_contributions(
        self, arrays: dict[str, Any], reference: dict[str, Any], *, n_reference: int | None = None
    ) -> Any:
        """The wide part exactly (terms minus their training mean) plus the deep part by field
        occlusion against the first `n_reference` training reference rows (the run's
        `explain.occlusion_rows`; None: `OCCLUSION_ROWS`); a field in both parts gets the sum."""
        import numpy as np

        from zoo.explain.contributions import OCCLUSION_ROWS, Contributions, additive, occlusion
        from zoo.explain.fields import fields_of, n_rows

        n_reference = OCCLUSION_ROWS if n_reference is None else n_reference
        terms = self.wide_terms(arrays)
        wide = additive(terms, self.wide_terms(reference))
        deep_fields = [
            f
            for f in fields_of(self.feature_spec)
            if any(set(cols) & set(self.deep_index.get(key, ())) for key, cols in f.columns.items())
        ]
        deep = occlusion(self.deep_logit, arrays, reference, deep_fields, n_reference=n_reference)
        names = list(dict.fromkeys([*terms, *(f.name for f in deep_fields)]))
        values = np.zeros((len(next(iter(arrays.values()))), len(names)))
        for j, name in enumerate(terms):
            values[:, names.index(name)] += wide[:, j]
        for j, field in enumerate(deep_fields):
            values[:, names.index(field.name)] += deep[:, j]
        rows = min(n_reference, n_rows(reference))
        method = f"exact wide terms vs training mean + deep part by occlusion against {rows} training rows"
        return Contributions(values, names, method)

    def native_importance(self, val: dict[str, Any], reference: dict[str, Any]) -> pd.DataFrame:
        """Std of each wide field's logit term over the training reference rows."""
        from zoo.models.linear import term_spread

        return term_spread(self.wide_terms(reference), "wide term std over training rows")
