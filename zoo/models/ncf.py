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
without them a fixed rule splits the fields (`ncf_groups`). As the paper's best results (section
3.4.1), GMF and MLP are first trained alone and NeuMF starts from both (`pretrain`). Where the
paper is silent, the choice is marked "CHOICE" here and listed in docs/models/ncf.md.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel, broadcast_from_rank0, fit_batches
from zoo.nn import MLP, FieldTokens, select
from zoo.outputs import write_csv

log = logging.getLogger(__name__)

#: Validation log-loss of GMF and MLP per pretraining epoch, written with every pretrained run.
PRETRAINING_FILE = "ncf_pretraining.csv"
#: The parts pretrained alone before NeuMF (section 3.4.1), in order.
PARTS = ("gmf", "mlp")

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
        pretrain_epochs: int = 200,
        pretrain_patience: int = 10,
        alpha: float = 0.5,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        if isinstance(pretrain_epochs, bool) or not isinstance(pretrain_epochs, int) or pretrain_epochs < 0:
            raise ValueError(
                f"pretrain_epochs={pretrain_epochs!r}, expected an integer >= 0 (0: no pretraining)"
            )
        if (
            isinstance(pretrain_patience, bool)
            or not isinstance(pretrain_patience, int)
            or pretrain_patience < 1
        ):
            raise ValueError(
                f"pretrain_patience={pretrain_patience!r}, expected a positive integer of epochs"
            )
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
            raise ValueError(f"alpha={alpha!r}, expected a weight 0 <= alpha <= 1 (GMF's share of the head)")
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
        # With pretrain_epochs > 0 each is first trained alone (section 3.4.1, `pretrain`).
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_patience = pretrain_patience
        self.alpha = alpha
        self.n_factors = n_factors
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
        #: Validation log-loss per [part, epoch] of pretraining (training loss without validation
        #: rows); NaN where not run or stopped early. In the state dict, so the best checkpoint
        #: keeps the record; checkpoints saved before pretraining existed load without it.
        self.pretrain_history: torch.Tensor
        self.register_buffer("pretrain_history", torch.full((2, pretrain_epochs), math.nan))
        self.register_load_state_dict_pre_hook(_history_of_older_checkpoints)

    def gmf(self, batch: Batch) -> torch.Tensor:
        """phi_GMF = p_u (.) q_i, the element-wise product of the two sides' GMF vectors: [B, n_factors]."""
        return self.gmf_user(batch) * self.gmf_item(batch)

    def tower(self, batch: Batch) -> torch.Tensor:
        """phi_MLP: the ReLU tower over [p_u^M; q_i^M], [B, layers[-1]]."""
        return self.mlp(torch.cat([self.mlp_user(batch), self.mlp_item(batch)], dim=1))

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.head(torch.cat([self.gmf(batch), self.tower(batch)], dim=1)).squeeze(-1)

    def pretrain(self, train: Iterable[Batch], val: Iterable[Batch] | None = None) -> torch.Tensor:
        """He et al. 2017, section 3.4.1: GMF and MLP each trained alone with a head of its own,
        then NeuMF's head set to [alpha h_GMF; (1 - alpha) h_MLP]; returns `pretrain_history`."""
        parts: dict[str, tuple[list[nn.Module], Callable[[Batch], torch.Tensor], int]] = {
            "gmf": ([self.gmf_user, self.gmf_item], self.gmf, self.n_factors),
            "mlp": ([self.mlp_user, self.mlp_item, self.mlp], self.tower, self.mlp.d_out),
        }
        heads = [self._pretrain_part(k, *parts[name], train, val) for k, name in enumerate(PARTS)]
        with torch.no_grad():
            (gmf, mlp), a = heads, self.alpha
            self.head.weight.copy_(torch.cat([a * gmf.weight, (1 - a) * mlp.weight], dim=1))
            self.head.bias.copy_(a * gmf.bias + (1 - a) * mlp.bias)
        self.zero_grad(set_to_none=True)
        return self.pretrain_history

    def _pretrain_part(
        self,
        k: int,
        modules: list[nn.Module],
        features: Callable[[Batch], torch.Tensor],
        width: int,
        train: Iterable[Batch],
        val: Iterable[Batch] | None,
    ) -> nn.Linear:
        """One part with a fresh linear head, up to `pretrain_epochs` epochs of Adam on log-loss,
        stopped `pretrain_patience` epochs after the lowest validation log-loss, whose weights are
        kept (all epochs and the last weights without validation rows)."""
        # CHOICE: the authors train each part for a fixed number of epochs and keep the best
        # evaluated one; we keep the best by validation log-loss, the fit's own early-stopping
        # metric, and plain Adam at the model's rate without decay (their pretraining learner).
        head = nn.Linear(width, 1).to(self.device)
        params = [p for m in [*modules, head] for p in m.parameters()]
        optimizer = torch.optim.Adam(params, lr=self.learning_rate)
        best, kept, since = math.inf, None, 0

        def logits(batch: Batch) -> torch.Tensor:
            # From the training bad rate, as the fit (the offset is 0 when the run does not use it).
            return head(features(batch)).squeeze(-1) + self.logit_offset

        was_training = self.training
        for epoch in range(self.pretrain_epochs):
            self.train()
            total, rows = torch.zeros((), dtype=torch.float64, device=self.device), 0  # no sync a step
            with torch.enable_grad():
                for batch in train:
                    batch = {key: value.to(self.device) for key, value in batch.items()}
                    loss = F.binary_cross_entropy_with_logits(logits(batch), batch["y"].float())
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total, rows = total + loss.detach().double() * len(batch["y"]), rows + len(batch["y"])
            score, validated = float(total) / max(rows, 1), False
            if val is not None:
                self.eval()
                total, rows = torch.zeros((), dtype=torch.float64, device=self.device), 0
                with torch.no_grad():
                    for batch in val:
                        batch = {key: value.to(self.device) for key, value in batch.items()}
                        loss = F.binary_cross_entropy_with_logits(
                            logits(batch), batch["y"].float(), reduction="sum"
                        )
                        total, rows = total + loss.double(), rows + len(batch["y"])
                if rows:  # a validation split without rows leaves the training loss
                    score, validated = float(total) / rows, True
            self.pretrain_history[k, epoch] = score
            if score < best or not validated:
                best, kept, since = score, copy.deepcopy([m.state_dict() for m in [*modules, head]]), 0
            else:
                since += 1
                if since >= self.pretrain_patience:
                    break
        if kept is not None:
            for m, state in zip([*modules, head], kept, strict=True):
                m.load_state_dict(state)
        self.train(was_training)
        return head

    def on_train_start(self) -> None:
        """Pretrain GMF and MLP before NeuMF's first step of a fresh fit (a resumed one has
        NeuMF's weights in its checkpoint)."""
        if not self.pretrain_epochs or self.trainer.global_step > 0:
            return
        # CHOICE: NeuMF is then fine-tuned by the run's optimiser (the zoo's recipe), not the
        # authors' plain SGD (docs/models/ncf.md, choice 5).
        train = fit_batches(self, "train")
        assert train is not None  # fit sets the training loader up before on_train_start
        self.pretrain(train, fit_batches(self, "val"))
        # Under DDP each rank pretrained on its own shard: all start NeuMF from rank 0's.
        broadcast_from_rank0([*self.parameters(), self.pretrain_history])

    def pretraining_table(self) -> pd.DataFrame:
        """`pretrain_history` as rows: part (gmf, mlp), epoch, loss (validation log-loss)."""
        history = self.pretrain_history.double().cpu().tolist()
        return pd.DataFrame(
            [
                {"part": name, "epoch": e + 1, "loss": v}
                for name, row in zip(PARTS, history, strict=True)
                for e, v in enumerate(row)
                if math.isfinite(v)  # epochs after an early stop were not run
            ],
            columns=["part", "epoch", "loss"],
        )

    def write_artifacts(self, run_dir: Path, data: Any = None) -> None:
        """Write the pretraining record (`ncf_pretraining.csv`) when this fit pretrained."""
        if bool(torch.isfinite(self.pretrain_history).any()):
            write_csv(Path(run_dir) / PRETRAINING_FILE, self.pretraining_table())


def _history_of_older_checkpoints(module: nn.Module, state: dict[str, Any], prefix: str, *args: Any) -> None:
    """Checkpoints saved before pretraining existed load with an empty record, as they trained."""
    assert isinstance(module, NCF)
    state.setdefault(prefix + "pretrain_history", module.pretrain_history.clone())
