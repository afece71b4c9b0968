"""Lightning warnings a zoo run expects and its user cannot act on, silenced one by one (message,
category and the Lightning module that warns) where the zoo calls Lightning; every other warning,
Lightning's included, still shows."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: (message regex, category, module regex) of each expected warning.
Expected = tuple[str, type[Warning], str]

#: Lightning's own pytree helper on a newer torch (Lightning's code, not the user's or the zoo's).
LEAF_SPEC: Expected = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    FutureWarning,
    r"pytorch_lightning\.",
)
#: The zoo's models log once an epoch, never per step: the interval between step logs is moot.
LOG_INTERVAL: Expected = (
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    UserWarning,
    r"pytorch_lightning\.",
)
#: A model fitted once by its library (trees, rule sets) takes no optimiser step...
NO_OPTIMIZER: Expected = (
    r"`LightningModule.configure_optimizers` returned `None`",
    UserWarning,
    r"pytorch_lightning\.",
)
#: ...and has no parameters, so its checkpoint's state dict is empty. (A model with parameters and
#: an empty state dict fails strict loading with an error instead: this warning cannot hide that.)
NO_PARAMETERS: Expected = (
    r"The state dict in .* contains no parameters",
    UserWarning,
    r"pytorch_lightning\.",
)


def _ignore(*expected: Expected) -> None:
    for message, category, module in expected:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


def fitted_directly(model: Any) -> bool:
    """True for a model without parameters: one its library fits, with no optimiser steps."""
    return next(iter(model.parameters()), None) is None


@contextmanager
def quiet_fit(model: Any) -> Iterator[None]:
    """Around `trainer.fit(model)`: the pytree deprecation and the logging interval always, the
    missing optimiser only for a model fitted directly (no parameters)."""
    with warnings.catch_warnings():
        _ignore(LEAF_SPEC, LOG_INTERVAL)
        if fitted_directly(model):
            _ignore(NO_OPTIMIZER)
        yield


@contextmanager
def quiet_load() -> Iterator[None]:
    """Around `load_from_checkpoint` (strict): the pytree deprecation and the empty state dict of a
    model without parameters."""
    with warnings.catch_warnings():
        _ignore(LEAF_SPEC, NO_PARAMETERS)
        yield
