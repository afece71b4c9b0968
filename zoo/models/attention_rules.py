"""Attention-weighted rule extraction ("Interpretable Credit Risk Assessment Model: Rule
Extraction Approach Based on Attention Mechanism", Computer Science 52(10), 2025).

Only the abstract is public; this is the reconstruction of docs/models/attention_rules.md:
  1. a shallow tree ensemble (CatBoost depth 3, ~200 trees; or a random forest) on the training rows;
  2. every root-to-node path becomes a readable rule on raw values and category labels,
     canonicalised, snapped to a training-quantile grid, deduplicated and filtered;
  3. the rules are encoded as a binary matrix R (rows x rules), in bulk on the device;
  4. an attention network over each row's satisfied rules gives every rule a global weight;
  5. steps 1-4 repeat on B bootstrap resamples: a rule's stability is the share of runs in
     which it ranks in the top 2 K_max;
  6. a subset is selected in O(n) (zoo.rules.select) under length, support, lift, overlap and
     attention-mass constraints, and its size chosen by the objective
     J(S) = AUC_val(S) - lambda |S| - mu mean length + nu mean stability;
  7. the final scorer is an L2 logistic regression on the selected rules: a points table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from zoo.data.spec import FeatureSpec
from zoo.models.tree import Arrays, TreeModel, gather
from zoo.rules import extract
from zoo.rules.attention import AttentionFit, fit_attention
from zoo.rules.encode import RuleEncoder
from zoo.rules.report import write_rules
from zoo.rules.select import Constraints, objective, rule_stats, select_rules
from zoo.rules.terms import Rule, rules_from_json, rules_to_json

ENSEMBLES = ("catboost", "rf")
FORMAT_VERSION = 1


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if 0 < y.mean() < 1 else math.nan


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


class AttentionRules(TreeModel):
    """Rules from a tree ensemble, weighted by attention, selected in O(n), scored by an L2
    logistic regression; fitted in one pass like the other tree models."""

    family: ClassVar[str] = "rules"

    def __init__(
        self,
        *,
        feature_spec: FeatureSpec | dict[str, Any],
        ensemble: str = "catboost",
        n_trees: int = 200,
        tree_depth: int = 3,
        ensemble_learning_rate: float = 0.1,
        grid_bins: int = 32,
        max_length: int = 3,
        min_support: float = 0.02,
        d_attention: int = 16,
        context_hidden: int = 64,
        learning_rate: float = 3e-3,
        l1: float = 0.03,
        entropy: float = 1e-3,
        batch_size: int = 256,
        max_epochs: int = 100,
        patience: int = 10,
        n_bootstrap: int = 5,
        stability_power: float = 1.0,
        max_rules: int = 20,
        min_lift: float = 0.1,
        max_overlap: float = 0.7,
        max_attention_mass: float = 0.95,
        size_penalty: float = 0.0005,
        length_penalty: float = 0.002,
        stability_bonus: float = 0.01,
        l2_c: float = 1.0,
        thread_count: int = 1,
    ) -> None:
        super().__init__(feature_spec=feature_spec, learning_rate=learning_rate)
        if ensemble not in ENSEMBLES:
            raise ValueError(f"ensemble={ensemble!r}, expected one of {', '.join(ENSEMBLES)}")
        positive_ints = {
            "n_trees": n_trees,
            "tree_depth": tree_depth,
            "n_bootstrap": n_bootstrap,
            "grid_bins": grid_bins,
            "d_attention": d_attention,
            "context_hidden": context_hidden,
            "batch_size": batch_size,
            "max_epochs": max_epochs,
            "patience": patience,
        }
        for name, value in positive_ints.items():
            if int(value) < 1:
                raise ValueError(f"{name}={value}, expected a positive integer")
        non_negative = {
            "l1": l1,
            "entropy": entropy,
            "stability_power": stability_power,
            "size_penalty": size_penalty,
            "length_penalty": length_penalty,
            "stability_bonus": stability_bonus,
        }
        for name, number in non_negative.items():
            if not number >= 0:
                raise ValueError(f"{name}={number}, expected a number >= 0")
        if not l2_c > 0:
            raise ValueError(f"l2_c={l2_c}, expected a positive number")
        self.ensemble = ensemble
        self.n_trees = n_trees
        self.tree_depth = tree_depth
        self.ensemble_learning_rate = ensemble_learning_rate
        self.grid_bins = grid_bins
        self.max_length = max_length
        self.min_support = min_support
        self.d_attention = d_attention
        self.context_hidden = context_hidden
        self.l1 = l1
        self.entropy = entropy
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.n_bootstrap = n_bootstrap
        self.stability_power = stability_power
        self.constraints = Constraints(
            max_rules=max_rules,
            max_length=max_length,
            min_support=min_support,
            min_lift=min_lift,
            max_overlap=max_overlap,
            max_attention_mass=max_attention_mass,
        )
        self.size_penalty = size_penalty
        self.length_penalty = length_penalty
        self.stability_bonus = stability_bonus
        self.l2_c = l2_c
        self.thread_count = thread_count
        self.encoder: RuleEncoder | None = None

    # --- steps 1-4 for one (re)sample of the training rows ---------------------------------

    def _rules_of(self, train: Arrays, val: Arrays | None, seed: int) -> list[Rule]:
        """Steps 1-2: the ensemble's rules as it states them (`extract.candidates` snaps and filters)."""
        spec = self.feature_spec
        if self.ensemble == "catboost":
            booster = extract.fit_catboost(
                spec,
                train,
                val,
                iterations=self.n_trees,
                depth=self.tree_depth,
                learning_rate=self.ensemble_learning_rate,
                seed=seed,
                thread_count=self.thread_count,
            )
            rules = extract.catboost_rules(booster, spec)
        else:
            forest, columns = extract.fit_forest(
                spec, train, n_estimators=self.n_trees, max_depth=self.tree_depth, seed=seed
            )
            rules = extract.forest_rules(forest, columns)
        return rules

    def _tensors(self, arrays: Arrays, rules_matrix: np.ndarray) -> dict[str, torch.Tensor]:
        return {
            "x_cat": torch.as_tensor(arrays["x_cat"], dtype=torch.long),
            "x_num": torch.as_tensor(arrays["x_num"], dtype=torch.float32),
            "R": torch.as_tensor(rules_matrix, dtype=torch.bool),
            "y": torch.as_tensor(arrays["y"], dtype=torch.float32),
        }

    def _weigh(self, rules: list[Rule], train: Arrays, val: Arrays, seed: int) -> AttentionFit:
        """Steps 3-4: encode `rules` and fit the attention network: the rules' global weights."""
        encoder = RuleEncoder(rules, self.feature_spec)
        fit = fit_attention(
            self._tensors(train, self._encode(encoder, train)),
            self._tensors(val, self._encode(encoder, val)),
            cardinalities=list(self.feature_spec.cardinalities),
            n_numeric=self.feature_spec.n_numeric,
            d_attention=self.d_attention,
            hidden=self.context_hidden,
            learning_rate=self.learning_rate,
            l1=self.l1,
            entropy=self.entropy,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            patience=self.patience,
            seed=seed,
            device=self.device,  # the run's device: the trainer moved this module there
        )
        return fit

    @staticmethod
    def _encode(encoder: RuleEncoder, arrays: Arrays) -> np.ndarray:
        with torch.no_grad():
            x_cat = torch.as_tensor(arrays["x_cat"], dtype=torch.long)
            x_raw = torch.as_tensor(arrays["x_raw"], dtype=torch.float32)
            return encoder(x_cat, x_raw).cpu().numpy()

    # --- the whole method -------------------------------------------------------------------

    def fit_model(self, train: Arrays, val: Arrays) -> dict[str, Any]:
        from sklearn.linear_model import LogisticRegression

        y = train["y"].astype(np.float64)
        seed = self.seed
        grid = extract.quantile_grid(self.feature_spec, train, n_bins=self.grid_bins)
        # Step 1-3 on the full training rows: the candidate pool.
        candidates, coverage = extract.candidates(
            self._rules_of(train, None, seed),
            self.feature_spec,
            train,
            max_length=self.max_length,
            min_support=self.min_support,
            grid=grid,
        )
        if not candidates:
            raise ValueError(
                f"no candidate rule has length <= {self.max_length} and support in "
                f"[{self.min_support}, {1 - self.min_support}]; lower min_support or raise max_length"
            )
        main = self._weigh(candidates, train, val, seed)
        weight = main.weight
        # Step 5: bootstrap reruns; stability = share of runs ranking a rule in the top 2 K_max.
        top = 2 * self.constraints.max_rules
        runs: list[dict[Rule, float]] = [dict(zip(candidates, weight, strict=True))]
        rng = np.random.default_rng(seed)
        for b in range(1, self.n_bootstrap):
            rows = rng.integers(0, len(y), len(y))
            sample = {k: v[rows] for k, v in train.items()}
            pool, _ = extract.candidates(
                self._rules_of(sample, None, seed + b),
                self.feature_spec,
                sample,
                max_length=self.max_length,
                min_support=self.min_support,
                grid=grid,
            )
            run_weight = self._weigh(pool, sample, val, seed + b).weight if pool else np.zeros(0)
            runs.append(dict(zip(pool, run_weight, strict=True)))
        tops = [set(sorted(run, key=run.__getitem__, reverse=True)[:top]) for run in runs]
        stability = np.array([sum(rule in t for t in tops) / len(tops) for rule in candidates])
        # Step 6: O(n) selection, then the size that maximises the objective on validation rows.
        support, bad_rate, lift = rule_stats(coverage, y)
        mass = weight / weight.sum() if weight.sum() > 0 else np.full(len(weight), 1 / len(weight))
        packed = np.packbits(coverage.T, axis=1)
        lengths = np.array([r.length for r in candidates])

        def select(scores: np.ndarray) -> np.ndarray:
            return select_rules(scores, lengths, support, lift, packed, mass, self.constraints)

        order = select(weight * stability**self.stability_power)
        val_matrix = self._encode(RuleEncoder([candidates[i] for i in order], self.feature_spec), val)
        best: tuple[float, int, float] = (-math.inf, 0, math.nan)
        for k in range(1, len(order) + 1):
            scorer = LogisticRegression(C=self.l2_c, max_iter=1000).fit(coverage[:, order[:k]], y)
            auc = _auc(val["y"], scorer.decision_function(val_matrix[:, :k]))
            j = objective(
                auc,
                k,
                float(lengths[order[:k]].mean()),
                float(stability[order[:k]].mean()),
                self.size_penalty,
                self.length_penalty,
                self.stability_bonus,
            )
            if j > best[0]:
                best = (j, k, auc)
        chosen = order[: best[1]]
        # Stability of the selection itself: mean Jaccard of the sets each run would select.
        selected_sets = [{candidates[i] for i in chosen}]
        for run in runs[1:]:
            scores = np.array([run.get(rule, 0.0) for rule in candidates]) * stability**self.stability_power
            selected_sets.append({candidates[i] for i in select(scores)[: best[1]]})
        pairs = [_jaccard(a, b) for i, a in enumerate(selected_sets) for b in selected_sets[i + 1 :]]
        # Step 7: the points table.
        if len(chosen):
            scorer = LogisticRegression(C=self.l2_c, max_iter=1000).fit(coverage[:, chosen], y)
            points, intercept = scorer.coef_[0].tolist(), float(scorer.intercept_[0])
        else:  # no rule met the constraints: the base rate alone
            points, intercept = [], float(math.log(y.mean() / (1 - y.mean())))
        table = pd.DataFrame(
            {
                "rule": [candidates[i].text() for i in chosen],
                "points": points,
                "support": support[chosen],
                "bad_rate": bad_rate[chosen],
                # bad_rate / base rate, as rulefit and cart report it (select's lift is this - 1)
                "lift": lift[chosen] + 1.0,
                "attention_weight": weight[chosen],
                "value": main.value[chosen],
                "stability": stability[chosen],
                "length": lengths[chosen],
            }
        )
        return {
            "version": FORMAT_VERSION,
            "rules": rules_to_json([candidates[i] for i in chosen]),
            "points": points,
            "intercept": intercept,
            "table": table.to_dict(orient="list"),
            "summary": {
                "n_candidates": len(candidates),
                "n_rules": len(chosen),
                "rule_length": float(lengths[chosen].mean()) if len(chosen) else 0.0,
                "rule_stability": float(np.mean(pairs)) if pairs else 1.0,
                "objective": float(best[0]),
                "objective_auc": float(best[2]),
                "attention_epochs": main.epochs,
            },
        }

    def fit_description(self) -> str:
        summary = self.fitted["summary"]
        return (
            f"{self.n_trees} {self.ensemble} trees of depth {self.tree_depth} give "
            f"{summary['n_candidates']} candidate rules; attention trained "
            f"{summary['attention_epochs']} epochs (early stopping on validation log-loss, patience "
            f"{self.patience}); {summary['n_rules']} rules selected on the validation objective "
            f"(AUC {summary['objective_auc']:.4f}), scored by an L2 logistic regression"
        )

    # --- prediction, persistence, outputs ---------------------------------------------------

    def _scorer(self) -> tuple[RuleEncoder, torch.Tensor, float]:
        if self.encoder is None:
            self.encoder = RuleEncoder(rules_from_json(self.fitted["rules"]), self.feature_spec)
        return (
            self.encoder,
            torch.tensor(self.fitted["points"], dtype=torch.float32),
            self.fitted["intercept"],
        )

    def rule_matrix(self, x_cat: torch.Tensor, x_raw: torch.Tensor) -> torch.Tensor:
        """bool[B, n_selected]: which selected rules each row satisfies."""
        encoder, _, _ = self._scorer()
        return encoder.to(x_raw.device)(x_cat, x_raw)

    def predict_logit(self, arrays: Arrays) -> np.ndarray:
        encoder, points, intercept = self._scorer()
        matrix = self._encode(encoder, arrays).astype(np.float32)
        return intercept + matrix @ points.numpy()

    def satisfied_rules(self, arrays: Arrays, top: int = 3) -> list[str]:
        """Per row: the satisfied rules with the largest |points|, e.g. `duration > 24 (+0.81)`.
        For reading a model in Python; `zoo predict --reasons` gives the common reason codes."""
        encoder, points, _ = self._scorer()
        matrix = self._encode(encoder, arrays)
        texts = self.fitted["table"]["rule"]
        out = []
        for row in matrix:
            hits = sorted(np.flatnonzero(row), key=lambda j: -abs(float(points[j])))[:top]
            out.append("; ".join(f"{texts[j]} ({float(points[j]):+.2f})" for j in hits))
        return out

    def split_summary(self, loader: Any) -> dict[str, float]:
        """Rule-set figures for metrics.json: size, mean length, stability, and coverage (share of
        the split's rows that satisfy at least one selected rule)."""
        summary = self.fitted["summary"]
        arrays = gather(loader)
        covered = self._encode(self._scorer()[0], arrays).any(axis=1).mean() if summary["n_rules"] else 0.0
        return {
            "n_rules": float(summary["n_rules"]),
            "rule_length": summary["rule_length"],
            "rule_stability": summary["rule_stability"],
            "rule_coverage": float(covered),
        }

    def dump(self) -> bytes:
        return json.dumps(self.fitted).encode()

    def load(self, blob: bytes) -> dict[str, Any]:
        fitted = json.loads(blob)
        if fitted.get("version") != FORMAT_VERSION:
            raise ValueError(f"rule model format {fitted.get('version')!r}, expected {FORMAT_VERSION}")
        self.encoder = None
        return fitted

    def write_artifacts(self, run_dir: Path, data: Any) -> None:
        """rules.csv and rules.md: the selected rules as a points table."""
        summary = self.fitted["summary"]
        preamble = (
            f"Score = {self.fitted['intercept']:+.3f} + the points of every rule a row satisfies "
            "(log-odds of default; scorecard.md gives them in points). "
            f"{summary['n_rules']} rules selected from "
            f"{summary['n_candidates']} candidates; objective J = {summary['objective']:.4f} "
            f"(validation AUC {summary['objective_auc']:.4f})."
        )
        write_rules(
            run_dir,
            pd.DataFrame(self.fitted["table"]),
            title=f"attention_rules on {data.dataset_name}",
            preamble=preamble,
        )

    # --- explanations (zoo.explain) ---------------------------------------------------------

    def field_contributions(self, arrays: Arrays, reference: Arrays) -> Any:
        """Exact: the points of every satisfied rule, shared equally among the fields it tests,
        so a row's contributions sum to its logit minus the intercept (no rule satisfied)."""
        from zoo.explain.contributions import Contributions

        encoder, points, _ = self._scorer()
        matrix = self._encode(encoder, arrays).astype(np.float64)
        names = [f.name for f in self.feature_spec.categorical] + [
            f.name for f in self.feature_spec.raw_numeric
        ]
        share = np.zeros((len(encoder.rules), len(names)))
        for j, rule in enumerate(encoder.rules):
            for field in rule.fields:
                share[j, names.index(field)] = float(points[j]) / len(rule.fields)
        return Contributions(matrix @ share, names, "rule points vs intercept (shared among a rule's fields)")

    def logit_terms(self, arrays: Arrays) -> Any:
        """logit = intercept + each field's share of its satisfied rules' points (as
        `field_contributions`), exactly: the scorecard in points (zoo.points)."""
        from zoo.points import LogitTerms

        found = self.field_contributions(arrays, arrays)
        terms = {name: found.values[:, j] for j, name in enumerate(found.fields)}
        return LogitTerms(float(self.fitted["intercept"]), terms)

    def scorecard_weights(self) -> pd.DataFrame:
        """One attribute per selected rule (met or not), its points in log-odds, for `scorecard.csv`."""
        encoder, points, intercept = self._scorer()
        rows = [("(intercept)", "", "intercept", float(intercept))]
        rows += [
            (", ".join(rule.fields), rule.text(), "rule", float(points[j]))
            for j, rule in enumerate(encoder.rules)
        ]
        return pd.DataFrame(rows, columns=["field", "attribute", "kind", "weight"])

    #: How scorecard.md qualifies the sum: a row gets the points of the rules it satisfies.
    scorecard_note = "that is, of every rule it satisfies (a rule not met gives 0 points)"

    def native_importance(self, val: Arrays, reference: Arrays) -> pd.DataFrame:
        """Per field: the sum of |points| of the selected rules that test it."""
        encoder, points, _ = self._scorer()
        totals: dict[str, float] = {}
        for j, rule in enumerate(encoder.rules):
            for field in rule.fields:
                totals[field] = totals.get(field, 0.0) + abs(float(points[j]))
        return pd.DataFrame(
            {
                "field": list(totals),
                "method": "sum of |points| of selected rules",
                "importance": list(totals.values()),
            }
        )
