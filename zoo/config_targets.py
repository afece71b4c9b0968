"""The allowlist of what a run's config may build (`_target_`), and building under it."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from omegaconf import OmegaConf

from zoo.errors import ZooError

#: The classes and factories a run's config may name as `_target_` (in `logger` and `optim`), at any
#: depth: experiment loggers, torch's optimisers and schedules, the zoo's own (conf/optim/). Nothing
#: else: a config must not call project or library functions (delete a directory, write a file).
CONFIG_TARGETS = (
    *(f"pytorch_lightning.loggers.{name}" for name in ("CSVLogger", "TensorBoardLogger", "MLFlowLogger")),
    *(f"pytorch_lightning.loggers.{name}" for name in ("WandbLogger", "CometLogger")),
    *(
        f"torch.optim.{name}"
        for name, obj in vars(torch.optim).items()
        if inspect.isclass(obj)
        and issubclass(obj, torch.optim.Optimizer)
        and obj is not torch.optim.Optimizer
    ),
    *(
        f"torch.optim.lr_scheduler.{name}"
        for name, obj in vars(torch.optim.lr_scheduler).items()
        if inspect.isclass(obj)
        and issubclass(obj, torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau)
        and name not in ("LRScheduler", "_LRScheduler")
    ),
    *(f"zoo.optim.{name}" for name in ("adam", "lbfgs", "warmup_cosine", "one_cycle", "plateau")),
)
#: What Hydra itself may build from the `hydra:` section (sweep callbacks, the search-space hook).
HYDRA_TARGETS = ("zoo.sweeps.TrialRecorder", "zoo.sweeps.claim_trial", "zoo.ensemble.EnsembleCallback")


def plain(cfg: Any) -> Any:
    """A config node as plain, resolved Python containers; anything else as it is."""
    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg


def check_targets(node: Any, where: str) -> None:
    """Refuse any `_target_` in a config subtree (at any depth) that is not in `CONFIG_TARGETS`."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None and target not in CONFIG_TARGETS:
            raise ZooError(
                f"{where}._target_={target!r} is not something a config may build; allowed: Lightning "
                "loggers (CSVLogger, TensorBoardLogger, ...), torch.optim optimisers and schedules, "
                "zoo.optim factories (docs/configuration.md)"
            )
        for key, value in node.items():
            if key != "_target_":
                check_targets(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_targets(value, f"{where}[{i}]")


def build_from_config(node: Any, where: str, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate` of a checked config subtree, under an allowlist of exactly
    `CONFIG_TARGETS` (no outer allowlist adds to it)."""
    from hydra.utils import execution_whitelist as allow
    from hydra.utils import instantiate

    tree = plain(node)
    check_targets(tree, where)
    try:
        with allow(list(CONFIG_TARGETS), reset=True):
            return instantiate(tree, **kwargs)
    except Exception as err:  # an unknown argument in a user's config
        raise ZooError(
            f"{where} config: {(str(err).strip().splitlines() or [type(err).__name__])[0]}"
        ) from None
