"""Explanations of every run: field importance, partial dependence, per-applicant reason codes
and a model card. Models supply only their native part, through optional hooks:

- `native_importance(val, reference) -> DataFrame(field, method, importance[, std])`
- `field_contributions(arrays, reference) -> Contributions` (exact per-field logit contributions)

Everything else (permutation importance, occlusion, partial dependence) works on any model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.explain.card import MODEL_CARD_FILE, write_model_card
from zoo.explain.contributions import Contributions, contributions, reason_codes
from zoo.explain.fields import Arrays, fields_of, take
from zoo.explain.importance import IMPORTANCE_FILE, PERMUTATION, field_importance, write_importance
from zoo.explain.pdp import partial_dependence, write_partial_dependence
from zoo.explain.reference import REFERENCE_FILE, read_reference, sample_reference, write_reference

__all__ = [
    "IMPORTANCE_FILE",
    "MODEL_CARD_FILE",
    "REFERENCE_FILE",
    "Contributions",
    "contributions",
    "explain_settings",
    "read_reference",
    "reason_codes",
    "write_explanations",
]

#: The `explain:` block of conf/config.yaml, with these defaults where a key is absent.
DEFAULTS = {"permutation_repeats": 5, "top_fields": 6, "reasons": 4, "max_rows": 5000, "occlusion_rows": 8}


def explain_settings(cfg: Any) -> dict[str, int]:
    """The run's explain settings, each a checked positive integer (reasons may be 0)."""
    given = dict((cfg.get("explain") if cfg is not None else None) or {})
    unknown = [k for k in given if k not in DEFAULTS]
    if unknown:
        raise ZooError(f"explain.{unknown[0]} is not a setting; expected one of: {', '.join(DEFAULTS)}")
    out = {**DEFAULTS, **given}
    for key, value in out.items():
        low = 0 if key == "reasons" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ZooError(f"explain.{key}={value!r}, expected an integer >= {low}")
    return out


def _sample(arrays: Arrays, rows: int, seed: int) -> Arrays:
    total = len(arrays["y"])
    if total <= rows:
        return arrays
    keep = np.sort(np.random.default_rng(seed).choice(total, size=rows, replace=False))
    return take(arrays, keep)


def write_explanations(run_dir: Path, model: Any, dm: Any, cfg: Any) -> None:
    """importance.csv/.png, partial_dependence.png, the reference rows and model_card.md.

    Needs metrics.json, predictions.parquet and reliability.csv written first (the card reads them)."""
    settings = explain_settings(cfg)
    seed = int(cfg.get("seed", 0))
    run_dir = Path(run_dir)
    reference = sample_reference(dm.arrays["train"], seed=seed)
    write_reference(run_dir, reference)
    val = _sample(dm.arrays["val"], settings["max_rows"], seed)
    title = f"{cfg.model.name} on {dm.dataset_name}"
    table = field_importance(model, val, reference, repeats=settings["permutation_repeats"], seed=seed)
    write_importance(run_dir, table, title=f"field importance: {title}", top=2 * settings["top_fields"])
    top = table[table["method"] == PERMUTATION]["field"].head(settings["top_fields"]).tolist()
    numeric = {f.name: f for f in fields_of(model.feature_spec) if f.kind == "numeric"}
    curves = {name: partial_dependence(model, val, numeric[name]) for name in top if name in numeric}
    write_partial_dependence(run_dir, curves, title=f"partial dependence: {title} (validation rows)")
    bad_rates = {s: float(np.mean(a["y"])) for s, a in dm.arrays.items() if len(a["y"])}
    from zoo.data.preprocess import library_versions

    write_model_card(run_dir, source=dm.source, bad_rates=bad_rates, versions=library_versions())
