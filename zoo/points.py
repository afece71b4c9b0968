"""Scores in points, as credit scorecards state them (Siddiqi 2012; optbinning's `pdo_odds` scaling):
score = offset + factor * ln(odds of good), factor = pdo / ln 2, offset = base_points - factor *
ln(base_odds), so `base_points` sits at good:bad odds `base_odds`, every `pdo` points double the
odds, and a higher score is safer.

Models whose logit is a sum of per-field terms (the `logit_terms` hook: lr, lr_cross, the wide part
of wide_deep, attention_rules) also get a scorecard table in points, attribute -> points beside
the base points, and reason codes ordered by points lost against each field's best attribute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo.errors import ZooError
from zoo.outputs import write_csv, write_json, write_text

SCORE_FILE = "score.json"
SCORECARD_CSV = "scorecard.csv"
SCORECARD_MD = "scorecard.md"
#: The `score:` block of conf/config.yaml.
DEFAULTS = {"base_points": 600.0, "base_odds": 50.0, "pdo": 20.0}
#: Probabilities are kept in [PROB_EPS, 1 - PROB_EPS] before taking the odds: a float32
#: probability of exactly 0 or 1 (a saturated sigmoid) scores ~ +/-600 points from the offset.
PROB_EPS = 1e-9
#: `zoo predict --reasons-by points`: how its reason codes are measured (`reason_method`).
POINTS_LOST_METHOD = "points lost vs the field's best attribute among training rows"
BASE_ROW = "(base points)"


@dataclass(frozen=True)
class ScoreScaling:
    """Points-to-double-the-odds scaling: `base_points` at good:bad odds `base_odds`, `pdo`."""

    base_points: float = DEFAULTS["base_points"]
    base_odds: float = DEFAULTS["base_odds"]
    pdo: float = DEFAULTS["pdo"]

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2)

    @property
    def offset(self) -> float:
        return self.base_points - self.factor * math.log(self.base_odds)

    def from_logit(self, logit: Any) -> np.ndarray:
        """Points of a default logit (log-odds of bad): offset - factor * logit."""
        return self.offset - self.factor * np.asarray(logit, dtype=np.float64)

    def from_prob(self, prob: Any) -> np.ndarray:
        """Points of a probability of default: offset + factor * ln((1 - p) / p); NaN stays NaN."""
        p = np.clip(np.asarray(prob, dtype=np.float64), PROB_EPS, 1 - PROB_EPS)
        return self.offset + self.factor * (np.log1p(-p) - np.log(p))

    def to_dict(self) -> dict[str, float]:
        return {
            "base_points": self.base_points,
            "base_odds": self.base_odds,
            "pdo": self.pdo,
            "factor": self.factor,
            "offset": self.offset,
        }


def scaling_from(block: Any, where: str = "score") -> ScoreScaling:
    """A checked scaling from a `score:` mapping (missing keys take DEFAULTS); one-line ZooError."""
    given = dict(block or {})
    unknown = [k for k in given if k not in DEFAULTS]
    if unknown:
        raise ZooError(f"{where}.{unknown[0]} is not a setting; expected one of: {', '.join(DEFAULTS)}")
    values = {**DEFAULTS, **given}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ZooError(f"{where}.{key}={value!r}, expected a finite number")
    for key in ("base_odds", "pdo"):
        if values[key] <= 0:
            raise ZooError(f"{where}.{key}={values[key]!r}, expected a number > 0")
    return ScoreScaling(**{k: float(v) for k, v in values.items()})


def check_score_settings(cfg: Any) -> None:
    """The run config's `score:` block is a usable scaling (called before training starts)."""
    from omegaconf import OmegaConf

    block = cfg.get("score")
    scaling_from(OmegaConf.to_container(block) if OmegaConf.is_config(block) else block)


