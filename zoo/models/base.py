"""The base LightningModule every model plugin extends: loss, metrics, optimiser, prediction."""

from __future__ import annotations

from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import BinaryAUROC

from zoo.data.spec import FeatureSpec

Batch = dict[str, torch.Tensor]


class CreditModel(pl.LightningModule):
    """Subclasses build layers from `feature_spec` and implement `forward(batch) -> logits[B]`.

    Keyword-only constructors with explicit hyperparameters (no **kwargs), so Hydra and Optuna
    see every one; hyperparameters are saved as plain containers so checkpoints load with
    `weights_only=True`.
    """

    family: ClassVar[str] = "neural"
    #: Parameter-name fragments that get no weight decay (embeddings, norms, biases).
    no_decay: ClassVar[tuple[str, ...]] = ("bias", "norm", "embedding")

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

    @classmethod
    def describe(cls) -> str:
        """First line of the class docstring: the one-line description `zoo models` prints."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    def forward(self, batch: Batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        logits = self(batch)
        loss = F.binary_cross_entropy_with_logits(logits, batch["y"])
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(logits))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        logits = self(batch)
        loss = F.binary_cross_entropy_with_logits(logits, batch["y"])
        self.val_auc.update(torch.sigmoid(logits), batch["y"].long())
        self.log("val/loss", loss, on_step=False, on_epoch=True, batch_size=len(logits), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        auc = self.val_auc.compute()
        self.val_auc.reset()
        if not self.trainer.sanity_checking:
            self.best_val_auc = max(self.best_val_auc, float(auc))
        self.log("val/auc", auc, prog_bar=True)
        self.log("val/auc_best", self.best_val_auc)

    def predict_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> Batch:
        return {"prob": torch.sigmoid(self(batch)), "y": batch["y"], "row": batch["row"]}

    def configure_optimizers(self) -> Any:
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            exempt = param.ndim < 2 or any(key in name.lower() for key in self.no_decay)
            (no_decay if exempt else decay).append(param)
        groups = [{"params": decay, "weight_decay": self.weight_decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        return torch.optim.AdamW(groups, lr=self.learning_rate)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
