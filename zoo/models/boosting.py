"""CatBoost with native categorical features, on the data's own category labels and raw numerics."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

from zoo.data.spec import FeatureSpec
from zoo.models.tree import Arrays, TreeModel


class CatBoostModel(TreeModel):
    """CatBoost gradient-boosted trees over native categoricals and raw numerics."""

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        iterations: int = 1000,
        learning_rate: float = 0.05,
        depth: int = 6,
        l2_leaf_reg: float = 3.0,
        early_stopping_rounds: int = 100,
        eval_metric: str = "Logloss",
        use_crosses: bool = False,
        thread_count: int = -1,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate)
        if iterations < 1:
            raise ValueError(f"iterations={iterations}, expected a positive integer")
        self.iterations = iterations
        self.depth = depth
        self.l2_leaf_reg = l2_leaf_reg
        self.early_stopping_rounds = early_stopping_rounds
        self.eval_metric = eval_metric
        self.use_crosses = use_crosses
        self.thread_count = thread_count

    def _pool(self, arrays: Arrays, labels: bool = True) -> Any:
        from catboost import Pool  # lazy: importing catboost is slow

        frame = self.raw_frame(arrays, crosses=self.use_crosses)
        cats = [f.name for f in self.feature_spec.categorical]
        cats += [f.name for f in self.feature_spec.crosses] if self.use_crosses else []
        for name in cats:  # CatBoost wants text categories; missing is a category of its own
            frame[name] = frame[name].fillna("(missing)").astype(str)
        return Pool(frame, arrays["y"] if labels else None, cat_features=cats)

    def fit_model(self, train: Arrays, val: Arrays) -> Any:
        """Fit on the training split; the validation split drives CatBoost's early stopping."""
        from catboost import CatBoostClassifier

        booster = CatBoostClassifier(
            iterations=self.iterations,
            learning_rate=self.learning_rate,
            depth=self.depth,
            l2_leaf_reg=self.l2_leaf_reg,
            eval_metric=self.eval_metric,
            random_seed=self.seed,
            thread_count=self.thread_count,
            allow_writing_files=False,
            verbose=False,
        )
        booster.fit(
            self._pool(train),
            eval_set=self._pool(val),
            early_stopping_rounds=self.early_stopping_rounds,
            use_best_model=True,
        )
        return booster

    def fit_description(self) -> str:
        booster = self.fitted
        best = booster.get_best_iteration()
        score = (booster.get_best_score() or {}).get("validation", {}).get(self.eval_metric)
        stopping = (
            f"early stopping on validation {self.eval_metric} (patience {self.early_stopping_rounds} "
            f"rounds), best iteration {best}"
            + (f" (validation {self.eval_metric} {score:.4f})" if score is not None else "")
            + ", trees after it dropped"
        )
        return (
            f"CatBoost: {booster.tree_count_} trees of depth {self.depth} (at most {self.iterations} "
            f"iterations, learning rate {self.learning_rate}); {stopping}"
        )

    def predict_logit(self, arrays: Arrays) -> np.ndarray:
        return self.fitted.predict(self._pool(arrays, labels=False), prediction_type="RawFormulaVal")

    def dump(self) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.cbm")
            self.fitted.save_model(path)
            with open(path, "rb") as handle:
                return handle.read()

    def load(self, blob: bytes) -> Any:
        from catboost import CatBoostClassifier

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.cbm")
            with open(path, "wb") as handle:
                handle.write(blob)
            booster = CatBoostClassifier()
            booster.load_model(path)
            return booster

    @property
    def booster(self) -> Any:
        """The fitted CatBoostClassifier (feature importances, SHAP values, tree dumps)."""
        return self.fitted

    # --- explanations (zoo.explain) ---------------------------------------------------------

    def field_contributions(self, arrays: Arrays, reference: Arrays) -> Any:
        """CatBoost's SHAP values per feature (each feature is one field): contributions to the
        log-odds against the model's expected value on the training rows (`reference` unused)."""
        from zoo.explain.contributions import Contributions

        pool = self._pool(arrays, labels=False)
        shap = self.fitted.get_feature_importance(
            data=pool, type="ShapValues", thread_count=self.thread_count
        )
        return Contributions(np.asarray(shap[:, :-1], dtype=np.float64), list(pool.get_feature_names()), SHAP)

    def native_importance(self, val: Arrays, reference: Arrays) -> Any:
        """CatBoost's PredictionValuesChange importance of each feature (they sum to 100)."""
        import pandas as pd

        values = self.fitted.get_feature_importance(type="PredictionValuesChange")
        names = list(self.fitted.feature_names_)
        return pd.DataFrame(
            {"field": names, "method": "catboost PredictionValuesChange", "importance": values}
        )


#: How CatBoost contributions are measured, as `zoo predict` names it in `reason_method`.
SHAP = "catboost SHAP values vs expected value"