def read_scaling(
    run_dir: Path, manifest: dict[str, Any] | None = None, *, config: Any = None
) -> tuple[ScoreScaling, str | None]:
    """The run's saved scaling and None. A run without score.json (trained before scores in points,
    or an ensemble of runs) is scaled by its config's `score:` block when it has one, else by the
    defaults, with a note saying which."""
    from zoo.manifest import read_json, read_manifest

    manifest = manifest if manifest is not None else read_manifest(Path(run_dir))
    if SCORE_FILE not in manifest.get("artifacts", {}):
        block = config.get("score") if config is not None else None
        if block is not None:
            from omegaconf import OmegaConf

            plain = OmegaConf.to_container(block) if OmegaConf.is_config(block) else block
            return scaling_from(
                plain
            ), f"the run has no {SCORE_FILE}: score uses its config.yaml's score: block"
        defaults = ", ".join(f"{k}={v:g}" for k, v in DEFAULTS.items())
        note = f"the run has no {SCORE_FILE} (trained before scores in points): score uses {defaults}"
        return ScoreScaling(), note
    saved = read_json(Path(run_dir), SCORE_FILE, manifest)
    return scaling_from({k: saved.get(k) for k in DEFAULTS}, where=SCORE_FILE), None


# --- additive models: per-attribute points --------------------------------------------------------


@dataclass
class LogitTerms:
    """logit = intercept + sum of `terms` (per field, float64[B]) + `rest` (a non-additive part,
    e.g. the deep part of Wide & Deep; None when the model is additive)."""

    intercept: float
    terms: dict[str, np.ndarray]
    rest: np.ndarray | None = None


@dataclass
class RowPoints:
    """A row's score in points: base + sum of its fields' points (+ rest, the non-additive part)."""

    base: float
    points: pd.DataFrame  # [B, fields]
    rest: np.ndarray | None

    @property
    def score(self) -> np.ndarray:
        total = self.base + self.points.to_numpy().sum(axis=1)
        return total if self.rest is None else total + self.rest


def logit_terms(model: Any, arrays: dict[str, np.ndarray]) -> LogitTerms | None:
    """The model's `logit_terms(arrays)` hook, or None for a model without additive terms."""
    hook = getattr(model, "logit_terms", None)
    return hook(arrays) if callable(hook) else None


def row_points(model: Any, arrays: dict[str, np.ndarray], scaling: ScoreScaling) -> RowPoints | None:
    """Each field's points per row (-factor * its logit term) and the base points
    (offset - factor * intercept); None for a model without the `logit_terms` hook."""
    found = logit_terms(model, arrays)
    if found is None:
        return None
    points = pd.DataFrame(
        {name: -scaling.factor * np.asarray(term, dtype=np.float64) for name, term in found.terms.items()}
    )
    base = scaling.offset - scaling.factor * found.intercept
    rest = None if found.rest is None else -scaling.factor * np.asarray(found.rest, dtype=np.float64)
    return RowPoints(base, points, rest)


def check_additive(model: Any, reference: dict[str, np.ndarray]) -> None:
    """ZooError (one line) unless the model's score is a sum of field points: `--reasons-by points`."""
    found = logit_terms(model, {k: v[:1] for k, v in reference.items()})
    if found is None or found.rest is not None:
        raise ZooError(
            f"--reasons-by points needs an additive model (lr, lr_cross, attention_rules): the score of "
            f"{type(model).__name__} is not a sum of field points; use --reasons-by contribution"
        )


def points_lost(
    model: Any, arrays: dict[str, np.ndarray], reference: dict[str, np.ndarray], scaling: ScoreScaling
) -> Any:
    """Contributions in points lost: per row and field, the best points the field gets among the
    training reference rows minus the row's own (0 at or above it), the adverse-action convention.
    Refused (ZooError) for a model whose score is not a sum of field points."""
    from zoo.explain.contributions import Contributions

    check_additive(model, reference)
    rows = row_points(model, arrays, scaling)
    assert rows is not None
    best = row_points(model, reference, scaling)
    assert best is not None
    ceiling = best.points.max(axis=0).reindex(rows.points.columns).to_numpy()
    lost = np.maximum(ceiling[None, :] - rows.points.to_numpy(), 0.0)
    return Contributions(lost, list(rows.points.columns), POINTS_LOST_METHOD)


# --- the scorecard table ---------------------------------------------------------------------------


def scorecard_table(model: Any, scaling: ScoreScaling) -> pd.DataFrame | None:
    """The model's `scorecard_weights()` table (field, attribute, kind, weight in log-odds of
    default, an `(intercept)` row first) with `points` added: base points for the intercept,
    -factor * weight for the rest. A numeric field's `slope` row is points per unit of its encoded
    value; its `at value` rows are the points at its training quantiles. None without the hook."""
    hook = getattr(model, "scorecard_weights", None)
    if not callable(hook):
        return None
    table = hook().copy()
    intercept = table["kind"] == "intercept"
    table["points"] = -scaling.factor * table["weight"].astype(float) + 0.0  # no -0.0
    table.loc[intercept, "points"] = scaling.offset - scaling.factor * table.loc[intercept, "weight"]
    table.loc[intercept, "field"] = BASE_ROW
    return table.reset_index(drop=True)


