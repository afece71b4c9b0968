"""Decision tree, random forest and histogram gradient boosting: scikit-learn's tree baselines.

"Adaptive Feature Cross-Compression for Credit Default Prediction" (IEEE Access 2023) ranks its
features with a random forest and names decision trees, random forests and gradient boosting as
the conventional models its deep ones improve on; it gives no settings for them. Here:
- `dt`: a CART tree (Breiman et al. 1984), its depth chosen on the validation split, its leaf
  probabilities shrunk toward the training bad rate;
- `rf`: a random forest (Breiman 2001): bootstrap trees on random feature subsets, probabilities
  averaged;
- `gbdt`: histogram gradient boosting on the log-loss (scikit-learn's, after LightGBM, Ke et al.
  2017), stopped early on the validation split; a second booster beside `catboost`.
A tree's probability p becomes the logit log(p / (1 - p)) with p clipped to [1e-6, 1 - 1e-6];
the booster gives its raw score. Fitted models are stored with `skops.io` (no pickle) and loaded
with an explicit list of trusted types. Where the paper is silent, the choice is marked "CHOICE"
here and listed in docs/models/trees.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from zoo.data.spec import FeatureSpec
from zoo.errors import ZooError
from zoo.models.tree import Arrays, TreeModel

#: Tree probabilities are clipped to [PROB_CLIP, 1 - PROB_CLIP] before the logit: a pure leaf's
#: 0 or 1 would give an infinite one.
PROB_CLIP = 1e-6


def one_hot(x_cat: np.ndarray, cardinalities: Sequence[int]) -> np.ndarray:
    """float32[B, sum(cardinalities)]: one column per index of every field, missing and unseen
    included (a row with an unseen category has no known category's column set)."""
    offsets = np.concatenate([[0], np.cumsum(cardinalities)[:-1]]).astype(np.int64)
    out = np.zeros((len(x_cat), int(sum(cardinalities))), dtype=np.float32)
    if len(cardinalities):
        out[np.arange(len(x_cat))[:, None], x_cat + offsets] = 1.0
    return out


def logit_of(probability: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) with p clipped to [PROB_CLIP, 1 - PROB_CLIP], so always finite."""
    p = np.clip(np.asarray(probability, dtype=np.float64), PROB_CLIP, 1.0 - PROB_CLIP)
    return np.log(p) - np.log1p(-p)


def log_loss(y: np.ndarray, probability: np.ndarray) -> float:
    """Mean binary log-loss of clipped probabilities (validation rows of one class are fine)."""
    p = np.clip(np.asarray(probability, dtype=np.float64), PROB_CLIP, 1.0 - PROB_CLIP)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def positive_probability(estimator: Any, features: np.ndarray) -> np.ndarray:
    """P(y = 1) for each row: the column of class 1 in `predict_proba`."""
    column = int(np.flatnonzero(estimator.classes_ == 1)[0])
    return estimator.predict_proba(features)[:, column]


class SklearnTreeModel(TreeModel):
    """A scikit-learn estimator fitted once, stored with skops.io; subclasses build and fit it."""

    #: Types the skops blob may hold beyond those skops trusts by default (scikit-learn's
    #: estimators, NumPy arrays and scalars, builtins); from `skops.io.get_untrusted_types`.
    trusted_types: ClassVar[tuple[str, ...]] = ()

    @staticmethod
    def estimator_class() -> type:  # pragma: no cover - abstract
        """The scikit-learn class a checkpoint must hold (imported lazily)."""
        raise NotImplementedError

    def numerics(self, arrays: Arrays) -> np.ndarray:
        """float32[B, n]: the raw numerics (not the missing indicators), NaN where missing."""
        names = [f.name for f in self.feature_spec.raw_numeric]
        return self.raw_frame(arrays)[names].to_numpy(np.float32).reshape(len(arrays["y"]), len(names))

    def features(self, arrays: Arrays) -> np.ndarray:
        """The estimator's input: one-hot categoricals and raw numerics (the booster overrides it)."""
        # CHOICE: categoricals one-hot (nominal: an ordinal code would order categories arbitrarily),
        # numerics raw with NaN, which scikit-learn >= 1.4 trees route to the better side of a split.
        return np.hstack([one_hot(arrays["x_cat"], self.feature_spec.cardinalities), self.numerics(arrays)])

    def predict_logit(self, arrays: Arrays) -> np.ndarray:
        return logit_of(positive_probability(self.fitted, self.features(arrays)))

    @staticmethod
    def check_labels(y: np.ndarray) -> None:
        if not {0.0, 1.0} <= set(np.unique(y).tolist()):
            raise ValueError(f"training labels {sorted(set(np.unique(y).tolist()))}, expected both 0 and 1")

    def dump(self) -> bytes:
        import skops.io

        return skops.io.dumps(self.fitted)

    def load(self, blob: bytes) -> Any:
        """The estimator from `dump`'s bytes, refused unless every type in it is trusted and it is
        an instance of `estimator_class()`."""
        import skops.io

        name = type(self).__name__
        try:
            found = skops.io.get_untrusted_types(data=blob)
        except Exception as err:  # not a skops archive: a zip error, a broken schema
            raise ZooError(
                f"{name}: the checkpoint's fitted model is not a skops archive ({err!r})"
            ) from None
        untrusted = sorted(set(found) - set(self.trusted_types))
        if untrusted:
            raise ZooError(
                f"{name}: the checkpoint's fitted model holds untrusted types {untrusted}; expected only "
                f"skops' defaults and {list(self.trusted_types)}"
            )
        fitted = skops.io.loads(blob, trusted=list(self.trusted_types))
        expected = self.estimator_class()
        if type(fitted) is not expected:
            raise ZooError(
                f"{name}: the checkpoint's fitted model is a {type(fitted).__qualname__}, "
                f"expected a {expected.__qualname__}"
            )
        return fitted

    @property
    def estimator(self) -> Any:
        """The fitted scikit-learn estimator (feature importances, tree structure)."""
        return self.fitted


class DecisionTree(SklearnTreeModel):
    """Decision tree (CART) over one-hot categoricals and raw numerics, depth chosen on validation."""

    trusted_types: ClassVar[tuple[str, ...]] = ("sklearn.tree._tree.Tree",)

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        max_depth_grid: Sequence[int] = (2, 3, 4, 5, 6, 8, 10, 12),
        min_samples_leaf: int = 20,
        leaf_smoothing: float = 20.0,
        criterion: str = "gini",
    ) -> None:
        super().__init__(feature_spec=feature_spec)
        depths = list(max_depth_grid)
        if not depths or any(not isinstance(d, int) or d < 1 for d in depths):
            raise ValueError(f"max_depth_grid={depths}, expected a non-empty list of positive integers")
        if min_samples_leaf < 1:
            raise ValueError(f"min_samples_leaf={min_samples_leaf}, expected a positive integer")
        if leaf_smoothing < 0:
            raise ValueError(f"leaf_smoothing={leaf_smoothing}, expected a number >= 0")
        self.max_depth_grid = depths
        self.min_samples_leaf = min_samples_leaf
        self.leaf_smoothing = leaf_smoothing
        self.criterion = criterion

    @staticmethod
    def estimator_class() -> type:
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier

    def fit_model(self, train: Arrays, val: Arrays) -> Any:
        """One tree per depth of `max_depth_grid`; keep the one of lowest validation log-loss
        (the earlier in the grid on a tie)."""
        x, y = self.features(train), train["y"]
        self.check_labels(y)
        x_val = self.features(val)
        best: tuple[float, Any] | None = None
        for depth in self.max_depth_grid:  # CHOICE: depth picked on validation, not pruned by ccp_alpha
            tree = self.estimator_class()(
                criterion=self.criterion,
                max_depth=depth,
                min_samples_leaf=self.min_samples_leaf,
                random_state=self.seed,
            ).fit(x, y)
            loss = log_loss(val["y"], self.probability(tree, x_val))
            if best is None or loss < best[0]:
                best = (loss, tree)
        assert best is not None
        return best[1]

    def fit_description(self) -> str:
        tree = self.fitted
        return (
            f"one {self.criterion} tree, max_depth {tree.max_depth} chosen from {self.max_depth_grid} "
            f"by validation log-loss (grown to depth {tree.get_depth()}, {tree.get_n_leaves()} leaves)"
        )

    def node_probability(self, tree: Any) -> np.ndarray:
        """P(y = 1) of every node of `tree`, shrunk toward the training bad rate p0 (the root's):
        (n p + m p0) / (n + m), n the node's training rows, m = `leaf_smoothing` (an m-estimate)."""
        # CHOICE: smoothed leaves. A leaf's raw share is 0 or 1 whenever the leaf is pure, and
        # small leaves are overconfident: validation log-loss then kept depth-2 trees on german.
        column = int(np.flatnonzero(tree.classes_ == 1)[0])
        value = tree.tree_.value[:, 0, :]
        share = value[:, column] / value.sum(axis=1)  # counts before scikit-learn 1.4, shares after
        rows = tree.tree_.weighted_n_node_samples
        return (rows * share + self.leaf_smoothing * share[0]) / (rows + self.leaf_smoothing)

    def probability(self, tree: Any, features: np.ndarray) -> np.ndarray:
        """P(y = 1) of each row: the smoothed probability of the leaf it falls in."""
        return self.node_probability(tree)[tree.apply(features)]

    def predict_logit(self, arrays: Arrays) -> np.ndarray:
        return logit_of(self.probability(self.fitted, self.features(arrays)))


