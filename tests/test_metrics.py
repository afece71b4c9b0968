"""Metrics checked against independent scikit-learn / NumPy computations, edge cases included."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from zoo.metrics import (
    LOGLOSS_EPS,
    METRIC_NAMES,
    compute_metrics,
    make_collection,
    youden_threshold,
)

# torchmetrics computes in float32, so agreement is to float32 precision.
ATOL = 1e-6


def reference(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Every metric from scikit-learn / NumPy; a sample is predicted default when p > threshold."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).astype(int)
    pred = (p > threshold).astype(int)
    two_classes = len(np.unique(y)) == 2
    if two_classes:
        fpr, tpr, _ = skm.roc_curve(y, p, drop_intermediate=False)
        auc, ks = skm.roc_auc_score(y, p), float(np.max(tpr - fpr))
    else:
        auc = ks = math.nan
    tpr_at = skm.recall_score(y, pred, pos_label=1, zero_division=0)
    tnr_at = skm.recall_score(y, pred, pos_label=0, zero_division=0)
    clipped = np.clip(p, LOGLOSS_EPS, 1 - LOGLOSS_EPS)
    return {
        "auc": auc,
        "accuracy": skm.accuracy_score(y, pred),
        "ks": ks,
        "gmean": math.sqrt(tpr_at * tnr_at),
        "precision": skm.precision_score(y, pred, zero_division=0),
        "recall": skm.recall_score(y, pred, zero_division=0),
        "f1": skm.f1_score(y, pred, zero_division=0),
        # Labels inferred from y and pred: a class absent from both is left out of the mean.
        "f1_macro": skm.f1_score(y, pred, average="macro", zero_division=0),
        "brier": float(np.mean((p - y) ** 2)),
        "logloss": float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))),
        "ece": _ece_loop(p, y, n_bins=10),
    }


def _ece_loop(p: np.ndarray, y: np.ndarray, n_bins: int) -> float:
    """ECE by a plain loop over equal-width bins [i/n, (i+1)/n), the last one closed."""
    total = 0.0
    for i in range(n_bins):
        upper_ok = (p <= 1.0) if i == n_bins - 1 else (p < (i + 1) / n_bins)
        inside = (p >= i / n_bins) & upper_ok
        if inside.any():
            total += inside.sum() * abs(y[inside].mean() - p[inside].mean())
    return float(total / len(p))


def assert_matches(got: dict[str, float], want: dict[str, float]) -> None:
    assert list(got) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert isinstance(got[name], float), name
        if math.isnan(want[name]):
            assert math.isnan(got[name]), name
        else:
            assert got[name] == pytest.approx(want[name], abs=ATOL), name


def scored(seed: int, n: int = 600, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Labels with ~30% defaults and informative but noisy probabilities."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * y - 0.8)))
    return (np.round(p, 1) if ties else p), y


def test_collection_keys_are_metric_names() -> None:
    expected = ["auc", "accuracy", "ks", "gmean", "precision", "recall", "f1", "f1_macro"]
    expected += ["brier", "logloss", "ece"]
    assert tuple(expected) == METRIC_NAMES
    # MetricCollection keeps its keys sorted; compute_metrics returns METRIC_NAMES order.
    assert sorted(str(k) for k in make_collection()) == sorted(METRIC_NAMES)


@pytest.mark.parametrize("threshold", [0.5, 0.3])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_sklearn(seed: int, ties: bool, threshold: float) -> None:
    p, y = scored(seed, n=300 + 100 * seed, ties=ties)
    assert_matches(compute_metrics(p, y, threshold=threshold), reference(p, y, threshold))


@pytest.mark.parametrize("seed", [0, 1])
def test_torch_and_numpy_inputs_agree(seed: int) -> None:
    p, y = scored(seed)
    want = compute_metrics(p, y)
    assert compute_metrics(torch.from_numpy(p), torch.from_numpy(y)) == want
    got32 = compute_metrics(torch.from_numpy(p).float(), torch.from_numpy(y).float())
    assert got32 == pytest.approx(want, abs=ATOL)
    assert compute_metrics(p.tolist(), y.astype(bool)) == want


@pytest.mark.parametrize("value", [0.0, 1.0, 0.5])
def test_constant_predictions(value: float) -> None:
    # 0.0 predicts no default (precision 0/0 -> 0); 1.0 predicts all default; 0.5 is not > 0.5.
    _, y = scored(4)
    p = np.full(y.shape, value)
    got = compute_metrics(p, y)
    assert_matches(got, reference(p, y, 0.5))
    assert got["auc"] == pytest.approx(0.5) and got["ks"] == pytest.approx(0.0)
    assert got["recall"] == (1.0 if value == 1.0 else 0.0)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("label", [0, 1])
@pytest.mark.parametrize("seed", [0, 1])
def test_single_class_labels(label: int, seed: int) -> None:
    """AUC and KS are NaN; the rest follow zero_division=0 (e.g. recall 0/0 -> 0), no warnings."""
    p, _ = scored(seed)
    y = np.full(p.shape, label)
    got = compute_metrics(p, y, threshold=0.4)
    assert math.isnan(got["auc"]) and math.isnan(got["ks"])
    assert all(math.isfinite(v) for k, v in got.items() if k not in ("auc", "ks"))
    assert_matches(got, reference(p, y, 0.4))
    # A missing class makes one of TPR / TNR 0/0 -> 0, so G-mean is 0.
    assert got["gmean"] == 0.0
    if label == 0:
        assert got["precision"] == got["recall"] == got["f1"] == 0.0
    else:
        assert got["precision"] == 1.0


@pytest.mark.filterwarnings("error")
def test_single_class_labels_and_predictions() -> None:
    # Only class 0 in labels and predictions: macro F1 averages over that class alone.
    got = compute_metrics(np.full(5, 0.1), np.zeros(5))
    assert got["f1_macro"] == 1.0 and got["accuracy"] == 1.0
    assert got["precision"] == got["recall"] == got["f1"] == got["gmean"] == 0.0


def test_threshold_effect() -> None:
    p = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    y = np.array([0, 1, 0, 1, 1])
    assert compute_metrics(p, y, threshold=0.5)["recall"] == pytest.approx(2 / 3)  # 0.5 not > 0.5
    assert compute_metrics(p, y, threshold=0.2)["recall"] == pytest.approx(1.0)
    assert compute_metrics(p, y, threshold=0.2)["precision"] == pytest.approx(3 / 4)
    assert compute_metrics(p, y, threshold=1.0)["recall"] == 0.0
    p, y = scored(5)
    recalls = [compute_metrics(p, y, threshold=t)["recall"] for t in np.linspace(0, 1, 11)]
    assert recalls == sorted(recalls, reverse=True) and recalls[0] > recalls[-1]
    unthresholded = ("auc", "ks", "brier", "logloss")
    lo, hi = compute_metrics(p, y, threshold=0.2), compute_metrics(p, y, threshold=0.7)
    assert all(lo[k] == hi[k] for k in unthresholded)


def test_logloss_clamps_certain_mistakes() -> None:
    got = compute_metrics(np.array([0.0, 1.0]), np.array([1, 0]))
    assert got["logloss"] == pytest.approx(-math.log(LOGLOSS_EPS), rel=1e-5)


def test_collection_accumulates_batches() -> None:
    p, y = scored(6, n=1000, ties=True)
    collection = make_collection(threshold=0.3)
    for start in range(0, 1000, 128):
        batch = slice(start, start + 128)
        collection.update(preds=torch.from_numpy(p[batch]).float(), target=torch.from_numpy(y[batch]).float())
    got = {k: float(v) for k, v in collection.compute().items()}
    assert_matches({k: got[k] for k in METRIC_NAMES}, reference(p, y, 0.3))


def j_at(p: np.ndarray, y: np.ndarray, pred: np.ndarray) -> float:
    """Youden's J of a 0/1 prediction vector."""
    return pred[y == 1].mean() - pred[y == 0].mean()


