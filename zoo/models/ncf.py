"""NCF: Neural Matrix Factorisation (NeuMF) over a borrower group and a loan group of fields.

He et al. 2017, "Neural Collaborative Filtering" (WWW), section 3.4, as the AFCC paper's baseline
(Table 2: Adam, lr 0.005; experiment=afcc_table3 keeps it, the everyday 1e-3 was chosen on the
suite). A row plays both parts of a user-item pair: its borrower fields are the "user", its loan
fields the "item". With separate GMF and MLP embeddings (NeuMF, Eq. 12):
    phi_GMF = p_u^G (.) q_i^G                                (element-wise product, Eq. 9)
    phi_MLP = a_L(W_L^T (... a_2(W_2^T [p_u^M; q_i^M] + b_2) ...) + b_L)   (ReLU tower, Eq. 10)
    y = sigmoid(h^T [phi_GMF; phi_MLP])                      (we return the logit)
The paper's embedding layer is a linear map P^T v of the user's sparse feature vector v, which
it notes may hold content features (section 3.1). Over a row's fields that map is a sum of one
embedding per field: categorical values look up a vector, numerics scale a vector by the value
(`FieldTokens`). We take the mean (the sum over the group's field count), so a side's scale does
not grow with its number of fields. `groups` of the dataset config name the fields of each side;
without them a fixed rule splits the fields (`ncf_groups`). Where the paper is silent, the choice
is marked "CHOICE" here and listed in docs/models/ncf.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel
from zoo.nn import MLP, FieldTokens, select

log = logging.getLogger(__name__)

#: The field groups (`dataset.groups`) that give the "user" and the "item" side.
USER_GROUP = "borrower"
ITEM_GROUP = "loan"


def ncf_groups(spec: FeatureSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The borrower ("user") and loan ("item") fields of a spec, by three rules:

    1. the spec has both groups `borrower` and `loan` (from `dataset.groups`): they are used as
       given (a field may be in both; fields in neither are not used);
    2. it has one of them: the other gets every categorical and numeric field that one leaves out;
    3. it has neither: the fields in the spec's order (categoricals, then numerics; missing
       indicators set aside) are split in halves, the first ceil(k/2) to the borrower and the rest
       to the loan; a single field goes to both. A missing indicator follows its field.
    Crosses are used only where a group names them (rule 1 or 2's named group).
    """
    # CHOICE: a row is one user-item pair, its borrower fields the user and its loan fields the
    # item (the paper has user and item IDs); the rules for specs without the groups are ours.
    fields = [f.name for f in spec.categorical] + list(spec.numeric_names)
    known = set(fields) | {f.name for f in spec.crosses}
    given = {name: spec.groups[name] for name in (USER_GROUP, ITEM_GROUP) if name in spec.groups}
    for name, group in given.items():
        if not group:
            raise ValueError(f"field group {name!r} is empty, expected at least one field")
        unknown = [f for f in group if f not in known]
        if unknown:
            raise ValueError(
                f"field group {name!r} names {unknown[0]!r}, which is not a field; "
                f"fields are: {', '.join(sorted(known))}"
            )
    if len(given) == 2:
        return given[USER_GROUP], given[ITEM_GROUP]
    if len(given) == 1:
        ((name, group),) = given.items()
        rest = tuple(f for f in fields if f not in group)
        if not rest:
            other = ITEM_GROUP if name == USER_GROUP else USER_GROUP
            raise ValueError(
                f"field group {name!r} holds every field, leaving none for {other!r}; name both groups"
            )
        return (group, rest) if name == USER_GROUP else (rest, group)
    indicators = {f.name: f.source for f in spec.numeric if f.is_indicator}
    base = [f for f in fields if f not in indicators]
    if not base:
        raise ValueError("feature_spec has no categorical and no numeric field, expected at least one")
    half = math.ceil(len(base) / 2)
    user, item = base[:half], base[half:] or base[:1]  # one field: both sides

    def with_indicators(group: list[str]) -> tuple[str, ...]:
        return tuple(f for f in fields if f in group or indicators.get(f) in group)

    return with_indicators(user), with_indicators(item)