def wide_scorecard(wide: pd.DataFrame, spec: Any) -> pd.DataFrame:
    """`scorecard_weights` of a linear (or wide) part from its `wide_weights.csv` table: one row per
    category of a categorical or cross, `numeric_rows` per numeric, grouped by field (fields in the
    order of their largest |weight|), the intercept first."""
    rows: list[tuple[str, str, str, float]] = []
    for record in wide.itertuples(index=False):
        if record.kind == "numeric":
            rows += numeric_rows(spec.field(record.field), float(record.weight))
        else:
            rows.append((str(record.field), str(record.value), str(record.kind), float(record.weight)))
    table = pd.DataFrame(rows, columns=["field", "attribute", "kind", "weight"])
    order = {name: i for i, name in enumerate(dict.fromkeys(table["field"]))}
    rank = table["field"].map(order)
    return table.iloc[np.argsort(rank.to_numpy(), kind="stable")].reset_index(drop=True)


def numeric_rows(field: Any, weight: float, *, n_values: int = 11) -> list[tuple[str, str, str, float]]:
    """Scorecard rows (field, attribute, kind, weight) of a linear numeric term: a flag's one
    attribute, or a field's slope and its term at `n_values` evenly spaced training quantiles."""
    if field.is_indicator:
        attribute = "(missing)" if field.encoding == "indicator" else f"= {field.code:g} (special code)"
        return [(str(field.source or field.name), attribute, "flag", float(weight))]
    rows = [(field.name, f"per unit of encoded value ({field.encoding})", "slope", float(weight))]
    if field.quantiles:
        quantiles = np.asarray(field.quantiles, dtype=np.float64)
        picks = np.unique(quantiles[np.linspace(0, len(quantiles) - 1, n_values).round().astype(int)])
        encoded = field.encode(picks)
        rows += [
            (field.name, f"= {value:.6g}", "at value", float(weight * term))
            for value, term in zip(picks, encoded, strict=True)
        ]
    return rows


def write_score(run_dir: Path, model: Any, cfg: Any) -> ScoreScaling:
    """Write score.json (the run's scaling, read back by `zoo predict`) and, for models with the
    `scorecard_weights` hook, scorecard.csv and scorecard.md in points."""
    from omegaconf import OmegaConf

    block = cfg.get("score")
    scaling = scaling_from(OmegaConf.to_container(block) if OmegaConf.is_config(block) else block)
    run_dir = Path(run_dir)
    write_json(run_dir / SCORE_FILE, {**scaling.to_dict(), "higher": "safer"})
    table = scorecard_table(model, scaling)
    if table is not None:
        write_csv(run_dir / SCORECARD_CSV, table)
        write_text(run_dir / SCORECARD_MD, scorecard_markdown(table, scaling, model))
    return scaling


def scorecard_markdown(table: pd.DataFrame, scaling: ScoreScaling, model: Any) -> str:
    """The scorecard as a Markdown table, points to one decimal (the CSV keeps full precision)."""
    note = getattr(model, "scorecard_note", "")
    lines = [
        "# Scorecard in points",
        "",
        f"{scaling.base_points:g} points at good:bad odds {scaling.base_odds:g}:1, {scaling.pdo:g} points "
        f"double the odds (factor {scaling.factor:.4f}, offset {scaling.offset:.4f}); higher is safer. "
        "A row's score is the base points plus the points of each of its attributes"
        f"{' ' + note if note else ''}.",
    ]
    if (table["kind"] == "slope").any():
        lines.append(
            "A numeric field's points are its `slope` times the row's encoded value (the `at value` rows "
            "show them at training quantiles), plus its `(missing)` flag's points when the value is missing."
        )
    lines += [
        "",
        "| field | attribute | kind | points |",
        "|---|---|---|---|",
    ]
    for row in table.itertuples(index=False):
        cells = [str(row.field), str(row.attribute), str(row.kind), f"{row.points:.1f}"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