def brute_force_j(p: np.ndarray, y: np.ndarray) -> float:
    """Max J over 'p >= t' for every unique score t, plus predicting no default at all."""
    return max([0.0] + [j_at(p, y, p >= t) for t in np.unique(p)])


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_youden_threshold_matches_brute_force(seed: int, ties: bool) -> None:
    p, y = scored(seed, n=200 + 50 * seed, ties=ties)
    t = youden_threshold(p, y)
    assert 0.0 <= t <= 1.0
    best = brute_force_j(p, y)
    assert best > 0.1
    assert j_at(p, y, p >= t) == pytest.approx(best, abs=1e-12)
    assert j_at(p, y, p > t) == pytest.approx(best, abs=1e-12)  # compute_metrics' rule
    assert compute_metrics(p, y, threshold=t)["ks"] == pytest.approx(best, abs=ATOL)


def test_youden_threshold_float32_scores() -> None:
    p, y = scored(7, ties=False)
    p32 = p.astype(np.float32)
    t = youden_threshold(torch.from_numpy(p32), torch.from_numpy(y))
    assert j_at(p32, y, p32 >= np.float32(t)) == pytest.approx(brute_force_j(p32, y), abs=1e-12)
    assert j_at(p32, y, p32 > np.float32(t)) == pytest.approx(brute_force_j(p32, y), abs=1e-12)