class GroupEmbedding(nn.Module):
    """One side's vector: the mean of its fields' tokens, [B, d] (NeuMF's P^T v, normalised).

    Categorical fields and crosses look up an embedding; numeric fields scale a learned vector by
    the value (`FieldTokens`), so a value at the training mean adds a zero vector.
    """

    def __init__(
        self, spec: FeatureSpec, fields: Sequence[str], d_embedding: int, numeric_embedding: str | None = None
    ) -> None:
        super().__init__()
        index = spec.indices(fields)
        self.cat_index, self.cross_index, self.num_index = index["x_cat"], index["x_cross"], index["x_num"]
        cardinalities = [spec.cardinalities[i] for i in self.cat_index]
        cardinalities += [spec.cross_cardinalities[i] for i in self.cross_index]
        # CHOICE: numerics as bias-free tokens x_j v_j and the zoo's initialisation (embeddings
        # N(0, 0.05), numeric vectors U(+-1/sqrt(d))); the authors initialise N(0, 0.01).
        numeric = [spec.numeric[i].name for i in self.num_index]
        self.tokens = FieldTokens(
            cardinalities,
            len(self.num_index),
            d_embedding,
            numeric_embedding=numeric_embedding,
            bins=spec.numeric_bins(numeric_embedding, numeric),
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        categorical = select(batch["x_cat"], self.cat_index)
        if self.cross_index:
            categorical = torch.cat([categorical, select(batch["x_cross"], self.cross_index)], dim=1)
        # CHOICE: mean pooling, not a learned projection of the concatenated tokens: a linear map
        # of the concatenation is itself a sum of per-field embeddings, so it adds parameters but
        # no expressiveness; the mean is the paper's embedding layer with the scale kept fixed.
        return self.tokens(categorical, select(batch["x_num"], self.num_index)).mean(dim=1)


class NCF(CreditModel):
    """NCF (NeuMF): GMF and an MLP tower over pooled borrower and loan embeddings, one linear head."""

    family = "interaction"

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        n_factors: int = 8,
        layers: Sequence[int] = (64, 32, 16, 8),
        dropout: float = 0.0,
        numeric_embedding: str | None = None,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        if n_factors < 1:
            raise ValueError(f"n_factors={n_factors}, expected a positive integer")
        layers = [int(w) for w in layers]
        if not layers or layers[0] < 2 or layers[0] % 2:
            raise ValueError(f"layers={layers}, expected an even input width >= 2 first (two halves)")
        spec = self.feature_spec
        self.user_fields, self.item_fields = ncf_groups(spec)
        if USER_GROUP not in spec.groups and ITEM_GROUP not in spec.groups:
            log.info(
                "ncf: no %r/%r field groups in the spec; split in halves: %s | %s",
                USER_GROUP,
                ITEM_GROUP,
                ", ".join(self.user_fields),
                ", ".join(self.item_fields),
            )
        # GMF and MLP have embeddings of their own (NeuMF, section 3.4: "separate embeddings").
        # CHOICE: trained jointly from scratch, without the paper's pre-trained GMF and MLP.
        self.numeric_embedding = numeric_embedding
        self.gmf_user = GroupEmbedding(spec, self.user_fields, n_factors, numeric_embedding)
        self.gmf_item = GroupEmbedding(spec, self.item_fields, n_factors, numeric_embedding)
        # CHOICE: `layers` as in the authors' code (NeuMF.py --layers [64,32,16,8]): the first
        # width is the concatenated [p_u; q_i], so each side's MLP vector has layers[0] / 2 entries
        # and the ReLU tower is 32-16-8; the last width is the MLP's predictive factors.
        self.mlp_user = GroupEmbedding(spec, self.user_fields, layers[0] // 2, numeric_embedding)
        self.mlp_item = GroupEmbedding(spec, self.item_fields, layers[0] // 2, numeric_embedding)
        # CHOICE: optional dropout after each hidden layer (the paper has none: dropout 0.0).
        self.mlp = MLP(layers[0], layers[1:], dropout=dropout)
        self.head = nn.Linear(n_factors + self.mlp.d_out, 1)

    def gmf(self, batch: Batch) -> torch.Tensor:
        """phi_GMF = p_u (.) q_i, the element-wise product of the two sides' GMF vectors: [B, n_factors]."""
        return self.gmf_user(batch) * self.gmf_item(batch)

    def forward(self, batch: Batch) -> torch.Tensor:
        tower = self.mlp(torch.cat([self.mlp_user(batch), self.mlp_item(batch)], dim=1))
        return self.head(torch.cat([self.gmf(batch), tower], dim=1)).squeeze(-1)
