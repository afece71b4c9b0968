"""The O(n) rule selection (zoo/rules/select.py): every selected rule meets every constraint, the
greedy pass follows the score buckets and skips a rule only for a reason, hand examples with a
known answer, rule statistics, the objective, and one-line errors for bad values."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.rules import select
from zoo.rules.select import Constraints, bucket_order, objective, rule_stats, score_buckets, select_rules


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard overlap of two boolean coverage columns; two empty coverages are the same set."""
    union = np.sum(a | b)
    return 1.0 if union == 0 else np.sum(a & b) / union


def run(covered: np.ndarray, constraints: Constraints, **columns: np.ndarray) -> np.ndarray:
    """select_rules on a rows x rules boolean matrix; missing columns get harmless defaults."""
    n = covered.shape[1]
    inputs = {
        "score": np.zeros(n),
        "length": np.ones(n, dtype=int),
        "support": covered.mean(axis=0) if len(covered) else np.zeros(n),
        "lift": np.ones(n),
        "attention_mass": np.zeros(n),
    }
    inputs.update(columns)
    return select_rules(coverage=np.packbits(covered.T, axis=1), constraints=constraints, **inputs)


def check_selection(selected, covered, score, length, support, lift, mass, constraints) -> None:
    """Every constraint, checked from the unpacked matrix, and every skipped eligible rule explained."""
    c = constraints
    selected = [int(i) for i in selected]
    assert len(set(selected)) == len(selected)
    assert len(selected) <= c.max_rules
    eligible = np.flatnonzero(
        (length <= c.max_length) & (support >= c.min_support) & (np.abs(lift) >= c.min_lift)
    )
    assert set(selected) <= set(eligible.tolist())
    for rank, i in enumerate(selected):
        assert length[i] <= c.max_length and support[i] >= c.min_support and abs(lift[i]) >= c.min_lift
        assert sum(mass[selected[:rank]]) < c.max_attention_mass  # room left before adding rule i
        for j in selected[:rank]:
            assert jaccard(covered[:, i], covered[:, j]) <= c.max_overlap
    # The greedy order: highest bucket first, index order inside a bucket (buckets over the
    # eligible scores' range).
    key = {}
    if eligible.size:
        low, high = score[eligible].min(), score[eligible].max()
        for i in eligible:
            bucket = (
                0
                if high == low
                else min(int((score[i] - low) * (c.n_buckets / (high - low))), c.n_buckets - 1)
            )
            key[int(i)] = (-bucket, int(i))
    assert [key[i] for i in selected] == sorted(key[i] for i in selected)
    # A skipped eligible rule before the last acceptance, or any skipped rule when the pass ran to
    # the end without hitting K_max or theta, must overlap too much with a rule accepted before it.
    stopped = len(selected) == c.max_rules or sum(mass[selected]) >= c.max_attention_mass
    for i in set(eligible.tolist()) - set(selected):
        if stopped and key[i] > key[selected[-1]]:
            continue
        earlier = [j for j in selected if key[j] < key[i]]
        assert any(jaccard(covered[:, i], covered[:, j]) > c.max_overlap for j in earlier), i


