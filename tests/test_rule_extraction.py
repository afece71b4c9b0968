"""Rule extraction (issue 10, steps 1-3): tree paths as readable rules, the ensembles' own routing
of every row (missing and unseen values included), canonicalisation and filters, bulk encoding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.tree import DecisionTreeClassifier

from zoo.data.spec import MISSING_INDEX, UNSEEN_INDEX, CategoricalField, FeatureSpec
from zoo.rules.encode import RuleEncoder, coverage_bits
from zoo.rules.extract import (
    candidates,
    catboost_pool,
    catboost_rules,
    design_columns,
    design_matrix,
    fit_catboost,
    fit_forest,
    forest_rules,
    quantile_grid,
    snap,
)
from zoo.rules.terms import MISSING, Rule, Term, rule
from zoo.testing import planted_batch, tiny_spec, to_arrays

nan = math.nan


def holds(found: Rule, spec: FeatureSpec, x_cat: np.ndarray, x_raw: np.ndarray) -> bool:
    """The slow reference: one row, one rule, term by term in float64."""
    categorical = [f.name for f in spec.categorical]
    numeric = [f.name for f in spec.raw_numeric]
    for term in found.terms:
        if term.categorical:
            j = categorical.index(term.field)
            label = spec.categorical[j].label(int(x_cat[j]))
            ok = (term.include is None or label in term.include) and label not in term.exclude
        else:
            value = float(x_raw[numeric.index(term.field)])
            ok = term.missing if math.isnan(value) else term.low < value <= term.high
        if not ok:
            return False
    return True


def reference(rules: list[Rule], spec: FeatureSpec, arrays: dict[str, np.ndarray]) -> np.ndarray:
    rows = range(len(arrays["x_cat"]))
    return np.array(
        [[holds(r, spec, arrays["x_cat"][i], arrays["x_raw"][i]) for r in rules] for i in rows], dtype=bool
    ).reshape(len(rows), len(rules))


def train_and_test(spec: FeatureSpec, n: int = 300) -> tuple[dict, dict]:
    """Planted rows with NaNs in the last numeric; no unseen category in training, some in test."""
    train = to_arrays(planted_batch(spec, n, seed=0, raw_values=True))
    train["x_cat"] = np.where(train["x_cat"] == UNSEEN_INDEX, UNSEEN_INDEX + 1, train["x_cat"])
    test = to_arrays(planted_batch(spec, 120, seed=7, raw_values=True))
    assert np.isnan(test["x_raw"]).any()
    if spec.categorical:
        assert (test["x_cat"] == UNSEEN_INDEX).any() and (test["x_cat"] == MISSING_INDEX).any()
    return train, test


def nonempty_columns(covered: np.ndarray) -> list[tuple[int, ...]]:
    """Each column's covered rows, empty columns left out (unsatisfiable paths give no rule)."""
    return [tuple(np.flatnonzero(column)) for column in covered.T if column.any()]


# --- the paths of a hand-checkable tree -------------------------------------------------------


def test_a_depth_two_tree_reads_as_its_own_paths():
    # Rows: small num_0 with a missing category are bad, other small ones good, large ones bad,
    # and two bad rows with num_0 missing, so the root split sends missing values right.
    spec = tiny_spec(1, 1, crosses=False)
    arrays = {
        "x_cat": np.array([0, 0, 0, 2, 2, 2, 3, 3, 3, 2, 3, 2, 3, 4, 2, 3])[:, None],
        "x_raw": np.array([10, 20, 30, 15, 25, 35, 12, 22, 32, 60, 70, 80, 90, 61, nan, nan], "f4")[:, None],
        "y": np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1], dtype=np.float32),
    }
    columns = design_columns(spec)
    tree = DecisionTreeClassifier(max_depth=2, random_state=0)
    tree.fit(design_matrix(spec, arrays, columns), arrays["y"])
    texts = [r.text() for r in forest_rules(tree, columns)]
    assert texts == [
        "num_0 <= 47.5",  # the root: midway between 35 and 60
        "cat_0 is not missing AND num_0 <= 47.5",
        "cat_0 is missing AND num_0 <= 47.5",
        "(num_0 > 47.5 or missing)",
    ]
    assert [r.text() for r in forest_rules(tree, columns, leaves_only=True)] == texts[1:]
    covered = reference(forest_rules(tree, columns), spec, arrays)
    np.testing.assert_array_equal(covered[:, 2], arrays["x_cat"][:, 0] == MISSING_INDEX)
    np.testing.assert_array_equal(covered[-2:, 3], [True, True])  # the NaN rows go right