class RandomForest(SklearnTreeModel):
    """Random forest over one-hot categoricals and raw numerics: bootstrap trees, averaged."""

    trusted_types: ClassVar[tuple[str, ...]] = ("sklearn.tree._tree.Tree",)

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        n_estimators: int = 300,
        max_depth: int | None = None,
        min_samples_leaf: int = 5,
        max_features: str | float = "sqrt",
        criterion: str = "gini",
        n_jobs: int = -1,
    ) -> None:
        super().__init__(feature_spec=feature_spec)
        if n_estimators < 1:
            raise ValueError(f"n_estimators={n_estimators}, expected a positive integer")
        if max_depth is not None and max_depth < 1:
            raise ValueError(f"max_depth={max_depth}, expected a positive integer or null (no limit)")
        if min_samples_leaf < 1:
            raise ValueError(f"min_samples_leaf={min_samples_leaf}, expected a positive integer")
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.criterion = criterion
        self.n_jobs = n_jobs

    @staticmethod
    def estimator_class() -> type:
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier

    def fit_model(self, train: Arrays, val: Arrays) -> Any:
        """Fit on the training split; a forest needs no early stopping, so validation is unused."""
        self.check_labels(train["y"])
        forest = self.estimator_class()(
            n_estimators=self.n_estimators,
            criterion=self.criterion,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            n_jobs=self.n_jobs,
            random_state=self.seed,
        )
        return forest.fit(self.features(train), train["y"])

    def fit_description(self) -> str:
        depth = "unlimited depth" if self.max_depth is None else f"depth at most {self.max_depth}"
        return (
            f"random forest of {len(self.fitted.estimators_)} trees ({depth}); no early stopping, "
            "the validation split is unused"
        )