@pytest.mark.parametrize(
    ("p", "y"),
    [
        ([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]),  # perfect separation
        ([0.0, 0.0, 1.0, 1.0], [0, 0, 1, 1]),  # scores at the bounds
        ([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]),  # no information: J = 0 at best
        ([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]),  # reversed: J = 0 at best
        ([1.0, 1.0, 0.0, 0.0], [0, 0, 1, 1]),  # reversed, scores at the bounds
    ],
)
def test_youden_threshold_edge_cases(p: list[float], y: list[int]) -> None:
    pa, ya = np.array(p), np.array(y)
    t = youden_threshold(pa, ya)
    assert 0.0 <= t <= 1.0
    assert j_at(pa, ya, pa >= t) == pytest.approx(brute_force_j(pa, ya))


@pytest.mark.parametrize("label", [0, 1])
def test_youden_threshold_needs_both_classes(label: int) -> None:
    with pytest.raises(ValueError, match=f"both classes.*only class {label}"):
        youden_threshold(np.array([0.2, 0.7, 0.4]), np.full(3, label))


BAD_INPUTS = [
    ([0.1, 0.2, 0.3], [0, 1], 0.5, "same length, got 3 and 2"),
    ([], [], 0.5, "non-empty"),
    ([0.1, math.nan], [0, 1], 0.5, "finite, got nan at index 1"),
    ([0.1, math.inf], [0, 1], 0.5, "finite, got inf at index 1"),
    ([0.1, 1.5], [0, 1], 0.5, r"within \[0, 1\], got 1.5 at index 1"),
    ([-0.25, 0.5], [0, 1], 0.5, r"within \[0, 1\], got -0.25 at index 0"),
    ([0.1, 0.5], [0, 2], 0.5, "0 or 1, got 2 at index 1"),
    ([0.1, 0.5], [0.5, 1], 0.5, "0 or 1, got 0.5 at index 0"),
    ([0.1, 0.5], [-1, 1], 0.5, "0 or 1, got -1 at index 0"),
    ([0.1, 0.5], ["a", "b"], 0.5, "labels must be 0 or 1, got dtype"),
    ([[0.1, 0.5]], [0, 1], 0.5, r"one-dimensional, got shape \(1, 2\)"),
    ([0.1, 0.5], [0, 1], 1.5, "threshold.*got 1.5"),
    ([0.1, 0.5], [0, 1], -0.1, "threshold.*got -0.1"),
    ([0.1, 0.5], [0, 1], math.nan, "threshold.*got nan"),
    ([0.1, 0.5], [0, 1], "0.5", "threshold.*got '0.5'"),
    ([0.1, 0.5], [0, 1], True, "threshold.*got True"),
]


@pytest.mark.parametrize(("p", "y", "threshold", "message"), BAD_INPUTS)
def test_bad_inputs_raise(p: list, y: list, threshold: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_metrics(np.array(p), np.array(y), threshold=threshold)  # type: ignore[arg-type]


@pytest.mark.parametrize(("p", "y", "message"), [(b[0], b[1], b[3]) for b in BAD_INPUTS[:11]])
def test_youden_bad_inputs_raise(p: list, y: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        youden_threshold(np.array(p), np.array(y))


@pytest.mark.parametrize("threshold", [1.5, -1, "x"])
def test_make_collection_rejects_bad_threshold(threshold: object) -> None:
    with pytest.raises(ValueError, match=f"threshold.*{threshold!r}"):
        make_collection(threshold)  # type: ignore[arg-type]


def test_integer_threshold_accepted() -> None:
    p, y = scored(8)
    assert compute_metrics(p, y, threshold=1) == compute_metrics(p, y, threshold=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compute_metrics(p, y, threshold=0)["recall"] == 1.0


def test_collection_forward_and_clone() -> None:
    p, y = scored(9, n=400)
    collection = make_collection().clone(prefix="val/")
    half = torch.from_numpy(p[:200]).float(), torch.from_numpy(y[:200]).float()
    batch_values = collection(*half)
    assert set(batch_values) == {f"val/{name}" for name in METRIC_NAMES}
    assert float(batch_values["val/auc"]) == pytest.approx(skm.roc_auc_score(y[:200], p[:200]))
    collection.update(torch.from_numpy(p[200:]).float(), torch.from_numpy(y[200:]))
    got = {k.removeprefix("val/"): float(v) for k, v in collection.compute().items()}
    assert_matches({k: got[k] for k in METRIC_NAMES}, reference(p, y, 0.5))