def test_design_matrix_has_a_column_per_label_and_raw_numerics():
    spec = tiny_spec(1, 1, crosses=False)
    columns = design_columns(spec)
    labels = [c.label for c in columns]
    assert labels == [None, MISSING, "c0_0", "c0_1", "c0_2"]  # no column for the unseen label
    arrays = {"x_cat": np.array([[0], [1], [3]]), "x_raw": np.array([[nan], [2.0], [3.5]], "f4")}
    matrix = design_matrix(spec, arrays, columns)
    np.testing.assert_array_equal(matrix[:, 1:], [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]])
    assert np.isnan(matrix[0, 0]) and matrix[2, 0] == 3.5


# --- the ensembles' own routing ---------------------------------------------------------------


def test_catboost_paths_cover_the_rows_of_their_nodes():
    # Leaf index bit k is splits[k]: the nodes at depth k hold the rows whose leaf index agrees
    # with the prefix on the low k bits. Checked tree by tree, on rows with NaN, missing and
    # unseen categories the trees never saw.
    spec = tiny_spec(2, 2, crosses=False)
    train, test = train_and_test(spec)
    booster = fit_catboost(spec, train, iterations=6, depth=2, seed=0)
    leaves = booster.calc_leaf_indexes(catboost_pool(spec, test))
    missing_terms = 0
    for t in range(booster.tree_count_):
        tree = booster.copy()
        tree.shrink(ntree_start=t, ntree_end=t + 1)
        rules = catboost_rules(tree, spec)
        missing_terms += sum(term.missing for r in rules for term in r.terms)
        expected = np.stack(
            [leaves[:, t] % 2**level == prefix for level in (1, 2) for prefix in range(2**level)], 1
        )
        assert nonempty_columns(reference(rules, spec, test)) == nonempty_columns(expected)
        leaf_rules = catboost_rules(tree, spec, leaves_only=True)
        assert nonempty_columns(reference(leaf_rules, spec, test)) == nonempty_columns(expected[:, 2:])
        assert (reference(leaf_rules, spec, test).sum(1) == 1).all(), "each row in exactly one leaf"
    assert missing_terms > 0, "num_1 has NaNs: some splits must state where missing values go"


def test_catboost_rules_name_category_labels_and_refuse_wide_fields():
    spec = tiny_spec(2, 1, crosses=False)
    train, _ = train_and_test(spec, 400)
    rules = catboost_rules(fit_catboost(spec, train, iterations=20, depth=3, seed=0), spec)
    labels = {label for field in spec.categorical for label in field.labels}
    named = {label for r in rules for term in r.terms for label in (term.include or term.exclude)}
    assert named and named <= labels - {"(unseen)"}  # labels, not hashes; none unseen in training
    wide = FeatureSpec((CategoricalField("wide", 300),), ())
    with pytest.raises(ValueError, match=r"'wide' has 299 labels; .* at most 255"):
        fit_catboost(wide, {"x_cat": np.zeros((4, 1), np.int64), "y": np.zeros(4)}, seed=0)


def test_forest_paths_cover_the_rows_of_their_nodes():
    spec = tiny_spec(2, 2, crosses=False)
    train, test = train_and_test(spec)
    forest, columns = fit_forest(spec, train, n_estimators=5, max_depth=3, seed=0)
    matrix = design_matrix(spec, test, columns)
    leaves = forest.apply(matrix)
    missing_terms = 0
    for t, tree in enumerate(forest.estimators_):
        rules = forest_rules(tree, columns)
        missing_terms += sum(term.missing for r in rules for term in r.terms)
        # node ids are depth-first, left child first: the order of the rules
        expected = tree.decision_path(matrix).toarray()[:, 1:].astype(bool)
        assert nonempty_columns(reference(rules, spec, test)) == nonempty_columns(expected)
        leaf_nodes = np.flatnonzero(tree.tree_.children_left == -1)
        by_leaf = np.stack([leaves[:, t] == node for node in leaf_nodes], 1)
        leaf_rules = forest_rules(tree, columns, leaves_only=True)
        assert nonempty_columns(reference(leaf_rules, spec, test)) == nonempty_columns(by_leaf)
    assert missing_terms > 0
    assert len(forest_rules(forest, columns)) == sum(t.tree_.node_count - 1 for t in forest.estimators_)


