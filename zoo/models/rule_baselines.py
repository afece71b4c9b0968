"""Rule baselines of issue 10: RuleFit and a depth-4 CART tree, both printed as readable rules.

- `rulefit`: RuleFit (Friedman & Popescu, "Predictive learning via rule ensembles", Ann. Appl.
  Stat. 2008), imodels' `RuleFitClassifier` behind our interface. Rules are the leaf paths of a
  boosted ensemble of small trees (sizes drawn around `tree_size`, Sec. 3.3); an L1-penalised
  logistic regression over the rules r_k(x) in {0, 1} and the winsorised linear terms l_j(x)
  (Sec. 5) gives F(x) = a_0 + sum_k a_k r_k(x) + sum_j b_j l_j(x), the log-odds of default.
  Its strength is the largest L1 penalty whose model keeps at most `max_rules` non-zero terms, or
  (`cv`) the one of best 5-fold CV accuracy among those; `alpha` fixes it.
- `cart`: one CART tree (Breiman et al. 1984) of depth `max_depth` (4); each leaf is one rule,
  its root-to-leaf path. A row scores its leaf's log-odds log(p / (1 - p)), p the leaf's training
  bad rate shrunk toward the overall one; the table gives each leaf's log-odds less the root's.

Both read the data's own values (raw numerics, category labels), so each rule is a canonical
`zoo.rules.terms.Rule`: "IF duration_in_month > 24 AND savings = 'A61' THEN risk up". Both write
`rules.md` / `rules.csv` (`write_artifacts`) and give `rule_summary()` (number of rules, mean
length). Choices the papers leave open are marked "CHOICE" and listed in
docs/models/rule_baselines.md.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from zoo.data.spec import FeatureSpec
from zoo.errors import ZooError
from zoo.models.sklearn_trees import SklearnTreeModel, logit_of
from zoo.models.tree import Arrays, TreeModel, gather
from zoo.rules.extract import Column, design_columns, design_matrix, forest_rules
from zoo.rules.report import write_rules
from zoo.rules.terms import INF, MISSING, Rule, Term, rule

#: The version tag of a stored RuleFit model (`FittedRuleFit.to_json`).
RULEFIT_FORMAT = "zoo.rulefit/1"


def column_name(column: Column) -> str:
    """How a design-matrix column reads: `duration_in_month`, `savings = 'A65'`, `savings is missing`."""
    if column.label is None:
        return column.field
    if column.label == MISSING:
        return f"{column.field} is missing"
    return f"{column.field} = {column.label!r}"


def binary_term(holds_at: Sequence[bool], one: Term, zero: Term) -> Term | None:
    """The term of a condition on a 0/1 column, from whether it holds at 0 and at 1: `one` (only
    at 1), `zero` (only at 0), no condition (both; None) or an unsatisfiable term (neither)."""
    at_zero, at_one = holds_at
    if at_zero and at_one:
        return None
    if at_one:
        return one
    if at_zero:
        return zero
    return one & zero  # unsatisfiable


def rule_table(
    rules: Sequence[Rule | None], points: np.ndarray, covered: np.ndarray, y: np.ndarray
) -> pd.DataFrame:
    """The report's columns for rules with their points and training coverage bool[N, n_rules]:
    support, bad rate among covered rows, lift of that bad rate over the base rate, length."""
    base = float(y.mean()) if len(y) else math.nan
    count = covered.sum(0)
    bad = (covered & (y[:, None] > 0.5)).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        bad_rate = np.where(count > 0, bad / np.maximum(count, 1), np.nan)
        lift = bad_rate / base if base > 0 else np.full(len(rules), np.nan)
    return pd.DataFrame(
        {
            "rule": [r.text() if r is not None else "(never true)" for r in rules],
            "points": np.asarray(points, dtype=np.float64),
            "support": count / max(len(y), 1),
            "bad_rate": bad_rate,
            "lift": lift,
            "length": [r.length if r is not None else 0 for r in rules],
        }
    )


# --- RuleFit ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FittedRule:
    """One RuleFit rule: the AND of `(column, op, threshold)` conditions on the design matrix
    (op "<=" or ">"; no condition: every row), worth `coef` log-odds."""

    conditions: tuple[tuple[int, str, float], ...]
    coef: float


@dataclass(frozen=True)
class FittedRuleFit:
    """Everything a fitted RuleFit needs to score rows, read off imodels' estimator.

    The design matrix is `design_matrix` (raw numerics, one 0/1 column per category label) with
    missing numerics replaced by `medians`, then a 0/1 "is missing" column per field of
    `indicated`. Its log-odds: intercept + sum of the rules' coefs over the rules a row satisfies
    + sum_j linear[j] * scale[j] * clip(x_j, clip_low[j], clip_high[j]) (no linear terms: empty)."""

    columns: tuple[str, ...]
    medians: tuple[float, ...]
    indicated: tuple[str, ...]
    intercept: float
    rules: tuple[FittedRule, ...]
    linear: tuple[float, ...]
    scale: tuple[float, ...]
    clip_low: tuple[float, ...]
    clip_high: tuple[float, ...]

    @classmethod
    def from_estimator(
        cls, estimator: Any, columns: Sequence[str], medians: Sequence[float], indicated: Sequence[str]
    ) -> FittedRuleFit:
        """The state of an imodels `RuleFitClassifier` fitted on the matrix of `columns`: its
        non-zero rules (imodels drops the zero ones), linear terms and intercept."""
        n = len(columns)
        placeholder = re.compile(r"X_(\d+)")
        rules = []
        for found in estimator.rules_without_feature_names_:
            conditions = []
            for (feature, op), value in sorted(found.agg_dict.items()):
                if op == "==":  # imodels' always-true rule of a tree without splits, "X_0 == X_0"
                    continue
                if op not in ("<=", ">"):
                    raise ValueError(f"imodels rule {found.rule!r} has operator {op!r}, expected <= or >")
                match = placeholder.fullmatch(feature)
                if match is None or int(match.group(1)) >= n:
                    raise ValueError(
                        f"imodels rule {found.rule!r} names {feature!r}, expected X_0..X_{n - 1}"
                    )
                conditions.append((int(match.group(1)), op, float(value)))
            rules.append(FittedRule(tuple(conditions), float(found.args[0])))
        linear: tuple[float, ...] = ()
        scale: tuple[float, ...] = ()
        low: tuple[float, ...] = ()
        high: tuple[float, ...] = ()
        if estimator.include_linear:
            linear = tuple(float(c) for c in estimator.coef[:n])
            scale = (
                tuple(float(s) for s in estimator.friedscale.scale_multipliers)
                if estimator.lin_standardise
                else (1.0,) * n
            )
            limits = estimator.winsorizer.winsor_lims
            low, high = tuple(float(v) for v in limits[0]), tuple(float(v) for v in limits[1])
        return cls(
            columns=tuple(columns),
            medians=tuple(float(m) for m in medians),
            indicated=tuple(indicated),
            intercept=float(np.asarray(estimator.intercept).reshape(-1)[0]),
            rules=tuple(rules),
            linear=linear,
            scale=scale,
            clip_low=low,
            clip_high=high,
        )

    def covered(self, matrix: np.ndarray) -> np.ndarray:
        """bool[N, n_rules]: which rows of the design matrix satisfy which rule."""
        out = np.ones((len(matrix), len(self.rules)), dtype=bool)
        for k, found in enumerate(self.rules):
            for column, op, threshold in found.conditions:
                values = matrix[:, column]
                out[:, k] &= values <= threshold if op == "<=" else values > threshold
        return out

    def logit(self, matrix: np.ndarray) -> np.ndarray:
        """float64[N]: the log-odds of default (imodels' `_predict_continuous_output`)."""
        coefs = np.array([r.coef for r in self.rules], dtype=np.float64)
        logit = self.covered(matrix).astype(np.float64) @ coefs + self.intercept
        if self.linear:
            clipped = np.clip(matrix, np.array(self.clip_low), np.array(self.clip_high))
            logit += (clipped * np.array(self.scale)) @ np.array(self.linear)
        return logit

    def to_json(self) -> bytes:
        # Python's float repr round-trips exactly; inf (no winsorising) is written as Infinity.
        return json.dumps({"format": RULEFIT_FORMAT, **asdict(self)}).encode()

    @classmethod
    def from_json(cls, blob: bytes) -> FittedRuleFit:
        """The state from `to_json`'s bytes; plain JSON, so loading runs no stored code."""
        try:
            data = json.loads(blob.decode())
            if data.pop("format") != RULEFIT_FORMAT:
                raise ValueError("wrong format tag")
            rules = tuple(
                FittedRule(
                    tuple((int(c), str(op), float(t)) for c, op, t in r["conditions"]), float(r["coef"])
                )
                for r in data.pop("rules")
            )
            state = cls(
                columns=tuple(str(c) for c in data.pop("columns")),
                medians=tuple(float(v) for v in data.pop("medians")),
                indicated=tuple(str(v) for v in data.pop("indicated")),
                intercept=float(data.pop("intercept")),
                rules=rules,
                **{
                    k: tuple(float(v) for v in data.pop(k))
                    for k in ("linear", "scale", "clip_low", "clip_high")
                },
            )
            if data:
                raise ValueError(f"unexpected keys {sorted(data)}")
        except Exception as err:  # bad UTF-8 or JSON, missing keys, wrong types
            raise ZooError(
                f"RuleFit: the checkpoint's fitted model is not a {RULEFIT_FORMAT} JSON state ({err!r})"
            ) from None
        n = len(state.columns)
        bad = [c for r in state.rules for c, op, _ in r.conditions if not 0 <= c < n or op not in ("<=", ">")]
        sizes = {len(state.linear), len(state.scale), len(state.clip_low), len(state.clip_high)}
        if bad or not sizes <= {0, n} or len(sizes) != 1:
            raise ZooError(f"RuleFit: the checkpoint's fitted model is inconsistent with its {n} columns")
        return state


class RuleFit(TreeModel):
    """RuleFit (Friedman & Popescu 2008) by imodels: boosted-tree rules + L1 logistic regression."""

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        n_estimators: int = 100,
        tree_size: int = 4,
        max_rules: int = 30,
        include_linear: bool = True,
        alpha: float | None = None,
        cv: bool = True,
    ) -> None:
        super().__init__(feature_spec=feature_spec)
        if n_estimators < 1:
            raise ValueError(f"n_estimators={n_estimators}, expected a positive integer")
        if tree_size < 2:
            raise ValueError(f"tree_size={tree_size}, expected an integer >= 2 (leaves per tree)")
        if max_rules < 1:
            raise ValueError(f"max_rules={max_rules}, expected a positive integer")
        if alpha is not None and alpha <= 0:
            raise ValueError(f"alpha={alpha}, expected a positive number or null (chosen by max_rules)")
        self.n_estimators = n_estimators
        self.tree_size = tree_size
        self.max_rules = max_rules
        self.include_linear = include_linear
        self.alpha = alpha
        self.cv = cv
        self.columns = design_columns(self.feature_spec)
        self.estimator: Any = None  # imodels' fitted object, for inspection (not in checkpoints)

    def column_names(self, indicated: Sequence[str]) -> tuple[str, ...]:
        """The design matrix's column names (imodels' feature names): `design_columns`, then
        "<field> is missing" for each field of `indicated`."""
        return (*(column_name(c) for c in self.columns), *(f"{name} is missing" for name in indicated))

    def matrix(self, arrays: Arrays, medians: Sequence[float], indicated: Sequence[str]) -> np.ndarray:
        """float64[N, p]: `design_matrix` with missing numerics set to `medians`, then one 0/1
        "is missing" column per field of `indicated`."""
        spec = self.feature_spec
        n = len(arrays["y"])
        base = design_matrix(spec, arrays, self.columns).astype(np.float64).reshape(n, len(self.columns))
        raw = (
            np.asarray(arrays["x_raw"], dtype=np.float64).reshape(n, len(spec.raw_numeric))
            if spec.raw_numeric
            else np.zeros((n, 0))
        )
        position = {f.name: j for j, f in enumerate(spec.raw_numeric)}
        missing = np.isnan(raw)
        for j in range(len(spec.raw_numeric)):  # the numerics are design_matrix's first columns
            base[missing[:, j], j] = medians[j]
        flags = [missing[:, position[name]].astype(np.float64) for name in indicated]
        return np.hstack([base, np.stack(flags, 1)]) if flags else base

    def fit_model(self, train: Arrays, val: Arrays) -> FittedRuleFit:
        """Fit imodels' RuleFitClassifier on the training split (validation unused: imodels picks
        the penalty by `max_rules`, `cv` or `alpha`) and keep its state."""
        from imodels import RuleFitClassifier

        SklearnTreeModel.check_labels(train["y"])
        spec = self.feature_spec
        raw = np.asarray(train["x_raw"], dtype=np.float64).reshape(len(train["y"]), len(spec.raw_numeric))
        # CHOICE: missing numerics take the training median (imodels rejects NaN) and a field with
        # missing training values gets an "is missing" 0/1 column, so missingness stays a condition.
        # A field without any training value takes 0.
        observed = [raw[~np.isnan(raw[:, j]), j] for j in range(raw.shape[1])]
        medians = [float(np.median(v)) if len(v) else 0.0 for v in observed]
        indicated = [f.name for j, f in enumerate(spec.raw_numeric) if np.isnan(raw[:, j]).any()]
        names = self.column_names(indicated)
        estimator = RuleFitClassifier(
            n_estimators=self.n_estimators,
            tree_size=self.tree_size,
            max_rules=self.max_rules,
            include_linear=self.include_linear,
            alpha=self.alpha,
            cv=self.cv,
            random_state=self.seed,
        )
        with warnings.catch_warnings():  # imodels passes `penalty`, which scikit-learn 1.8 deprecates
            warnings.filterwarnings("ignore", r".*'penalty' was deprecated.*", FutureWarning)
            warnings.filterwarnings("ignore", r"Inconsistent values: penalty=l1.*", UserWarning)
            estimator.fit(self.matrix(train, medians, indicated), train["y"].astype(int), feature_names=names)
        self.estimator = estimator
        return FittedRuleFit.from_estimator(estimator, names, medians, indicated)

    def fit_description(self) -> str:
        state: FittedRuleFit = self.fitted
        if self.alpha is not None:
            penalty = f"alpha {self.alpha}"
        elif self.cv:
            penalty = f"chosen by 5-fold CV within {self.max_rules} rules"
        else:
            penalty = f"the largest within {self.max_rules} rules"
        linear = sum(1 for b in state.linear if b != 0)
        return (
            f"imodels RuleFit: rules from {self.n_estimators} boosted trees of about {self.tree_size} "
            f"leaves, L1 logistic regression (penalty {penalty}) keeps {len(state.rules)} rules and "
            f"{linear} linear terms; no early stopping, the validation split is unused"
        )

    def predict_logit(self, arrays: Arrays) -> np.ndarray:
        state: FittedRuleFit = self.fitted
        # NOTE: the logistic regression's own log-odds. imodels' predict_proba returns
        # softmax([1 - F, F]) = sigmoid(2F - 1), the same ranking but not F's probability.
        return state.logit(self.matrix(arrays, state.medians, state.indicated))

    def dump(self) -> bytes:
        # CHOICE: not skops: imodels' rules keep dicts keyed by tuples, which skops cannot write;
        # and not pickle. The state is plain JSON, read back without running stored code.
        return self.fitted.to_json()

    def load(self, blob: bytes) -> FittedRuleFit:
        state = FittedRuleFit.from_json(blob)
        if state.columns != self.column_names(state.indicated):
            raise ZooError(
                f"RuleFit: the checkpoint's fitted model reads columns {list(state.columns)}, expected "
                f"{list(self.column_names(state.indicated))} for this feature spec"
            )
        return state

    # --- rules ------------------------------------------------------------------------------

    def column_term(self, column: int, op: str, threshold: float) -> Term | None:
        """One condition of the design matrix as a term on the raw data (None: no condition).

        A numeric column holds the training median where the value is missing, so `x <= t` also
        admits missing values exactly when the median is <= t."""
        state: FittedRuleFit = self.fitted

        def holds(value: float) -> bool:
            return value <= threshold if op == "<=" else value > threshold

        n_design = len(self.columns)
        if column >= n_design:  # "<field> is missing": 1 when missing
            field = state.indicated[column - n_design]
            is_missing = Term(field, low=INF, high=INF, missing=True)
            return binary_term([holds(0.0), holds(1.0)], is_missing, Term(field))
        found = self.columns[column]
        if found.label is None:
            median = state.medians[[f.name for f in self.feature_spec.raw_numeric].index(found.field)]
            if op == "<=":
                return Term(found.field, high=threshold, missing=holds(median))
            return Term(found.field, low=threshold, missing=holds(median))
        label = frozenset({found.label})
        return binary_term(
            [holds(0.0), holds(1.0)], Term(found.field, include=label), Term(found.field, exclude=label)
        )

    def rules(self) -> list[Rule | None]:
        """Each fitted rule as a canonical rule on the raw data (None if no row can satisfy it)."""
        out = []
        for found in self.fitted.rules:
            terms = [self.column_term(*condition) for condition in found.conditions]
            out.append(rule(t for t in terms if t is not None))
        return out

    def rule_summary(self) -> dict[str, float]:
        """n_rules (rules with a non-zero coefficient), their mean length (fields per rule), and
        n_linear (linear terms that move the log-odds)."""
        rules = self.rules()
        lengths = [r.length for r in rules if r is not None]
        return {
            "n_rules": len(rules),
            "mean_length": float(np.mean(lengths)) if lengths else 0.0,
            "n_linear": len(self.linear_terms()),
        }

    def split_summary(self, loader: Any) -> dict[str, float]:
        """Figures for metrics.json, named as attention_rules names them: n_rules, rule_length (mean
        fields per rule), rule_coverage (share of the split's rows satisfying at least one rule)."""
        state: FittedRuleFit = self.fitted
        arrays = gather(loader)
        covered = state.covered(self.matrix(arrays, state.medians, state.indicated))
        summary = self.rule_summary()
        return {
            "n_rules": float(summary["n_rules"]),
            "rule_length": summary["mean_length"],
            "rule_coverage": float(covered.any(axis=1).mean()) if len(covered) else 0.0,
        }

    def rules_table(self, arrays: Arrays) -> pd.DataFrame:
        """The rules with points (their coefficients), support, bad rate and lift on `arrays`,
        most important first (|coef| x sqrt(s (1 - s)), Friedman & Popescu's importance)."""
        state: FittedRuleFit = self.fitted
        covered = state.covered(self.matrix(arrays, state.medians, state.indicated))
        table = rule_table(self.rules(), np.array([r.coef for r in state.rules]), covered, arrays["y"])
        importance = table["points"].abs() * np.sqrt(table["support"] * (1 - table["support"]))
        return table.iloc[np.argsort(-importance.to_numpy(), kind="stable")].reset_index(drop=True)

    def linear_terms(self) -> pd.DataFrame:
        """The linear terms that move the log-odds: the column, its log-odds per unit (for a 0/1
        column: when it holds) and the training range it is clipped to."""
        state: FittedRuleFit = self.fitted
        names = ["column", "points_per_unit", "clip_low", "clip_high"]
        rows = [
            (name, coef * scale, low, high)
            for name, coef, scale, low, high in zip(
                state.columns, state.linear, state.scale, state.clip_low, state.clip_high, strict=True
            )
            if coef != 0 and low < high  # clipped to one value (a rare 0/1 column): a constant
        ]
        return pd.DataFrame(rows, columns=names)

    def linear_lines(self) -> list[str]:
        """The linear terms in words, for rules.md."""
        binary = len(self.feature_spec.raw_numeric)  # design columns past the numerics are 0/1
        names = self.fitted.columns
        lines = []
        for term in self.linear_terms().itertuples():
            if names.index(term.column) >= binary:
                lines.append(f"- {term.column}: {term.points_per_unit:+.4g} when it holds")
            else:
                lines.append(
                    f"- {term.column}: {term.points_per_unit:+.4g} per unit, the value clipped to "
                    f"[{term.clip_low:.6g}, {term.clip_high:.6g}]"
                )
        return lines

    def write_artifacts(self, run_dir: Path, data: Any) -> None:
        """rules.md and rules.csv: the rules with support, bad rate and lift on the training rows;
        rules.md also lists the non-zero linear terms."""
        if self.fitted is None:
            return
        train = gather(data.loader("train"))
        lines = [
            f"{len(self.fitted.rules)} rules; points are log-odds of default added when a row "
            f"satisfies the rule (intercept {self.fitted.intercept:+.4g}); support, bad rate and lift "
            "on the training rows."
        ]
        linear = self.linear_lines()
        if linear:
            lines += ["", "Linear terms (log-odds of default):", "", *linear]
        write_rules(run_dir, self.rules_table(train), title="RuleFit rules", preamble="\n".join(lines))


