"""Neural models start at the training bad rate: a fixed log-odds added to their logits.

With a bias of 0 a fresh network predicts p = 0.5 for every row; on a file with 2% bad loans
the first epochs then go to pulling every logit down, and early stopping on a few dozen
validation defaults can end the run before the features are learnt. Starting at the base rate
(CatBoost's `boost_from_average`, GrowNet's c0, the prior initialisation of Lin et al. 2017)
removes that phase: measured in docs/performance.md. Set once at the start of a fresh fit; a
resumed fit keeps the value in its checkpoint.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch


def training_log_odds(trainer: pl.Trainer, device: torch.device | None = None) -> torch.Tensor:
    """log(bad / good) over the training rows of a fit (every rank's), clipped to (1e-6, 1 - 1e-6).

    The DataModule's loader holds every training row on each rank, so its labels are read
    directly; a plain loader (tests, third-party modules) is counted in one pass, summed across ranks.
    """
    loader: Any = trainer.train_dataloader
    assert loader is not None  # fit sets the training loader up before on_train_start
    tensors = getattr(loader, "tensors", None)
    if isinstance(tensors, dict) and "y" in tensors:
        y = tensors["y"].to(torch.float64)
        positives, rows = y.sum(), torch.tensor(float(len(y)), dtype=torch.float64, device=y.device)
    else:
        counts = torch.zeros(2, dtype=torch.float64, device=device)
        for batch in loader:
            y = batch["y"].to(counts.device, torch.float64)
            counts += torch.stack([y.sum(), torch.tensor(float(len(y)), device=counts.device)])
        positives, rows = trainer.strategy.reduce(counts, reduce_op="sum")
    rate = (positives / rows.clamp_min(1)).clamp(1e-6, 1 - 1e-6)
    return torch.logit(rate).float().to(device) if device is not None else torch.logit(rate).float()


class StartAtBaseRate(pl.Callback):
    """Sets a model's `logit_offset` to the training log-odds at the start of a fresh fit
    (config `start_at_base_rate: true`); models without the buffer are left alone."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        offset = getattr(pl_module, "logit_offset", None)
        if not isinstance(offset, torch.Tensor) or trainer.global_step > 0:
            return
        offset.fill_(training_log_odds(trainer, offset.device).item())