def test_nan_rows_satisfy_the_leaf_rule_of_the_leaf_the_tree_sends_them_to():
    # Per tree: a row with num_0 missing satisfies exactly one leaf rule, its terms on num_0 admit
    # missing, and that rule covers exactly the rows the tree puts in the same leaf.
    spec = tiny_spec(1, 1, crosses=False)
    train, test = train_and_test(spec)
    nan_rows = np.flatnonzero(np.isnan(test["x_raw"][:, 0]))
    booster = fit_catboost(spec, train, iterations=8, depth=2, seed=0)
    forest, columns = fit_forest(spec, train, n_estimators=4, max_depth=3, seed=0)
    per_tree = []
    for t in range(booster.tree_count_):
        tree = booster.copy()
        tree.shrink(ntree_start=t, ntree_end=t + 1)
        per_tree.append(catboost_rules(tree, spec, leaves_only=True))
    per_tree += [forest_rules(tree, columns, leaves_only=True) for tree in forest.estimators_]
    leaves = np.concatenate(
        [
            booster.calc_leaf_indexes(catboost_pool(spec, test)),
            forest.apply(design_matrix(spec, test, columns)),
        ],
        1,
    )
    on_num = 0
    for t, rules in enumerate(per_tree):
        covered = reference(rules, spec, test)
        for i in nan_rows:
            (mine,) = np.flatnonzero(covered[i])
            np.testing.assert_array_equal(covered[:, mine], leaves[:, t] == leaves[i, t])
            terms = [term for term in rules[mine].terms if term.field == "num_0"]
            assert all(term.missing for term in terms)
            on_num += bool(terms)
    assert on_num > 0, "some NaN rows must pass a split on num_0"


# --- canonicalise and filter ------------------------------------------------------------------


def test_snap_merges_near_thresholds_and_keeps_split_sides_complementary():
    grid = {"num_0": np.array([10.0, 20.0, 30.0])}
    a = rule([Term("num_0", high=21.5)])
    b = rule([Term("num_0", high=24.0)])
    assert snap(a, grid) == snap(b, grid) == rule([Term("num_0", high=20.0)])
    assert snap(rule([Term("num_0", low=24.0, missing=True)]), grid).text() == "(num_0 > 20 or missing)"
    # below every training value: only missing values are left
    assert snap(rule([Term("num_0", high=5.0, missing=True)]), grid).text() == "num_0 is missing"
    assert snap(rule([Term("num_0", high=5.0)]), grid) is None
    assert snap(rule([Term("num_0", low=5.0)]), grid).text() == "num_0 is not missing"
    # a field never missing in training drops "or missing"
    kept = snap(rule([Term("num_0", high=24.0, missing=True)]), grid, missing_fields=())
    assert kept.text() == "num_0 <= 20"


def test_quantile_grid_holds_training_values_only():
    spec = tiny_spec(0, 2, crosses=False)
    train, _ = train_and_test(spec)
    grid = quantile_grid(spec, train, n_bins=8)
    for j, field in enumerate(spec.raw_numeric):
        values = train["x_raw"][:, j][~np.isnan(train["x_raw"][:, j])]
        assert np.isin(grid[field.name], values).all() and len(grid[field.name]) == 9
        assert grid[field.name][0] == values.min() and grid[field.name][-1] == values.max()


def test_candidates_deduplicate_and_filter_by_length_support_and_coverage():
    spec = tiny_spec(2, 2, crosses=False)
    n = 100
    values = np.arange(n, dtype=np.float32)
    train = {
        "x_cat": np.stack([np.where(values < 50, 2, 3), np.full(n, 2)], 1),
        "x_raw": np.stack([values, np.where(values < 10, nan, values)], 1).astype(np.float32),
        "y": np.zeros(n, np.float32),
    }
    c0, c1 = "c0_0", "c0_1"
    half = rule([Term("num_0", high=49.0)])
    rules = [
        half,
        rule([Term("num_0", high=49.5)]),  # snaps onto `half`: a duplicate
        rule([Term("cat_0", include=frozenset({c0}))]),  # the same rows as `half`
        rule([Term("cat_0", include=frozenset({c1})), Term("num_0", low=60.0)]),
        rule([Term("num_0", high=0.5)]),  # support 0.01
        rule([Term("num_0", high=97.0)]),  # support 0.98: kept at the bound
        rule([Term("num_0", high=98.0)]),  # support 0.99
        rule([Term("cat_1", include=frozenset({"c1_0"}))]),  # every row
        rule([Term("num_1", high=-5.0, missing=True)]),  # num_1 is missing: 10 rows
        rule(
            [
                Term("num_0", low=20.0),
                Term("num_1", low=30.0),
                Term("cat_0", include=frozenset({c1})),
                Term("cat_1", exclude=frozenset({"c1_1"})),
            ]
        ),  # length 4
    ]
    kept, covered = candidates(rules, spec, train, n_bins=100, max_length=3, min_support=0.02)
    assert [r.text() for r in kept] == [
        "num_0 <= 49",
        "cat_0 = 'c0_1' AND num_0 > 60",
        "num_0 <= 97",
        "num_1 is missing",
    ]
    assert covered.shape == (n, 4) and covered.dtype == bool
    np.testing.assert_array_equal(covered.sum(0), [50, 39, 98, 10])
    np.testing.assert_array_equal(covered, reference(kept, spec, train))
    loose, _ = candidates(rules, spec, train, n_bins=100, max_length=4, min_support=0.0)
    assert len(loose) == 8  # + length 4, support 0.01, 0.99 and 1 (every row)
    with pytest.raises(ValueError, match="min_support=0.5"):
        candidates(rules, spec, train, min_support=0.5)


