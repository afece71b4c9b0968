"""zoo.stats: DeLong against a plain O(n_pos·n_neg) computation and sklearn, tests and intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import roc_auc_score

from zoo.errors import ZooError
from zoo.stats import auc_ci, delong, delong_test, mean_ci


def plain_delong(y: np.ndarray, scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """DeLong (1988) written out: psi over every (positive, negative) pair, ties 1/2."""
    pos_rows, neg_rows = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    m, n = len(pos_rows), len(neg_rows)
    v10 = np.zeros((len(scores), m))
    v01 = np.zeros((len(scores), n))
    for k, s in enumerate(scores):
        psi = np.zeros((m, n))
        for i, p in enumerate(pos_rows):
            for j, q in enumerate(neg_rows):
                psi[i, j] = 1.0 if s[p] > s[q] else 0.5 if s[p] == s[q] else 0.0
        v10[k] = psi.mean(axis=1)
        v01[k] = psi.mean(axis=0)
    auc = v10.mean(axis=1)
    cov = np.zeros((len(scores), len(scores)))
    for a in range(len(scores)):
        for b in range(len(scores)):
            s10 = np.sum((v10[a] - auc[a]) * (v10[b] - auc[b])) / (m - 1)
            s01 = np.sum((v01[a] - auc[a]) * (v01[b] - auc[b])) / (n - 1)
            cov[a, b] = s10 / m + s01 / n
    return auc, cov


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_matches_the_plain_computation_and_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(150) < 0.3).astype(int)
    # rounded scores make many ties, the case midranks must get right
    a = np.round(y * 0.8 + rng.normal(size=150), 1)
    b = np.round(0.5 * a + rng.normal(size=150), 1)

    fast = delong(y, a, b)
    auc, cov = plain_delong(y, [a, b])

    np.testing.assert_allclose(fast.auc, auc, rtol=1e-12)
    np.testing.assert_allclose(fast.cov, cov, rtol=1e-10, atol=1e-15)
    assert fast.auc[0] == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert fast.auc[1] == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    one = delong(y, a)
    assert one.cov.shape == (1, 1) and one.cov[0, 0] == pytest.approx(cov[0, 0], rel=1e-10)


def test_a_clearly_better_scorer_gets_a_small_p_value() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(600) < 0.3).astype(int)
    good = y * 1.5 + rng.normal(size=600)
    weak = y * 0.2 + rng.normal(size=600)

    result = delong_test(y, good, weak)

    assert result["auc_a"] == pytest.approx(roc_auc_score(y, good))
    assert result["diff"] == pytest.approx(result["auc_a"] - result["auc_b"])
    assert result["diff"] > 0.2
    assert result["p_value"] < 1e-6
    assert result["diff_lo"] > 0
    # z and p agree with each other and with the interval's half width
    assert result["p_value"] == pytest.approx(2 * scipy_stats.norm.sf(abs(result["z"])))
    half = (result["diff_hi"] - result["diff_lo"]) / 2
    assert half == pytest.approx(1.959964 * result["diff"] / result["z"], rel=1e-5)


def test_two_equally_good_noisy_scorers_get_a_large_p_value() -> None:
    def draw(seed: int) -> dict[str, float]:
        rng = np.random.default_rng(seed)
        y = (rng.random(300) < 0.3).astype(int)
        signal = y * 1.0 + rng.normal(size=300)
        return delong_test(y, signal + 0.3 * rng.normal(size=300), signal + 0.3 * rng.normal(size=300))

    result = draw(0)
    assert abs(result["diff"]) < 0.02
    assert result["p_value"] > 0.2
    assert result["diff_lo"] < 0 < result["diff_hi"]
    # Under the null the test rejects at 5% about 5% of the time: it is neither blind nor trigger-happy.
    p_values = np.array([draw(seed)["p_value"] for seed in range(200)])
    assert 0.01 <= np.mean(p_values < 0.05) <= 0.10
    assert 0.35 <= np.median(p_values) <= 0.65


def test_identical_scorers_give_p_one() -> None:
    y = np.array([0, 1, 0, 1, 1, 0])
    s = np.array([0.1, 0.7, 0.3, 0.2, 0.9, 0.4])
    result = delong_test(y, s, s)
    assert result["diff"] == 0 and result["z"] == 0 and result["p_value"] == 1.0


def test_auc_ci_is_the_normal_interval_from_delongs_variance() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.4).astype(int)
    prob = 1 / (1 + np.exp(-(y + rng.normal(size=300))))

    auc, lo, hi = auc_ci(y, prob)

    _, cov = plain_delong(y, [prob])
    half = 1.959964 * math.sqrt(cov[0, 0])
    assert auc == pytest.approx(roc_auc_score(y, prob))
    assert lo == pytest.approx(auc - half, rel=1e-5) and hi == pytest.approx(auc + half, rel=1e-5)
    # a wider level, a wider interval; a perfect scorer is clipped to [0, 1]
    _, lo99, hi99 = auc_ci(y, prob, level=0.99)
    assert lo99 < lo and hi99 > hi
    assert auc_ci(y, y.astype(float)) == (1.0, 1.0, 1.0)


def test_mean_ci_is_students_t_interval() -> None:
    values = [0.71, 0.74, 0.69, 0.75, 0.72]
    mean, lo, hi = mean_ci(values)
    half = 2.776445 * np.std(values, ddof=1) / math.sqrt(5)  # t(0.975, 4)
    assert mean == pytest.approx(np.mean(values))
    assert lo == pytest.approx(mean - half, rel=1e-6) and hi == pytest.approx(mean + half, rel=1e-6)
    one = mean_ci([0.7])
    assert one[0] == 0.7 and math.isnan(one[1]) and math.isnan(one[2])
    assert mean_ci([0.7, math.nan, 0.7]) == (0.7, 0.7, 0.7)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: delong([0, 1, 2], [0.1, 0.2, 0.3]), "expected labels 0 or 1, got 2"),
        (lambda: delong([1, 1], [0.1, 0.2]), "expected both classes"),
        (lambda: delong([0, 1], [0.1]), r"expected prob_a of shape \(2,\)"),
        (lambda: delong([0, 1], [0.1, math.nan]), "expected finite scores in prob_a"),
        (lambda: mean_ci([1.0, 2.0], level=95), "strictly between 0 and 1, got 95"),
    ],
)
def test_bad_input_is_one_clear_error(call, message: str) -> None:
    with pytest.raises(ZooError, match=message):
        call()