@st.composite
def candidate_sets(draw):
    n_rows = draw(st.integers(1, 150))
    n_rules = draw(st.integers(0, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    density = rng.uniform(0.0, 0.6, size=n_rules)
    covered = rng.random((n_rows, n_rules)) < density
    if n_rules >= 2 and draw(st.booleans()):  # near-copies, so that overlap rejections happen
        copies = n_rules // 2
        noise = rng.random((n_rows, copies)) < 0.05
        covered[:, n_rules - copies :] = covered[:, :copies] ^ noise
    if draw(st.booleans()):
        score = rng.integers(0, 4, size=n_rules).astype(float)  # many ties
    else:
        score = rng.lognormal(size=n_rules)
    length = rng.integers(1, 5, size=n_rules)
    y = rng.random(n_rows) < 0.3
    y[0] = True
    support, _, lift = rule_stats(covered, y)  # rules covering no row have NaN lift
    mass = rng.dirichlet(np.ones(n_rules)) * draw(st.sampled_from([1.0, 0.5])) if n_rules else np.zeros(0)
    constraints = Constraints(
        max_rules=draw(st.integers(1, 8)),
        max_length=draw(st.integers(1, 4)),
        min_support=draw(st.sampled_from([0.0, 0.05, 0.2])),
        min_lift=draw(st.sampled_from([0.0, 0.1, 0.5])),
        max_overlap=draw(st.sampled_from([0.0, 0.3, 0.7, 1.0])),
        max_attention_mass=draw(st.sampled_from([0.2, 0.5, 0.95, 1.0])),
        n_buckets=draw(st.sampled_from([1, 3, 1024, select.MAX_BUCKETS])),
    )
    return covered, score, length, support, lift, mass, constraints


@settings(max_examples=150, deadline=None)
@given(candidate_sets())
def test_every_selected_rule_meets_every_constraint(case):
    covered, score, length, support, lift, mass, constraints = case
    coverage = np.packbits(covered.T, axis=1)
    selected = select_rules(score, length, support, lift, coverage, mass, constraints)
    assert selected.dtype == np.int64
    check_selection(selected, covered, score, length, support, lift, mass, constraints)
    with mock.patch.object(select, "BLOCK_BYTES", 1):  # one candidate per block: same answer
        assert (
            select_rules(score, length, support, lift, coverage, mass, constraints).tolist()
            == selected.tolist()
        )


def test_overlapping_rule_is_rejected_and_the_next_accepted():
    covered = np.zeros((10, 3), dtype=bool)
    covered[0:5, 0] = True  # score 3: accepted first
    covered[0:4, 1] = True  # score 2: Jaccard 4/5 = 0.8 with rule 0 > 0.7, rejected
    covered[5:10, 2] = True  # score 1: disjoint from rule 0, accepted
    selected = run(covered, Constraints(), score=np.array([3.0, 2.0, 1.0]))
    assert selected.tolist() == [0, 2]
    loose = run(covered, Constraints(max_overlap=0.8), score=np.array([3.0, 2.0, 1.0]))
    assert loose.tolist() == [0, 1, 2]  # 0.8 is within a limit of 0.8


def test_stops_at_max_rules_and_at_the_attention_mass():
    covered = np.eye(6, dtype=bool).repeat(5, axis=0)  # 6 disjoint rules over 30 rows
    score = np.array([1.0, 6.0, 2.0, 5.0, 3.0, 4.0])
    assert run(covered, Constraints(max_rules=3), score=score).tolist() == [1, 3, 5]
    mass = np.array([0.05, 0.5, 0.05, 0.3, 0.05, 0.05])
    # Before rule 3 the mass is 0.5 < 0.75, so it is accepted; then 0.8 >= 0.75 stops the pass.
    selected = run(covered, Constraints(max_attention_mass=0.75), score=score, attention_mass=mass)
    assert selected.tolist() == [1, 3]
    mass[3] = 0.25  # exactly theta after rule 3: "still < theta" fails, so the pass stops there too
    selected = run(covered, Constraints(max_attention_mass=0.75), score=score, attention_mass=mass)
    assert selected.tolist() == [1, 3]


def test_empty_coverages_are_the_same_set():
    covered = np.zeros((16, 3), dtype=bool)
    covered[:4, 2] = True
    constraints = Constraints(min_support=0.0, max_overlap=0.9)
    assert run(covered, constraints, score=np.array([3.0, 2.0, 1.0])).tolist() == [0, 2]
    assert run(covered, Constraints(min_support=0.0, max_overlap=1.0)).tolist() == [0, 1, 2]


def test_per_rule_filters_and_good_rules():
    covered = np.eye(5, dtype=bool).repeat(10, axis=0)  # support 0.2 each
    covered[:, 2] = False
    covered[0, 2] = True  # support 0.02: kept at s_min = 0.02 ...
    selected = run(
        covered,
        Constraints(min_support=0.03),  # ... and dropped at 0.03
        score=np.array([5.0, 4.0, 3.0, 2.0, 1.0]),
        length=np.array([4, 3, 1, 1, 1]),  # rule 0 is too long
        lift=np.array([1.0, -0.5, 1.0, 0.05, -0.1]),  # rule 3 is uninformative, 1 and 4 are "good" rules
    )
    assert selected.tolist() == [1, 4]


def test_buckets_order_ties_by_index():
    score = np.array([0.0, 0.49, 0.51, 1.0])
    assert score_buckets(score, 2).tolist() == [0, 0, 1, 1]
    assert bucket_order(score, 2).tolist() == [2, 3, 0, 1]  # 0.51 and 1.0 share the top bucket
    assert bucket_order(score, select.MAX_BUCKETS).tolist() == [3, 2, 1, 0]
    assert bucket_order(np.array([2.0, 2.0, 2.0]), 8).tolist() == [0, 1, 2]
    assert bucket_order(np.zeros(0), 8).tolist() == []
    covered = np.eye(4, dtype=bool).repeat(3, axis=0)
    assert run(covered, Constraints(max_rules=2, n_buckets=2), score=score).tolist() == [2, 3]


def test_greedy_pass_never_skips_an_eligible_higher_bucket_rule():
    """2,000 candidates over several blocks: the order is the bucket order minus overlap rejections."""
    rng = np.random.default_rng(0)
    prototypes = rng.random((200, 25)) < 0.3
    covered = prototypes[:, rng.integers(0, 25, size=2000)] & (rng.random((200, 2000)) < 0.95)
    score = rng.lognormal(size=2000)
    y = rng.random(200) < 0.3
    support, _, lift = rule_stats(covered, y)
    length = rng.integers(1, 4, size=2000)
    mass = np.full(2000, 1 / 2000)
    constraints = Constraints(max_rules=20, n_buckets=64)
    with mock.patch.object(select, "BLOCK_BYTES", 32 * 50):  # blocks of 50 candidates
        selected = select_rules(
            score, length, support, lift, np.packbits(covered.T, axis=1), mass, constraints
        )
    assert 10 <= len(selected) <= 20
    check_selection(selected, covered, score, length, support, lift, mass, constraints)


def test_rule_stats_dense_and_sparse():
    y = np.array([1, 0, 0, 0])
    rules = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]], dtype=bool)
    for matrix in (rules, scipy.sparse.csr_matrix(rules)):
        support, bad_rate, lift = rule_stats(matrix, y)
        np.testing.assert_allclose(support, [0.5, 0.5, 0.0])
        np.testing.assert_allclose(bad_rate, [0.5, 0.0, np.nan])  # base rate 0.25
        np.testing.assert_allclose(lift, [1.0, -1.0, np.nan])
    with pytest.raises(ValueError, match="base rate"):
        rule_stats(rules, np.zeros(4))
    with pytest.raises(ValueError, match=r"shape \(4, 3\)"):
        rule_stats(rules, np.ones(5))


