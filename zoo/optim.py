"""The training recipe a run hands its model: optimiser and schedule from config (`conf/optim/`),
never hard-coded in a model class. A schedule that takes `total_steps` is given the run's optimiser
steps and stepped every step; any other (torch's StepLR, ExponentialLR, ...) is stepped every epoch."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR, ReduceLROnPlateau

from zoo.errors import ZooError

#: What a run knows and hands to a schedule whose signature names it (and whose config leaves it
#: unset): the run's optimiser steps, and the direction of the early-stopping metric.
RUN_ARGUMENTS = ("total_steps", "monitor_mode")


@dataclass
class Recipe:
    """Builds a model's optimiser (from its parameter groups) and schedule for one run.

    The schedule gets the `RUN_ARGUMENTS` its signature names. One that takes `total_steps` counts
    optimiser steps (`interval: step`); any other counts epochs (`interval: epoch`), as torch's own
    StepLR, ExponentialLR, CosineAnnealingLR and ReduceLROnPlateau do.
    """

    optimizer: Callable[..., Optimizer]
    scheduler: Callable[..., Any] | None = None
    monitor: str = "val/loss"
    monitor_mode: str = "min"

    def __post_init__(self) -> None:
        # A `_partial_` config is only called at fit: check its arguments now, before any work.
        check_arguments(self.optimizer, "optim.optimizer")
        if self.scheduler is not None:
            check_arguments(self.scheduler, "optim.scheduler")

    def configure(self, model: Any, groups: list[dict[str, Any]]) -> Any:
        mixed = str(getattr(model.trainer, "precision", "")).endswith("-mixed")
        options = kernel_options(self.optimizer, groups, mixed_precision=mixed)
        optimizer = self.optimizer(groups, lr=model.learning_rate, **options)
        if isinstance(optimizer, torch.optim.LBFGS) and model.trainer.world_size > 1:
            raise ZooError(
                "optim=lbfgs runs in one process (its line search would differ between ranks); "
                "use optim=adamw_cosine with a multi-device trainer"
            )
        if self.scheduler is None:
            return optimizer
        known = {
            "total_steps": max(1, int(model.trainer.estimated_stepping_batches)),
            "monitor_mode": self.monitor_mode,
        }
        wanted = run_arguments(self.scheduler)
        scheduler = self.scheduler(optimizer, **{name: known[name] for name in wanted})
        interval = "step" if takes_total_steps(self.scheduler) else "epoch"
        config = {"scheduler": scheduler, "interval": interval}
        if isinstance(scheduler, ReduceLROnPlateau):
            config["monitor"] = self.monitor
        return {"optimizer": optimizer, "lr_scheduler": config}


def _signature(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The parameters of a factory or class; for a `functools.partial` (Hydra's `_partial_`), those
    of the function it wraps, so that arguments the config bound still count."""
    try:
        return dict(inspect.signature(getattr(factory, "func", factory)).parameters)
    except (TypeError, ValueError):
        return {}


def takes_total_steps(scheduler: Callable[..., Any]) -> bool:
    """Whether a schedule's horizon is in optimiser steps (it names `total_steps`)."""
    return "total_steps" in _signature(scheduler)


def run_arguments(scheduler: Callable[..., Any]) -> list[str]:
    """The `RUN_ARGUMENTS` a schedule names and its config does not already set."""
    bound = getattr(scheduler, "keywords", {}) or {}
    return [name for name in RUN_ARGUMENTS if name in _signature(scheduler) and name not in bound]


def check_arguments(factory: Callable[..., Any], where: str) -> None:
    """A `ZooError` naming the argument a configured factory does not take, and those it does."""
    params = _signature(factory)
    if not params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for name in getattr(factory, "keywords", {}) or {}:
        if name not in params:
            target = getattr(factory, "func", factory)
            expected = ", ".join(n for n in list(params)[1:] if n not in RUN_ARGUMENTS)
            raise ZooError(
                f"{where}.{name}: {getattr(target, '__qualname__', target)} takes no argument {name!r}; "
                f"it takes {expected}"
            )


def kernel_options(
    optimizer: Callable[..., Optimizer], groups: list[dict[str, Any]], *, mixed_precision: bool = False
) -> dict[str, bool]:
    """`fused=True` when every parameter is on CUDA, or on the CPU for the optimisers torch has a
    fused CPU kernel for (`FUSED_ON_CPU`: a step about 1 ms shorter than `foreach` for a 100k-parameter
    MLP), else `foreach=True`: one kernel (or one call) per step for all parameters instead of a
    Python loop over them. Only for optimisers that take these options, and only when the config
    sets neither (`optim.optimizer.fused/foreach` win). Under mixed precision Lightning clips
    gradients only for an optimiser that does not unscale them itself, so never fused there."""
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
    if mixed_precision:
        return {"foreach": True}
    if tensors and all(p.device.type == "cuda" for p in tensors):
        return {"fused": True}
    on_cpu = tensors and all(p.device.type == "cpu" and p.dtype.is_floating_point for p in tensors)
    if on_cpu and target in FUSED_ON_CPU:
        return {"fused": True}
    return {"foreach": True}


def adam(groups: list[dict[str, Any]], *, lr: float, **kwargs: Any) -> Optimizer:
    """torch.optim.Adam with no weight decay in any group: the plain Adam the papers name."""
    return torch.optim.Adam([{**group, "weight_decay": 0.0} for group in groups], lr=lr, **kwargs)


#: Optimisers (config targets) whose step torch runs as one fused kernel on the CPU too.
FUSED_ON_CPU = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD, torch.optim.Adagrad, adam)


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
    optimizer: Optimizer, *, monitor_mode: str = "min", factor: float = 0.5, patience: int = 5
) -> ReduceLROnPlateau:
    """Halve the rate when the monitored validation metric stops improving (checked each epoch;
    `monitor_mode` is the early-stopping metric's direction: min for val/loss, max for val/auc)."""
    if monitor_mode not in ("min", "max"):
        raise ValueError(f"monitor_mode={monitor_mode!r}, expected 'min' or 'max'")
    mode: Literal["min", "max"] = "max" if monitor_mode == "max" else "min"
    return ReduceLROnPlateau(optimizer, mode=mode, factor=factor, patience=patience)


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
