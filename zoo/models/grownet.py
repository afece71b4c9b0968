"""GrowNet (Badirli et al. 2020): gradient boosting with shallow neural networks as weak learners.

"Gradient Boosting Neural Networks: GrowNet" (arXiv:2002.07971); the AFCC paper's "hybrid boosting
network" (HBN) baseline. The ensemble after k stages is

    F_k(x) = c0 + alpha * sum_{j<=k} f_j(x, z_{j-1}(x))

with c0 the training log-odds, alpha one learned boost rate and z_{j-1} the penultimate layer of the
previous learner (none for the first). Stage k fits the new learner f_k alone, the earlier ones
frozen, to the second-order (Newton) target of the ensemble so far: with
p = sigmoid(F_{k-1}) and y in {0, 1}, the binary cross-entropy has gradient g = p - y and hessian
h = p (1 - p) in F, and f_k minimises the hessian-weighted squared error

    mean_i h_i (alpha * f_k(x_i) - (-g_i / h_i))^2,

which is the second-order Taylor expansion of the loss at F_{k-1} up to a constant and a factor 2
(the paper writes y' = 2y - 1 in {-1, 1}; the targets are the same). The paper's fully corrective
step then trains every learner and alpha together on the ensemble's cross-entropy.

Inside a Lightning run the stages follow the epochs: each stage is `epochs_per_stage` epochs of
boosting then `correct_epochs` of correction, and training ends after `n_stages` stages. All
learners exist from construction, so a checkpoint has one shape; the buffer `n_active` says how
many are in the ensemble (a learner joins when its stage starts), and eval-mode `forward` sums those.
Outside a trainer nothing is staged: `n_active = n_stages` and `loss` is the corrective one, so the
model is the whole ensemble trained jointly. Choices the paper leaves open are marked "CHOICE" and
listed in docs/models/grownet.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.base_rate import training_log_odds
from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel, Output
from zoo.nn import NORMALIZATIONS, FieldEmbedding, embed_flat, flat_width, make_norm, make_numeric_embedding

log = logging.getLogger(__name__)


class WeakLearner(nn.Module):
    """One GrowNet weak learner: (x_cat, x_num, previous penultimate) -> (penultimate, output).

    As the authors' MLP_2HL: [embeddings, numerics, previous penultimate] -> BatchNorm (not on the
    first learner) -> linear -> LeakyReLU(0.1) -> BatchNorm per hidden layer but the last, whose
    pre-activation is the penultimate layer the next learner reads; -> ReLU -> linear -> f(x).
    `normalization` puts LayerNorm (`layer`) or nothing (`none`) where the authors have BatchNorm.
    """

    def __init__(
        self,
        cardinalities: Sequence[int],
        n_numeric: int,
        *,
        d_embedding: int,
        hidden: Sequence[int],
        d_previous: int,
        numeric_embedding: str | None = None,
        bins: Sequence[Sequence[float]] | None = None,
        normalization: str = "batch",
    ) -> None:
        super().__init__()
        # CHOICE: each learner embeds the categoricals with its own table (a factorised first
        # layer over their one-hot encoding): a table shared by all learners would move the
        # inputs of the frozen ones while a new learner is fitted.
        self.embed = FieldEmbedding(cardinalities, d_embedding)
        self.embed_numeric = make_numeric_embedding(numeric_embedding, n_numeric, d_embedding, bins=bins)
        d_in = len(cardinalities) * d_embedding + flat_width(self.embed_numeric, n_numeric) + d_previous
        if d_in - d_previous < 1:
            raise ValueError("feature_spec has no categorical and no numeric field, expected at least one")
        self.input_norm = make_norm(normalization, d_in) if d_previous else None
        layers: list[nn.Module] = []
        width = d_in
        for h in hidden[:-1]:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.1), make_norm(normalization, h)]
            width = h
        layers.append(nn.Linear(width, hidden[-1]))
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(hidden[-1], 1)

    def forward(
        self, x_cat: torch.Tensor, x_num: torch.Tensor, previous: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [self.embed(x_cat).flatten(1), embed_flat(self.embed_numeric, x_num)]
        if previous is not None:
            parts.append(previous)
        x = torch.cat(parts, dim=1)
        if self.input_norm is not None:
            x = self.input_norm(x)
        penultimate = self.body(x)
        return penultimate, self.head(F.relu(penultimate)).squeeze(-1)


class GrowNet(CreditModel):
    """GrowNet (HBN): shallow MLPs boosted stage by stage on Newton targets, with corrective steps."""

    starts_at_base_rate = False  # its own c0 (`prior_logit`) is the training log-odds already

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        n_stages: int = 8,
        hidden: Sequence[int] = (16, 16),
        d_embedding: int = 8,
        epochs_per_stage: int = 8,
        correct_epochs: int = 4,
        initial_boost_rate: float = 1.0,
        numeric_embedding: str | None = None,
        normalization: str = "batch",
        learning_rate: float = 3e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate, weight_decay=weight_decay)
        if n_stages < 1:
            raise ValueError(f"n_stages={n_stages}, expected a positive integer")
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden={list(hidden)}, expected one or more positive layer widths")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization={normalization!r}, expected one of {list(NORMALIZATIONS)}")
        if epochs_per_stage < 1 or correct_epochs < 0:
            raise ValueError(
                f"epochs_per_stage={epochs_per_stage}, correct_epochs={correct_epochs}, "
                "expected integers >= 1 and >= 0"
            )
        spec = self.feature_spec
        hidden = [int(h) for h in hidden]
        self.n_stages = n_stages
        self.epochs_per_stage = epochs_per_stage
        self.correct_epochs = correct_epochs
        self.learners = nn.ModuleList(
            WeakLearner(
                spec.cardinalities,
                spec.n_numeric,
                d_embedding=d_embedding,
                hidden=hidden,
                d_previous=hidden[-1] if k else 0,
                numeric_embedding=numeric_embedding,
                bins=spec.numeric_bins(numeric_embedding),
                normalization=normalization,
            )
            for k in range(n_stages)
        )
        # One boost rate for the whole sum, initialised as the authors' code does (1.0) and
        # learned in the corrective steps only (the boosting loss uses it as a constant).
        self.boost_rate = nn.Parameter(torch.tensor(float(initial_boost_rate)))
        #: c0: the training log-odds, set when a fit starts (0 outside a trainer).
        self.prior_logit: torch.Tensor
        self.register_buffer("prior_logit", torch.zeros(()))
        #: How many learners the ensemble holds; all of them until a trainer stages the fit.
        self.n_active: torch.Tensor
        self.register_buffer("n_active", torch.tensor(n_stages))
        #: The learner being boosted in this epoch; None in corrective epochs and outside a trainer.
        self.fitting_stage: int | None = None

    # --- the ensemble ---------------------------------------------------------------------------

    def ensemble(self, batch: Batch, n_learners: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """sum_{j<n} f_j(x) over the first `n_learners` learners, and the last one's penultimate."""
        x_cat, x_num = batch["x_cat"], batch["x_num"]
        total = x_num.new_zeros(len(x_cat))
        penultimate = None
        for learner in self.learners[:n_learners]:
            penultimate, output = learner(x_cat, x_num, penultimate)
            total = total + output
        return total, penultimate

    def forward(self, batch: Batch) -> Output:
        stage = self.fitting_stage if self.training else None
        if stage is None:
            total, _ = self.ensemble(batch, int(self.n_active))
            return self.prior_logit + self.boost_rate * total
        with torch.no_grad():  # the frozen ensemble F_{k-1}, in eval mode (see `train`)
            total, penultimate = self.ensemble(batch, stage)
            previous = self.prior_logit + self.boost_rate * total
        _, learner = self.learners[stage](batch["x_cat"], batch["x_num"], penultimate)
        logits = previous + self.boost_rate.detach() * learner
        return {"logits": logits, "previous": previous, "learner": learner}

    def loss(self, batch: Batch, output: Output) -> Mapping[str, torch.Tensor]:
        """Boosting epochs: the hessian-weighted squared error of alpha * f_k against the Newton
        target -g/h of F_{k-1}. Corrective epochs (and outside a trainer): the ensemble's BCE."""
        y = batch["y"].double()
        bce = F.binary_cross_entropy_with_logits(self.logits(output).double(), y)
        anchor = self._ddp_anchor()
        if isinstance(output, torch.Tensor):
            return {"loss": bce + anchor, "bce": bce.detach()}
        p = torch.sigmoid(output["previous"].double())
        # In float64 the hessian underflows only past |F| ~ 700; the floor keeps -g/h finite there.
        hessian = (p * (1 - p)).clamp_min(1e-12)
        target = (y - p) / hessian  # -g / h
        step = self.boost_rate.detach().double() * output["learner"].double()
        newton = (hessian * (step - target) ** 2).mean()
        return {"loss": newton + anchor, "newton_mse": newton.detach(), "bce": bce.detach()}

    # --- staging the fit (Lightning hooks) ------------------------------------------------------

    def stage_of_epoch(self, epoch: int) -> tuple[int, bool]:
        """The stage an epoch belongs to and whether it boosts (else corrects)."""
        # CHOICE: stages are counted in epochs, as the authors' `epochs_per_stage` and
        # `correct_epoch`; every stage has its corrective step, the first included (their code
        # skips it there). One optimiser serves the whole run, at one rate: a learner's Adam
        # moments start empty at its stage as with their fresh optimiser per stage, but the
        # corrective steps keep theirs and do not halve the rate as their code does.
        stage, within = divmod(epoch, self.epochs_per_stage + self.correct_epochs)
        return stage, within < self.epochs_per_stage

    def idle_parameters(self) -> list[nn.Parameter]:
        """What the current step does not train: all but the boosted learner, or in corrective
        steps the learners not yet in the ensemble."""
        if self.fitting_stage is not None:
            trained = {id(p) for p in self.learners[self.fitting_stage].parameters()}
            return [p for p in self.parameters() if id(p) not in trained]
        return [p for learner in self.learners[int(self.n_active) :] for p in learner.parameters()]

    def _ddp_anchor(self) -> torch.Tensor | float:
        """0 x every idle parameter: under DDP each parameter must get a gradient every step.
        `on_after_backward` then drops those zeros, so the optimiser leaves idle ones alone."""
        idle = self.idle_parameters()
        return sum(p.sum() for p in idle) * 0.0 if idle else 0.0

    def on_after_backward(self) -> None:
        for p in self.idle_parameters():
            p.grad = None  # AdamW skips a parameter without a gradient (no momentum, no decay)

    def train(self, mode: bool = True) -> GrowNet:
        """Training mode, except the frozen learners of a boosting epoch: they compute F_{k-1} as
        in evaluation (BatchNorm running statistics, which they then keep)."""
        # CHOICE: the authors' code runs them in training mode under no_grad, so F_{k-1} uses batch
        # statistics and the frozen learners' running statistics keep moving.
        super().train(mode)
        stage = getattr(self, "fitting_stage", None)
        if mode and stage is not None:
            for learner in self.learners[:stage]:
                learner.eval()
        return self

    def on_train_start(self) -> None:
        schedule = self.n_stages * (self.epochs_per_stage + self.correct_epochs)
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and 0 <= max_epochs < schedule:
            stages = -(-max_epochs // (self.epochs_per_stage + self.correct_epochs))
            log.warning(f"hbn: max_epochs={max_epochs} fits {stages} of {self.n_stages} stages")
        if self.trainer.global_step == 0:  # a fresh fit; a resumed one has c0 in its checkpoint
            self.prior_logit.fill_(training_log_odds(self.trainer, self.device))

    def on_train_epoch_start(self) -> None:
        # CHOICE: a learner joins the ensemble when its stage starts, so validation (and the best
        # checkpoint) during its boosting epochs sees F_{k-1} + alpha f_k as fitted so far.
        stage, boosting = self.stage_of_epoch(self.current_epoch)
        if stage >= self.n_stages:  # past the schedule (min_epochs): keep correcting all of them
            stage, boosting = self.n_stages - 1, False
        self.n_active.fill_(stage + 1)
        self.fitting_stage = stage if boosting else None
        self.train()

    def on_train_epoch_end(self) -> None:
        # The fit ends with the schedule, as the authors' loop over `num_nets` (or at max_epochs).
        if self.current_epoch + 1 >= self.n_stages * (self.epochs_per_stage + self.correct_epochs):
            self.trainer.should_stop = True

    def on_train_end(self) -> None:
        self.fitting_stage = None