# --- bulk encoding ----------------------------------------------------------------------------


def random_rules(spec: FeatureSpec, arrays: dict[str, np.ndarray], n: int, seed: int) -> list[Rule]:
    """Random rules of 1-3 terms: thresholds on data values and between float32 neighbours,
    label sets that may hold the missing and unseen labels."""
    gen = np.random.default_rng(seed)
    values = arrays["x_raw"][~np.isnan(arrays["x_raw"])]
    rules: list[Rule] = []
    while len(rules) < n:
        terms = []
        for _ in range(gen.integers(1, 4)):
            if gen.random() < 0.5:
                name = spec.raw_numeric[gen.integers(len(spec.raw_numeric))].name
                edge = float(gen.choice(values))
                if gen.random() < 0.3:  # halfway to the next float32: not a float32 itself
                    edge = (edge + float(np.nextafter(np.float32(edge), np.float32(np.inf)))) / 2
                side = {"high": edge} if gen.random() < 0.5 else {"low": edge}
                terms.append(Term(name, missing=bool(gen.random() < 0.4), **side))
            else:
                field = spec.categorical[gen.integers(len(spec.categorical))]
                chosen = frozenset(gen.choice(field.labels, size=gen.integers(1, 3), replace=False))
                terms.append(
                    Term(field.name, **({"include": chosen} if gen.random() < 0.5 else {"exclude": chosen}))
                )
        found = rule(terms)
        if found is not None and found.length:
            rules.append(found)
    return rules


def test_encoder_matches_the_row_by_row_reference_in_and_out_of_chunks():
    spec = tiny_spec(3, 3, crosses=False)
    arrays = to_arrays(planted_batch(spec, 150, seed=3, raw_values=True))
    arrays["x_raw"][::7, 0] = np.nan
    train, _ = train_and_test(spec)
    rules = random_rules(spec, arrays, 80, seed=0)
    forest, columns = fit_forest(spec, train, n_estimators=3, max_depth=3, seed=0)
    rules += forest_rules(forest, columns)
    x_cat, x_raw = torch.from_numpy(arrays["x_cat"]), torch.from_numpy(arrays["x_raw"])
    whole = RuleEncoder(rules, spec, chunk_size=10_000)(x_cat, x_raw)
    chunked = RuleEncoder(rules, spec, chunk_size=7)(x_cat, x_raw)
    assert whole.dtype == torch.bool and whole.shape == (150, len(rules))
    expected = reference(rules, spec, arrays)
    np.testing.assert_array_equal(whole.numpy(), expected)
    np.testing.assert_array_equal(chunked.numpy(), expected)
    assert 0 < expected.mean() < 1


def test_encoder_edge_cases_and_packed_coverage():
    spec = tiny_spec(1, 1, crosses=False)
    x_cat, x_raw = torch.tensor([[0], [1], [3]]), torch.tensor([[nan], [1.0], [-1e30]])
    assert RuleEncoder([], spec)(x_cat, x_raw).shape == (3, 0)
    only_numeric = RuleEncoder([rule([Term("num_0", high=2.0)])], spec)
    assert only_numeric(x_cat, x_raw)[:, 0].tolist() == [False, True, True]
    unseen = RuleEncoder([rule([Term("cat_0", exclude=frozenset({"c0_1"}))])], spec)
    assert unseen(x_cat, x_raw)[:, 0].tolist() == [True, True, False]
    missing = RuleEncoder([rule([Term("cat_0", include=frozenset({MISSING}))])], spec)
    assert missing(x_cat, x_raw)[:, 0].tolist() == [True, False, False]
    no_numeric = RuleEncoder([rule([Term("cat_0", include=frozenset({"c0_1"}))])], tiny_spec(1, 0))
    assert no_numeric(x_cat, torch.zeros(3, 0))[:, 0].tolist() == [False, False, True]
    with pytest.raises(ValueError, match="'cat_0' is not a raw numeric field"):
        RuleEncoder([rule([Term("cat_0", high=1.0)])], spec)
    covered = np.random.default_rng(0).random((21, 5)) < 0.5
    packed = coverage_bits(covered)
    assert packed.dtype == np.uint8 and packed.shape == (5, 3)
    np.testing.assert_array_equal(np.unpackbits(packed, axis=1, count=21).T.astype(bool), covered)
    np.testing.assert_array_equal(np.bitwise_count(packed).sum(1), covered.sum(0))