# --- CART -------------------------------------------------------------------------------------


class CART(SklearnTreeModel):
    """A depth-4 CART tree on raw numerics and category-label columns; each leaf is one rule."""

    trusted_types: ClassVar[tuple[str, ...]] = ("sklearn.tree._tree.Tree",)

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        max_depth: int = 4,
        min_samples_leaf: int = 20,
        class_weight: str | None = None,
        ccp_alpha: float = 0.0,
        leaf_smoothing: float = 20.0,
    ) -> None:
        super().__init__(feature_spec=feature_spec)
        if max_depth < 1:
            raise ValueError(f"max_depth={max_depth}, expected a positive integer")
        if min_samples_leaf < 1:
            raise ValueError(f"min_samples_leaf={min_samples_leaf}, expected a positive integer")
        if class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight={class_weight!r}, expected null or 'balanced'")
        if ccp_alpha < 0:
            raise ValueError(f"ccp_alpha={ccp_alpha}, expected a number >= 0")
        if leaf_smoothing < 0:
            raise ValueError(f"leaf_smoothing={leaf_smoothing}, expected a number >= 0")
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.class_weight = class_weight
        self.ccp_alpha = ccp_alpha
        self.leaf_smoothing = leaf_smoothing
        self.columns = design_columns(self.feature_spec)

    @staticmethod
    def estimator_class() -> type:
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier

    def features(self, arrays: Arrays) -> np.ndarray:
        # CHOICE: the rule extractor's design matrix: raw numerics with NaN (scikit-learn sends
        # missing values to the better side of each split, so a term may read "x <= t or missing")
        # and one 0/1 column per category label, MISSING included; an unseen label sets none.
        return design_matrix(self.feature_spec, arrays, self.columns)

    def fit_model(self, train: Arrays, val: Arrays) -> Any:
        """Fit on the training split; depth is fixed, so validation is unused."""
        self.check_labels(train["y"])
        tree = self.estimator_class()(
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            class_weight=self.class_weight,
            ccp_alpha=self.ccp_alpha,
            random_state=self.seed,
        )
        return tree.fit(self.features(train), train["y"])

    def fit_description(self) -> str:
        tree = self.fitted
        return (
            f"one CART tree of depth {tree.get_depth()} (max_depth {self.max_depth}) with "
            f"{tree.get_n_leaves()} leaves, one rule each; the validation split is unused"
        )

    def leaf_points(self) -> np.ndarray:
        """float64[n_nodes]: each node's log-odds log(p / (1 - p)), p its training bad rate shrunk
        toward the root's p0 as `dt` does, (n p + m p0) / (n + m) with m = `leaf_smoothing` and n the
        node's training rows (both class-weighted if `class_weight`), clipped as every tree logit is."""
        # CHOICE: smoothed leaves. A pure leaf's raw rate 0 or 1 gives points of -13.8 or +13.8
        # (the logit clip), which no analyst should read and which wreck held-out log-loss.
        tree = self.fitted
        column = int(np.flatnonzero(tree.classes_ == 1)[0])
        value = tree.tree_.value[:, 0, :]
        share = value[:, column] / value.sum(axis=1)
        rows = tree.tree_.weighted_n_node_samples
        return logit_of((rows * share + self.leaf_smoothing * share[0]) / (rows + self.leaf_smoothing))

    def predict_logit(self, arrays: Arrays) -> np.ndarray:
        return self.leaf_points()[self.fitted.apply(self.features(arrays))]

    def leaves(self) -> list[tuple[int, Rule]]:
        """(node id, rule) of every leaf, in `forest_rules`' order (depth first, left first)."""
        tree = self.fitted.tree_
        nodes, stack = [], [0]
        while stack:
            node = stack.pop()
            if tree.children_left[node] == -1:
                nodes.append(node)
            else:
                stack += [int(tree.children_right[node]), int(tree.children_left[node])]
        if nodes == [0]:  # no split: the root is the one leaf, every row's rule
            return [(0, Rule(()))]
        rules = forest_rules(self.fitted, self.columns, leaves_only=True)
        if len(rules) != len(nodes):  # a leaf holds training rows, so its path is satisfiable
            raise RuntimeError(f"CART: {len(rules)} leaf rules for {len(nodes)} leaves")
        return list(zip(nodes, rules, strict=True))

    def rule_summary(self) -> dict[str, float]:
        """n_rules (leaves) and their mean length (fields per rule)."""
        lengths = [found.length for _, found in self.leaves()]
        return {"n_rules": len(lengths), "mean_length": float(np.mean(lengths))}

    def split_summary(self, loader: Any) -> dict[str, float]:
        """Figures for metrics.json, named as attention_rules names them: n_rules (leaves),
        rule_length (mean fields per rule), rule_coverage (1: the leaves cover every row)."""
        summary = self.rule_summary()
        return {
            "n_rules": float(summary["n_rules"]),
            "rule_length": summary["mean_length"],
            "rule_coverage": 1.0,
        }

    def rules_table(self, arrays: Arrays) -> pd.DataFrame:
        """One row per leaf, riskiest first: its rule, points (the leaf's log-odds less the
        root's, `leaf_points`), and support, bad rate and lift on `arrays`."""
        # CHOICE: points relative to the root (the training bad rate), so their sign says whether
        # the leaf is riskier than average (as lift does); absolute log-odds are all negative
        # wherever defaults are the minority, and every leaf would read "risk down".
        leaves = self.leaves()
        nodes = np.array([node for node, _ in leaves])
        covered = self.fitted.apply(self.features(arrays))[:, None] == nodes[None, :]
        points = self.leaf_points()
        table = rule_table([r for _, r in leaves], points[nodes] - points[0], covered, arrays["y"])
        return table.sort_values("points", ascending=False, kind="stable").reset_index(drop=True)

    def write_artifacts(self, run_dir: Path, data: Any) -> None:
        """rules.md and rules.csv: every leaf as a rule, with support, bad rate, lift on the
        training rows."""
        if self.fitted is None:
            return
        preamble = (
            "Each row is one leaf of the tree (its root-to-leaf path); every row satisfies exactly one "
            "rule. A row's log-odds of default are the base "
            f"{self.leaf_points()[0]:+.4g} (the training bad rate's) plus its rule's points. Support, "
            "bad rate and lift on the training rows."
        )
        table = self.rules_table(gather(data.loader("train")))
        write_rules(run_dir, table, title="CART rules", preamble=preamble)
