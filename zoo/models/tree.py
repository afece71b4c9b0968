"""Base for models fitted once outside gradient descent (boosted trees, forests, rule sets).

A subclass implements only `fit_model`, `predict_logit`, `dump` and `load`; this base hands it
every row of the training and validation splits (`CreditDataModule.split_arrays`, never a loader,
which may drop a ragged batch or shard rows across processes), in the data's own terms on request
(`raw_frame`), and stores the fitted model in the checkpoint as bytes. `zoo-train` fits it through
`zoo.fitting.fit_directly`: no Trainer, no epochs, no optimiser steps.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from zoo.data.spec import MISSING_INDEX, FeatureSpec
from zoo.errors import ZooError
from zoo.models.base import Batch, CreditModel

Arrays = dict[str, np.ndarray]
CHECKPOINT_KEY = "fitted_model"


def gather(loader: Any) -> Arrays:
    """All batches of a loader as one set of NumPy arrays."""
    parts: dict[str, list[np.ndarray]] = {}
    for batch in loader:
        for key, value in batch.items():
            parts.setdefault(key, []).append(value.detach().cpu().numpy())
    return {key: np.concatenate(values) for key, values in parts.items()}


def split_arrays(dm: Any) -> tuple[Arrays, Arrays]:
    """Every training and validation row of a DataModule, from `split_arrays`; a DataModule
    without that method (not a `CreditDataModule`) gives what its loaders serve."""
    if callable(getattr(dm, "split_arrays", None)):
        return dm.split_arrays("train"), dm.split_arrays("val")
    return gather(dm.train_dataloader()), gather(dm.val_dataloader())


def raw_frame(spec: FeatureSpec, arrays: Arrays, *, crosses: bool = False) -> pd.DataFrame:
    """The rows in the data's own terms: category labels (missing as None) and raw numerics
    (missing as NaN). Without `x_raw`, numerics are decoded from the encoded (imputed) values."""
    columns: dict[str, Any] = {}
    for j, field in enumerate(spec.categorical):
        labels = np.array([field.label(i) for i in range(field.cardinality)], dtype=object)
        values = labels[arrays["x_cat"][:, j]]
        values[arrays["x_cat"][:, j] == MISSING_INDEX] = None
        columns[field.name] = values
    if crosses:
        for j, cross in enumerate(spec.crosses):
            labels = np.array([cross.label(i) for i in range(cross.cardinality)], dtype=object)
            columns[cross.name] = labels[arrays["x_cross"][:, j]]
    for j, numeric in enumerate(spec.raw_numeric):
        if "x_raw" in arrays:
            columns[numeric.name] = arrays["x_raw"][:, j].astype(np.float64)
        else:
            columns[numeric.name] = numeric.decode(arrays["x_num"][:, spec.numeric.index(numeric)])
    return pd.DataFrame(columns, index=pd.RangeIndex(len(arrays["y"])))


class TreeModel(CreditModel):
    """A model fitted in one pass on the training split, with the validation split for early
    stopping; subclasses implement `fit_model`, `predict_logit`, `dump` and `load`."""

    family: ClassVar[str] = "tree"
    uses_raw_values: ClassVar[bool] = True
    fits_directly: ClassVar[bool] = True  # zoo/fitting.py: one fit on every row, no epoch loop
    starts_at_base_rate: ClassVar[bool] = False

    def __init__(self, *, feature_spec: FeatureSpec | dict[str, Any], learning_rate: float = 0.1) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate)
        self.fitted: Any = None
        self.run_seed: int | None = None  # the DataModule's seed, set when the fit starts

    # --- what a subclass implements ---------------------------------------------------------

    def fit_model(self, train: Arrays, val: Arrays) -> Any:  # pragma: no cover - abstract
        """Fit on the training arrays (validation for early stopping); return the fitted model."""
        raise NotImplementedError

    def predict_logit(self, arrays: Arrays) -> np.ndarray:  # pragma: no cover - abstract
        """Log-odds of default for each row of `arrays`, float[B]."""
        raise NotImplementedError

    def dump(self) -> bytes:  # pragma: no cover - abstract
        """The fitted model as bytes (its library's own format, not pickle)."""
        raise NotImplementedError

    def load(self, blob: bytes) -> Any:  # pragma: no cover - abstract
        """The fitted model from `dump`'s bytes."""
        raise NotImplementedError

    def fit_description(self) -> str:
        """How the fitted model was fitted, one sentence for the model card: its size (trees,
        iterations, rules) and what the validation split decided (early stopping, a choice)."""
        return "fitted once by its library on every training row; no optimiser steps"

    # --- helpers ----------------------------------------------------------------------------

    def raw_frame(self, arrays: Arrays, *, crosses: bool = False) -> pd.DataFrame:
        return raw_frame(self.feature_spec, arrays, crosses=crosses)

    @property
    def seed(self) -> int:
        """The run's seed: the DataModule's when fitted through one, else torch's initial seed
        (set by `seed_everything`), for the library's own random state."""
        if self.run_seed is not None:
            return int(self.run_seed) % (2**31)
        return int(torch.initial_seed() % (2**31))

    # --- fitting: once, on every row (zoo/fitting.py), never in an epoch loop ----------------

    def fit_datamodule(self, dm: Any) -> None:
        """Fit once on every training and validation row of `dm` (`split_arrays`), with the run's
        seed: what `zoo-train` calls instead of an epoch loop."""
        self.run_seed = getattr(dm, "seed", None)
        self.fitted = self.fit_model(*split_arrays(dm))

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        raise TypeError(
            f"{type(self).__name__} is fitted once by its library, not by gradient steps: fit it with "
            "zoo.fitting.fit_directly(model, datamodule) (as zoo-train does), not Trainer.fit"
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        if self.fitted is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet")
        arrays = {k: v.detach().cpu().numpy() for k, v in batch.items()}
        logit = np.asarray(self.predict_logit(arrays), dtype=np.float32).reshape(-1)
        return torch.as_tensor(logit, device=batch["y"].device)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.fitted is not None:
            checkpoint[CHECKPOINT_KEY] = self.dump()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        blob = checkpoint.get(CHECKPOINT_KEY)
        if blob is None:
            return
        try:
            self.fitted = self.load(blob)
        except ZooError:
            raise
        except Exception as err:  # the library's own parser on altered bytes: any error type
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ZooError(
                f"{type(self).__name__}: the checkpoint's fitted model cannot be read ({first})"
            ) from None
