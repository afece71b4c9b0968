"""CatBoost with native categorical features, wrapped as a LightningModule to share the data path."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import pandas as pd
import torch

from zoo.data.spec import FeatureSpec
from zoo.models.base import Batch, CreditModel


def _gather(loader: Any) -> dict[str, np.ndarray]:
    """All batches of a loader as one set of NumPy arrays."""
    parts: dict[str, list[np.ndarray]] = {}
    for batch in loader:
        for key, value in batch.items():
            parts.setdefault(key, []).append(value.detach().cpu().numpy())
    return {key: np.concatenate(values) for key, values in parts.items()}


class CatBoostModel(CreditModel):
    """CatBoost gradient-boosted trees over native categoricals and numerics."""

    family = "tree"

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        iterations: int = 1000,
        learning_rate: float = 0.05,
        depth: int = 6,
        l2_leaf_reg: float = 3.0,
        early_stopping_rounds: int = 100,
        use_crosses: bool = False,
        thread_count: int = -1,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate)
        self.iterations = iterations
        self.depth = depth
        self.l2_leaf_reg = l2_leaf_reg
        self.early_stopping_rounds = early_stopping_rounds
        self.use_crosses = use_crosses
        self.thread_count = thread_count
        self.automatic_optimization = False
        self.booster: Any = None

    def _frame(self, arrays: dict[str, Any]) -> pd.DataFrame:
        spec = self.feature_spec
        columns: dict[str, Any] = {}
        for j, field in enumerate(spec.categorical):
            columns[field.name] = arrays["x_cat"][:, j]
        if self.use_crosses:
            for j, cross in enumerate(spec.crosses):
                columns[cross.name] = arrays["x_cross"][:, j]
        for j, name in enumerate(spec.numeric):
            columns[name] = arrays["x_num"][:, j]
        return pd.DataFrame(columns)

    def _cat_columns(self) -> list[str]:
        spec = self.feature_spec
        names = [f.name for f in spec.categorical]
        return names + ([f.name for f in spec.crosses] if self.use_crosses else [])

    def fit_booster(self, train: dict[str, np.ndarray], val: dict[str, np.ndarray]) -> None:
        """Fit once on the training split; the validation split drives CatBoost's early stopping."""
        from catboost import CatBoostClassifier, Pool  # lazy: not every machine has catboost

        cats = self._cat_columns()
        self.booster = CatBoostClassifier(
            iterations=self.iterations,
            learning_rate=self.learning_rate,
            depth=self.depth,
            l2_leaf_reg=self.l2_leaf_reg,
            eval_metric="AUC",
            random_seed=int(torch.initial_seed() % (2**31)),
            thread_count=self.thread_count,
            allow_writing_files=False,
            verbose=False,
        )
        self.booster.fit(
            Pool(self._frame(train), train["y"], cat_features=cats),
            eval_set=Pool(self._frame(val), val["y"], cat_features=cats),
            early_stopping_rounds=self.early_stopping_rounds,
            use_best_model=True,
        )

    def on_fit_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if self.booster is None and dm is not None:
            self.fit_booster(_gather(dm.train_dataloader()), _gather(dm.val_dataloader()))

    def on_train_start(self) -> None:
        if self.booster is None:  # plain dataloaders, no DataModule
            self.fit_booster(_gather(self.trainer.train_dataloader), _gather(self.trainer.val_dataloaders))

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        if self.booster is not None:  # not before the fit (sanity check without a DataModule)
            super().validation_step(batch, batch_idx)

    def on_validation_epoch_end(self) -> None:
        if self.booster is not None:
            super().on_validation_epoch_end()

    def training_step(self, batch: Batch, batch_idx: int) -> None:  # type: ignore[override]
        return None

    def on_train_epoch_end(self) -> None:
        self.trainer.should_stop = True  # the booster is fitted in one pass

    def configure_optimizers(self) -> None:
        return None

    def forward(self, batch: Batch) -> torch.Tensor:
        if self.booster is None:
            raise RuntimeError("the CatBoost booster is not fitted yet")
        arrays = {k: v.detach().cpu().numpy() for k, v in batch.items()}
        raw = self.booster.predict(self._frame(arrays), prediction_type="RawFormulaVal")
        return torch.as_tensor(np.asarray(raw, dtype=np.float32), device=batch["y"].device)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.booster is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.cbm")
                self.booster.save_model(path)
                with open(path, "rb") as handle:
                    checkpoint["catboost_model"] = handle.read()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        blob = checkpoint.get("catboost_model")
        if blob is not None:
            from catboost import CatBoostClassifier

            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.cbm")
                with open(path, "wb") as handle:
                    handle.write(blob)
                self.booster = CatBoostClassifier()
                self.booster.load_model(path)