def test_objective_prices_size_length_and_stability_as_documented():
    # The prices of the defaults as objective's docstring states them (issue 10): 20 rules cost
    # 0.04 AUC, one condition more per rule 0.01, a perfectly stable set earns 0.05, and 20 rules
    # of length 3 (stability 0) cost 0.07 in all.
    assert objective(0.8, 25, 2.0, 0.5) - objective(0.8, 5, 2.0, 0.5) == pytest.approx(-0.04)
    assert objective(0.8, 10, 3.0, 0.5) - objective(0.8, 10, 2.0, 0.5) == pytest.approx(-0.01)
    assert objective(0.8, 10, 2.0, 1.0) - objective(0.8, 10, 2.0, 0.0) == pytest.approx(0.05)
    assert objective(0.8, 20, 3.0, 0.0) == pytest.approx(0.73)
    # without prices J is the validation AUC
    assert objective(0.8, 10, 2.0, 0.6, lam=0.0, mu=0.0, nu=0.0) == 0.8


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_rules", 0),
        ("max_rules", 2.5),
        ("max_rules", True),
        ("max_length", 0),
        ("min_support", 1.0),
        ("min_support", -0.1),
        ("min_lift", -0.5),
        ("min_lift", float("nan")),
        ("max_overlap", 1.5),
        ("max_attention_mass", 0.0),
        ("max_attention_mass", 1.2),
        ("n_buckets", 0),
        ("n_buckets", 70_000),
    ],
)
def test_bad_constraint_values_raise_naming_the_value(field, value):
    with pytest.raises(ValueError, match=f"^{field}={value!r}: expected") as error:
        Constraints(**{field: value})
    assert "\n" not in str(error.value)


def test_bad_inputs_raise():
    covered = np.eye(3, dtype=bool)
    with pytest.raises(ValueError, match=r"length has shape \(2,\): expected \(3,\)"):
        run(covered, Constraints(), length=np.ones(2))
    with pytest.raises(ValueError, match=r"score\[1\] = inf: expected finite values"):
        run(covered, Constraints(), score=np.array([0.0, np.inf, 1.0]))
    with pytest.raises(ValueError, match=r"attention_mass\[2\] = -0.1: expected finite values >= 0"):
        run(covered, Constraints(), attention_mass=np.array([0.0, 0.5, -0.1]))
    with pytest.raises(ValueError, match="coverage is bool"):
        select_rules(np.zeros(3), np.ones(3), np.ones(3), np.ones(3), covered, np.zeros(3), Constraints())
