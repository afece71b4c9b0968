"""The base LightningModule every model plugin extends: loss hook, metrics, optimiser, prediction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import BinaryAUROC

from zoo.data.spec import FeatureSpec
from zoo.nn import NumericEmbedding, NumericTokenizer

Batch = dict[str, torch.Tensor]
#: What `forward` returns: logits float[B], or in training mode optionally a dict holding
#: "logits" and the intermediates a model's `loss` needs (auxiliary terms).
Output = torch.Tensor | Mapping[str, torch.Tensor]

#: Modules whose parameters get no weight decay: embedding tables (categorical and numeric)
#: and normalisation layers, as in rtdl. Coefficient tables (`OneHotLinear`) are decayed.
NO_DECAY_MODULES: tuple[type[nn.Module], ...] = (
    nn.Embedding,
    nn.EmbeddingBag,
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    NumericEmbedding,
    NumericTokenizer,
)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups decided by module type: embeddings, norms and biases are not decayed."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        exempt_module = isinstance(module, NO_DECAY_MODULES)
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (no_decay if exempt_module or name == "bias" else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


class CreditModel(pl.LightningModule):
    """Subclasses build layers from `feature_spec` and implement `forward(batch) -> logits[B]`.

    Keyword-only constructors with explicit hyperparameters (no **kwargs), so Hydra and Optuna
    see every one; hyperparameters are saved as plain containers so checkpoints load with
    `weights_only=True`. The optimiser and schedule come from the run's config (`recipe`), not
    from the class.
    """

    family: ClassVar[str] = "neural"
    #: True: batches carry `x_raw` (numerics in raw units, NaN missing) beside the encoded ones.
    uses_raw_values: ClassVar[bool] = False
    #: True: a fixed `logit_offset` (the training log-odds, set by `zoo.base_rate.StartAtBaseRate`
    #: under `start_at_base_rate: true`) is added to every forward's logits. False for models
    #: solved to their optimum (L-BFGS), fitted directly, or with a prior of their own.
    starts_at_base_rate: ClassVar[bool] = True

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        if learning_rate <= 0:
            raise ValueError(f"learning_rate={learning_rate}, expected a positive number")
        if weight_decay < 0:
            raise ValueError(f"weight_decay={weight_decay}, expected a number >= 0")
        self.feature_spec = FeatureSpec.from_dict(feature_spec)
        self.save_hyperparameters(ignore=["feature_spec"])
        self.hparams["feature_spec"] = self.feature_spec.to_dict()
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.val_auc = BinaryAUROC()
        self.best_val_auc = 0.0
        #: Per-epoch sums of batch mean x rows, as tensors on the device, and rows, per stage:
        #: logged once an epoch, so a step never waits on the device (no per-step `self.log`).
        self._epoch_sums: dict[str, dict[str, torch.Tensor]] = {}
        self._epoch_rows: dict[str, int] = {}
        #: Set by the training run (`zoo.optim.Recipe`); None: AdamW at `learning_rate`.
        self.recipe: Any = None
        if self.starts_at_base_rate:
            self.logit_offset: torch.Tensor
            self.register_buffer("logit_offset", torch.zeros(()))
            self.register_forward_hook(_add_logit_offset)
            self.register_load_state_dict_pre_hook(_offset_of_older_checkpoints)

    @classmethod
    def describe(cls) -> str:
        """First line of the class docstring: the one-line description `zoo models` prints."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    def forward(self, batch: Batch) -> Output:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def logits(output: Output) -> torch.Tensor:
        """The logits of a forward output (a tensor, or a dict holding "logits")."""
        return output if isinstance(output, torch.Tensor) else output["logits"]

    def loss(self, batch: Batch, output: Output) -> torch.Tensor | Mapping[str, torch.Tensor]:
        """Binary cross-entropy on the logits plus `penalty()`. Models with auxiliary terms
        override this and return {"loss": total, "<term>": value, ...}; every term is logged."""
        # In float64: [B] values cost nothing to widen, and convex models solved by L-BFGS reach
        # the optimum only when the line search can resolve the objective past float32.
        logits = self.logits(output).double()
        return F.binary_cross_entropy_with_logits(logits, batch["y"].double()) + self.penalty()

    def penalty(self) -> torch.Tensor | float:
        """An explicit regulariser added to the loss (e.g. an L2 strength); none by default."""
        return 0.0

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        terms = self.loss(batch, self(batch))
        if isinstance(terms, torch.Tensor):
            terms = {"loss": terms}
        self._accumulate("train", terms, len(batch["y"]))
        if self._trainer is not None and batch_idx + 1 == self._trainer.num_training_batches:
            self._log_epoch_means("train")  # here, not in a hook a subclass may override
        return terms["loss"]

    def on_train_epoch_end(self) -> None:
        self._log_epoch_means("train")  # an epoch cut short (max_steps, limit_train_batches)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        logits = self.logits(self(batch))
        loss = F.binary_cross_entropy_with_logits(logits, batch["y"])
        self.val_auc.update(torch.sigmoid(logits), batch["y"].long())
        self._accumulate("val", {"loss": loss}, len(logits))

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_means("val")
        auc = self.val_auc.compute()
        self.val_auc.reset()
        if not self.trainer.sanity_checking:
            self.best_val_auc = max(self.best_val_auc, float(auc))
        self.log("val/auc", auc, prog_bar=True)
        self.log("val/auc_best", self.best_val_auc)

    def _accumulate(self, stage: str, terms: Mapping[str, Any], rows: int) -> None:
        """Add each term's batch mean x rows to the stage's sums on the device (no host sync)."""
        sums = self._epoch_sums.setdefault(stage, {})
        for name, value in terms.items():
            value = torch.as_tensor(value, device=self.device).detach()
            if value.dtype not in (torch.float32, torch.float64):
                value = value.float()
            sums[name] = value * rows if name not in sums else sums[name] + value * rows
        self._epoch_rows[stage] = self._epoch_rows.get(stage, 0) + rows

    def _log_epoch_means(self, stage: str) -> None:
        """Log `stage/<term>`: the row-weighted mean over the epoch, summed across DDP ranks
        (what `self.log(on_epoch=True, sync_dist=True)` computes, with one update an epoch)."""
        sums = self._epoch_sums.pop(stage, None)
        rows = self._epoch_rows.pop(stage, 0)
        if not sums:
            return
        reduce = self.trainer.strategy.reduce
        total_rows = reduce(torch.tensor(float(rows), device=self.device), reduce_op="sum")
        for name, total in sums.items():
            mean = reduce(total, reduce_op="sum") / total_rows.to(total.dtype)
            self.log(f"{stage}/{name}", mean, on_step=False, on_epoch=True)

    def predict_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> Batch:
        # The sigmoid in float64, rounded once: the vectorised float32 kernel differs in the last
        # bit by a row's position in the batch, and scoring must reproduce a run's predictions.
        prob = torch.sigmoid(self.logits(self(batch)).double()).float()
        return {"prob": prob, "y": batch["y"], "row": batch["row"]}

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimiser groups; override to give parts their own rate (keys as torch's groups)."""
        return parameter_groups(self, self.weight_decay)

    def configure_optimizers(self) -> Any:
        groups = self.parameter_groups()
        if self.recipe is None:
            return torch.optim.AdamW(groups, lr=self.learning_rate)
        return self.recipe.configure(self, groups)


def _add_logit_offset(model: CreditModel, args: Any, output: Output) -> Output:
    """Forward hook: the model's logits plus its `logit_offset` (0 until a fit sets it)."""
    if isinstance(output, torch.Tensor):
        return output + model.logit_offset
    return {**output, "logits": output["logits"] + model.logit_offset}


def _offset_of_older_checkpoints(module: nn.Module, state: dict[str, Any], prefix: str, *args: Any) -> None:
    """Checkpoints saved before `logit_offset` existed load with an offset of 0, as they scored."""
    state.setdefault(prefix + "logit_offset", torch.zeros(()))


def fit_batches(model: pl.LightningModule, split: str) -> Iterable[Batch] | None:
    """Batches of the running fit's `split` ("train" shuffled, or "val"), for work a model does
    before its first step (pretraining): the DataModule's own loader, a fresh one so the fit's
    epochs are not shifted; plain loaders (tests) serve as they are; None: no validation rows."""
    dm: Any = getattr(model.trainer, "datamodule", None)
    if hasattr(dm, "loader"):
        return dm.loader(split, shuffle=split == "train")
    if split == "train":
        return model.trainer.train_dataloader
    loaders: Any = model.trainer.val_dataloaders
    return loaders[0] if isinstance(loaders, list | tuple) else loaders


def broadcast_from_rank0(tensors: Iterable[torch.Tensor]) -> None:
    """Under DDP, every rank takes rank 0's values (after per-rank pretraining); else nothing."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        for tensor in tensors:
            torch.distributed.broadcast(tensor.data, src=0)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
