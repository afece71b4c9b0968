"""Metrics for binary credit-default prediction (label 1 = default, scores = P(default)).

Built on torchmetrics so the same definitions serve training loops and final reports.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
import torch
import torchmetrics
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
    BinaryROC,
    BinaryStatScores,
    MulticlassF1Score,
)
from torchmetrics.functional.classification import binary_roc
from torchmetrics.regression import MeanSquaredError
from torchmetrics.utilities import dim_zero_cat
from torchmetrics.utilities.compute import normalize_logits_if_needed

from zoo.errors import ZooError

__all__ = [
    "LOGLOSS_EPS",
    "METRIC_NAMES",
    "BinaryECE",
    "BinaryGMean",
    "BinaryKS",
    "BinaryLogLoss",
    "compute_metrics",
    "make_collection",
    "youden_threshold",
]

METRIC_NAMES: tuple[str, ...] = (
    "auc",
    "accuracy",
    "ks",
    "gmean",
    "precision",
    "recall",
    "f1",
    "f1_macro",
    "brier",
    "logloss",
    "ece",
)

# Probabilities are clamped to [eps, 1 - eps] for log-loss; 1e-7 is about float32
# resolution near 1, the precision models typically report probabilities in.
LOGLOSS_EPS: float = 1e-7


def _single_class(target: torch.Tensor) -> bool:
    """True when the target holds fewer than two distinct labels (ranking metrics undefined)."""
    return target.numel() == 0 or bool((target == target[0]).all())


class _BinaryAUROC(BinaryAUROC):
    """BinaryAUROC returning NaN, without a warning, when the target holds a single class.

    torchmetrics returns 0 with a warning there, which reads as a (terrible) score.
    """

    def compute(self) -> torch.Tensor:  # type: ignore[override]
        if _single_class(dim_zero_cat(self.target)):
            return torch.tensor(float("nan"))
        return super().compute()


class BinaryKS(BinaryROC):
    """Kolmogorov-Smirnov statistic: max over thresholds of TPR - FPR; NaN for a single class.

    Subclasses BinaryROC so it shares state (and a compute group) with AUROC.
    """

    higher_is_better = True
    full_state_update = False

    def compute(self) -> torch.Tensor:  # type: ignore[override]
        if _single_class(dim_zero_cat(self.target)):
            return torch.tensor(float("nan"))
        fpr, tpr, _ = super().compute()
        return (tpr.double() - fpr.double()).max().to(torch.get_default_dtype())


class BinaryGMean(BinaryStatScores):
    """Geometric mean of sensitivity and specificity, sqrt(TPR * TNR), at a threshold.

    A rate with an empty denominator counts as 0 (torchmetrics' zero_division=0 convention).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def compute(self) -> torch.Tensor:  # type: ignore[override]
        tp, fp, tn, fn = (s.double() for s in self._final_state())
        tpr = torch.where(tp + fn > 0, tp / (tp + fn).clamp_min(1), torch.zeros_like(tp))
        tnr = torch.where(tn + fp > 0, tn / (tn + fp).clamp_min(1), torch.zeros_like(tn))
        return torch.sqrt(tpr * tnr).to(torch.get_default_dtype())


class BinaryLogLoss(torchmetrics.Metric):
    """Mean binary cross-entropy of probabilities, clamped to [eps, 1 - eps].

    torchmetrics has no binary log-loss metric; accumulation is in float64.
    """

    is_differentiable = True
    higher_is_better = False
    full_state_update = False

    eps: float
    sum_loss: torch.Tensor
    total: torch.Tensor

    def __init__(self, *, eps: float = LOGLOSS_EPS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not (isinstance(eps, Real) and 0 < eps < 0.5):
            raise ZooError(f"eps must lie within (0, 0.5), got {eps!r}")
        self.eps = float(eps)
        zero = torch.tensor(0.0, dtype=torch.float64)
        self.add_state("sum_loss", default=zero, dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Accumulate the summed loss of a batch of probabilities and 0/1 targets."""
        if preds.shape != target.shape:
            raise ZooError(
                "preds and target must have the same shape, "
                f"got {tuple(preds.shape)} and {tuple(target.shape)}"
            )
        p = preds.detach().double().clamp(self.eps, 1.0 - self.eps)
        t = target.double()
        self.sum_loss += -(t * torch.log(p) + (1.0 - t) * torch.log1p(-p)).sum()
        self.total += target.numel()

    def compute(self) -> torch.Tensor:
        return (self.sum_loss / self.total).to(torch.get_default_dtype())


class BinaryECE(torchmetrics.Metric):
    """Expected calibration error over `n_bins` equal-width bins of P(default): the count-weighted
    mean |observed bad rate - mean predicted|. Bin i holds floor(p * n_bins) == i (1 in the last),
    as `zoo.calibration.reliability_table`; accumulation is in float64."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    count: torch.Tensor
    sum_prob: torch.Tensor
    sum_target: torch.Tensor

    def __init__(self, *, n_bins: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
            raise ZooError(f"n_bins must be an integer >= 1, got {n_bins!r}")
        self.n_bins = n_bins
        for name in ("count", "sum_prob", "sum_target"):
            self.add_state(name, default=torch.zeros(n_bins, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        p = preds.detach().double().reshape(-1)
        which = (p * self.n_bins).long().clamp(0, self.n_bins - 1)
        self.count.index_add_(0, which, torch.ones_like(p))
        self.sum_prob.index_add_(0, which, p)
        self.sum_target.index_add_(0, which, target.detach().double().reshape(-1))

    def compute(self) -> torch.Tensor:
        gap = (self.sum_target - self.sum_prob).abs()  # = count * |observed - predicted|
        return (gap.sum() / self.count.sum()).to(torch.get_default_dtype())


class _BinaryMacroF1(MulticlassF1Score):
    """Macro F1 over both classes (default and non-default) from probabilities.

    Thresholds like torchmetrics' binary metrics (sigmoid if outside [0, 1], then p > threshold).
    """

    def __init__(self, *, threshold: float, **kwargs: Any) -> None:
        super().__init__(num_classes=2, average="macro", **kwargs)
        self.threshold = threshold

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        if preds.is_floating_point():
            preds = normalize_logits_if_needed(preds, "sigmoid") > self.threshold
        super().update(preds.long(), target.long())


class _LabelCollection(torchmetrics.MetricCollection):
    """MetricCollection casting float or bool 0/1 targets to integers, as ranking metrics need."""

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        super().update(preds=preds, target=_as_labels(target))

    def forward(self, preds: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:  # type: ignore[override]
        return super().forward(preds=preds, target=_as_labels(target))


def _as_labels(target: torch.Tensor) -> torch.Tensor:
    """Integer view of 0/1 targets (torchmetrics' AUROC and ROC reject float targets)."""
    return target if target.dtype in (torch.long, torch.int) else target.long()


def _check_threshold(threshold: object) -> float:
    """Return threshold as a float, or raise if it is not a number within [0, 1]."""
    message = f"threshold must be a number within [0, 1], got {threshold!r}"
    if isinstance(threshold, bool) or not isinstance(threshold, Real):
        raise ZooError(message)
    value = float(threshold)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ZooError(message)
    return value


def make_collection(threshold: float = 0.5, *, sync: bool = True) -> torchmetrics.MetricCollection:
    """MetricCollection keyed by METRIC_NAMES; thresholded metrics predict default if p > threshold.

    Feed update(preds=probabilities [N], target=0/1 labels [N]); AUC and KS are NaN for one class.
    `sync=False` computes on this process's rows alone, even inside a distributed run.
    """
    t = _check_threshold(threshold)
    kw: dict[str, Any] = {"sync_on_compute": sync}
    metrics = {
        "auc": _BinaryAUROC(**kw),
        "accuracy": BinaryAccuracy(threshold=t, **kw),
        "ks": BinaryKS(**kw),
        "gmean": BinaryGMean(threshold=t, **kw),
        "precision": BinaryPrecision(threshold=t, zero_division=0, **kw),
        "recall": BinaryRecall(threshold=t, zero_division=0, **kw),
        "f1": BinaryF1Score(threshold=t, zero_division=0, **kw),
        "f1_macro": _BinaryMacroF1(threshold=t, zero_division=0, **kw),
        "brier": MeanSquaredError(**kw),
        "logloss": BinaryLogLoss(**kw),
        "ece": BinaryECE(**kw),
    }
    return _LabelCollection({name: metrics[name] for name in METRIC_NAMES})


def _first_bad(mask: np.ndarray, values: np.ndarray) -> str:
    """Describe the first offending entry as 'VALUE at index I'."""
    i = int(np.flatnonzero(mask)[0])
    return f"{values[i].item()!r} at index {i}"


def _to_numpy(x: object, name: str) -> np.ndarray:
    """Convert a tensor or array-like to a one-dimensional NumPy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.is_floating_point() and x.dtype not in (torch.float32, torch.float64):
            x = x.float()
        x = x.numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ZooError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _validated(probs: object, labels: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Check probabilities and labels; return (float32/float64 probs, int64 labels) tensors."""
    p = _to_numpy(probs, "probs")
    y = _to_numpy(labels, "labels")
    if p.shape[0] != y.shape[0]:
        raise ZooError(f"probs and labels must have the same length, got {p.shape[0]} and {y.shape[0]}")
    if p.shape[0] == 0:
        raise ZooError("probs and labels must be non-empty, got length 0")
    if p.dtype.kind not in "biuf":
        raise ZooError(f"probs must be numeric, got dtype {p.dtype}")
    if p.dtype not in (np.float32, np.float64):
        p = p.astype(np.float32 if p.dtype == np.float16 else np.float64)
    bad = ~np.isfinite(p)
    if bad.any():
        raise ZooError(f"probs must be finite, got {_first_bad(bad, p)}")
    bad = (p < 0) | (p > 1)
    if bad.any():
        raise ZooError(f"probs must lie within [0, 1], got {_first_bad(bad, p)}")
    if y.dtype.kind not in "biuf":
        raise ZooError(f"labels must be 0 or 1, got dtype {y.dtype}")
    bad = (y != 0) & (y != 1)
    if bad.any():
        raise ZooError(f"labels must be 0 or 1, got {_first_bad(bad, y)}")
    return torch.from_numpy(np.ascontiguousarray(p)), torch.from_numpy(y.astype(np.int64))


def compute_metrics(probs: Any, labels: Any, threshold: float = 0.5) -> dict[str, float]:
    """Compute every metric in METRIC_NAMES as a Python float (tensors or NumPy arrays accepted).

    Thresholded metrics predict default when p > threshold; AUC and KS are NaN for one class.
    The inputs are all the rows: no syncing with other processes (after DDP only rank 0 calls it).
    """
    t = _check_threshold(threshold)
    p, y = _validated(probs, labels)
    collection = make_collection(t, sync=False)
    collection.update(preds=p, target=y)
    values = collection.compute()
    return {name: float(values[name]) for name in METRIC_NAMES}


def _between(lo: float, hi: float, dtype: np.dtype) -> float | None:
    """A value strictly between lo and hi that is exact in dtype, or None when they are adjacent."""
    mid = dtype.type((lo + hi) / 2)
    return float(mid) if lo < mid < hi else None


def youden_threshold(probs: Any, labels: Any) -> float:
    """Threshold maximising Youden's J = TPR - FPR on validation predictions (torchmetrics' ROC).

    Lies strictly between neighbouring scores where possible, so p >= t and p > t both give max J.
    """
    p, y = _validated(probs, labels)
    if _single_class(y):
        raise ZooError(
            f"youden_threshold needs labels of both classes, got only class {int(y[0])} in {y.numel()} rows"
        )
    fpr, tpr, thr = binary_roc(p, y, thresholds=None)
    # Cut i predicts default for the i highest distinct scores: cut 0 for none, cut m for all.
    scores = thr[1:].numpy()  # distinct scores, descending; thr[0] is torchmetrics' prepended 1.0
    m = scores.shape[0]
    j = tpr.double() - fpr.double()
    ties = torch.nonzero(j == j.max()).flatten().tolist()
    dtype = np.dtype(scores.dtype)

    def cut_threshold(i: int) -> tuple[float, bool, bool]:
        """Threshold for cut i and whether it reproduces the cut with >= and with >."""
        upper = float(scores[i - 1]) if i >= 1 else None
        lower = float(scores[i]) if i < m else None
        if upper is None:  # nothing predicted as default
            assert lower is not None
            if lower == 1.0:
                return 1.0, False, True
            mid = _between(lower, 1.0, dtype)
            return (1.0 if mid is None else mid), True, True
        if lower is None:  # everything predicted as default
            if upper == 0.0:
                return 0.0, True, False
            mid = _between(0.0, upper, dtype)
            return (0.0 if mid is None else mid), True, True
        mid = _between(lower, upper, dtype)
        return (upper, True, False) if mid is None else (mid, True, True)

    options = [cut_threshold(i) for i in ties]
    # Prefer a cut reproduced by both comparison rules, then one reproduced by >=.
    both = [o for o in options if o[1] and o[2]]
    t = (both or [o for o in options if o[1]] or options)[0][0]
    return min(max(t, 0.0), 1.0)