class HistGradientBoosting(SklearnTreeModel):
    """Histogram gradient boosting with native categoricals, stopped early on validation log-loss."""

    trusted_types: ClassVar[tuple[str, ...]] = (
        "functools.partial",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.utils.validation.check_array",
    )

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        iterations: int = 1000,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 31,
        max_depth: int | None = None,
        min_samples_leaf: int = 20,
        l2_regularization: float = 0.0,
        max_bins: int = 255,
        early_stopping_rounds: int = 50,
        n_jobs: int = -1,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate)
        if iterations < 1:
            raise ValueError(f"iterations={iterations}, expected a positive integer")
        if not 2 <= max_bins <= 255:
            raise ValueError(f"max_bins={max_bins}, expected an integer in [2, 255]")
        if early_stopping_rounds < 1:
            raise ValueError(f"early_stopping_rounds={early_stopping_rounds}, expected a positive integer")
        if n_jobs == 0:
            raise ValueError(f"n_jobs={n_jobs}, expected a positive integer or -1 (all cores)")
        self.iterations = iterations
        self.max_leaf_nodes = max_leaf_nodes
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.max_bins = max_bins
        self.early_stopping_rounds = early_stopping_rounds
        self.n_jobs = n_jobs

    @staticmethod
    def estimator_class() -> type:
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier

    def categorical_mask(self) -> np.ndarray | None:
        """Which columns of `features` the booster splits as categories (None: none of them)."""
        # CHOICE: a field with more categories than max_bins is split as its ordinal code, since
        # the booster's native categories are limited to max_bins.
        native = [c <= self.max_bins for c in self.feature_spec.cardinalities]
        mask = np.array(native + [False] * len(self.feature_spec.raw_numeric), dtype=bool)
        return mask if mask.any() else None

    def features(self, arrays: Arrays) -> np.ndarray:
        """The booster's input: categorical indices (see `categorical_mask`) and raw numerics."""
        # CHOICE: categoricals as their x_cat index, split natively as categories: missing (0) is a
        # category of its own; unseen (1) never occurs in training, so the booster treats it as a
        # missing value (at each split, the child that had more training rows). Numerics raw, NaN.
        return np.hstack([arrays["x_cat"].astype(np.float32), self.numerics(arrays)])

    @contextlib.contextmanager
    def threads(self) -> Iterator[None]:
        """The booster's OpenMP threads limited to `n_jobs` (-1: as many as OpenMP likes)."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=None if self.n_jobs < 0 else self.n_jobs, user_api="openmp"):
            yield

    def booster(self, iterations: int, *, early_stopping: bool) -> Any:
        return self.estimator_class()(
            loss="log_loss",
            learning_rate=self.learning_rate,
            max_iter=iterations,
            max_leaf_nodes=self.max_leaf_nodes,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            max_bins=self.max_bins,
            categorical_features=self.categorical_mask(),
            early_stopping=early_stopping,
            scoring="loss",
            n_iter_no_change=self.early_stopping_rounds,
            random_state=self.seed,
        )

    def fit_model(self, train: Arrays, val: Arrays) -> Any:
        """Boost on the training split until the validation log-loss has not improved for
        `early_stopping_rounds` rounds, then refit to the best round (as CatBoost's
        `use_best_model`); the refit grows the same trees (same rows, same seed, no subsampling)."""
        x, y = self.features(train), train["y"]
        self.check_labels(y)
        with self.threads():
            probe = self.booster(self.iterations, early_stopping=True)
            probe.fit(x, y, X_val=self.features(val), y_val=val["y"])
            # validation_score_[k]: minus the validation log-loss after k rounds (k = 0: the prior)
            best = max(1, int(np.argmax(probe.validation_score_)))
            if best == probe.n_iter_:
                return probe
            return self.booster(best, early_stopping=False).fit(x, y)

    def fit_description(self) -> str:
        return (
            f"histogram gradient boosting: {self.fitted.n_iter_} trees (at most {self.iterations} "
            f"iterations, learning rate {self.learning_rate}); early stopping on validation log-loss "
            f"(patience {self.early_stopping_rounds} rounds), refitted to the best iteration"
        )

    def predict_logit(self, arrays: Arrays) -> np.ndarray:
        with self.threads():
            return self.fitted.decision_function(self.features(arrays))
