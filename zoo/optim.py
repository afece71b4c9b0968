"""The training recipe a run hands its model: optimiser and schedule from config (`conf/optim/`),
never hard-coded in a model class. Schedules here take the run's total optimiser steps."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR, ReduceLROnPlateau

from zoo.errors import ZooError


@dataclass
class Recipe:
    """Builds a model's optimiser (from its parameter groups) and schedule for one run."""

    optimizer: Callable[..., Optimizer]
    scheduler: Callable[..., Any] | None = None
    monitor: str = "val/loss"
    monitor_mode: str = "min"

    def configure(self, model: Any, groups: list[dict[str, Any]]) -> Any:
        optimizer = self.optimizer(groups, lr=model.learning_rate, **kernel_options(self.optimizer, groups))
        if isinstance(optimizer, torch.optim.LBFGS) and model.trainer.world_size > 1:
            raise ZooError(
                "optim=lbfgs runs in one process (its line search would differ between ranks); "
                "use optim=adamw_cosine with a multi-device trainer"
            )
        if self.scheduler is None:
            return optimizer
        total_steps = max(1, int(model.trainer.estimated_stepping_batches))
        scheduler = self.scheduler(optimizer, total_steps=total_steps)
        if isinstance(scheduler, ReduceLROnPlateau):
            config = {"scheduler": scheduler, "interval": "epoch", "monitor": self.monitor}
        else:
            config = {"scheduler": scheduler, "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": config}


def kernel_options(optimizer: Callable[..., Optimizer], groups: list[dict[str, Any]]) -> dict[str, bool]:
    """`fused=True` when every parameter is on CUDA, else `foreach=True`: one kernel (or one call)
    per step for all parameters instead of a Python loop over them. Only for optimisers that take
    these options, and only when the config sets neither (`optim.optimizer.fused/foreach` win)."""
    keywords = getattr(optimizer, "keywords", {}) or {}
    if keywords.get("fused") is not None or keywords.get("foreach") is not None:
        return {}
    target = getattr(optimizer, "func", optimizer)
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if "fused" not in params and not takes_any:
        return {}
    tensors = [p for group in groups for p in group["params"]]
    if tensors and all(p.device.type == "cuda" for p in tensors):
        return {"fused": True}
    return {"foreach": True}


def warmup_cosine(
    optimizer: Optimizer, *, total_steps: int, warmup: float = 0.05, final_ratio: float = 0.0
) -> LRScheduler:
    """Linear warm-up over the first `warmup` share of the steps, then cosine decay to
    `final_ratio` of each group's rate (Loshchilov & Hutter 2017, SGDR without restarts)."""
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup={warmup}, expected a share of the steps in [0, 1)")
    warm = int(warmup * total_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def one_cycle(optimizer: Optimizer, *, total_steps: int, warmup: float = 0.3) -> LRScheduler:
    """One-cycle (Smith & Topin 2019) peaking at each group's configured rate."""
    peaks = [group["lr"] for group in optimizer.param_groups]
    return OneCycleLR(optimizer, max_lr=peaks, total_steps=total_steps, pct_start=warmup)


def plateau(
    optimizer: Optimizer, *, total_steps: int, factor: float = 0.5, patience: int = 5
) -> ReduceLROnPlateau:
    """Halve the rate when the monitored validation metric stops improving."""
    del total_steps  # epoch-driven
    return ReduceLROnPlateau(optimizer, mode="min", factor=factor, patience=patience)


def lbfgs(
    groups: list[dict[str, Any]], *, lr: float = 1.0, max_iter: int = 500, history_size: int = 20
) -> Optimizer:
    """Full-batch L-BFGS with a strong-Wolfe line search: for convex models (logistic regression)
    it reaches the solution a convex solver finds. Regularise with the model's explicit `l2`
    (L-BFGS takes one parameter group and no weight decay)."""
    decayed = [g for g in groups if g.get("weight_decay", 0.0) > 0]
    if decayed:
        raise ValueError(
            f"L-BFGS takes no weight decay, got weight_decay={decayed[0]['weight_decay']}; "
            "set the model's weight_decay to 0 and regularise with its l2"
        )
    params = [p for g in groups for p in g["params"]]
    del lr  # the line search sets the step; 1.0 is its natural first trial
    return torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=max_iter,
        history_size=history_size,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )


def adam(groups: list[dict[str, Any]], *, lr: float, **kwargs: Any) -> Optimizer:
    """torch.optim.Adam with no weight decay in any group: the plain Adam the papers name."""
    return torch.optim.Adam([{**group, "weight_decay": 0.0} for group in groups], lr=lr, **kwargs)
