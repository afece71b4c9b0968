"""Building the ensembles of a multirun: per group of runs on one dataset and split, fit the
ensemble on validation predictions only, then write an ordinary, sealed run directory
(metrics.json, predictions.parquet, ensemble.json, config.yaml, a model card, state.json, and
the manifest last)."""

from __future__ import annotations

import contextlib
import itertools
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from zoo.calibration import CALIBRATION_METHODS, fit_calibrator
from zoo.config_targets import plain
from zoo.data.preprocess import library_versions
from zoo.ensemble.members import ENSEMBLE_FILE, Group, Member, read_groups
from zoo.ensemble.select import METHODS, SELECTION_METRICS, bagged_greedy, combine, fit_stack
from zoo.errors import ZooError
from zoo.explain.card import MODEL_CARD_FILE
from zoo.manifest import write_manifest
from zoo.metrics import compute_metrics
from zoo.monitor.reference import write_ensemble_reference as write_monitor_reference
from zoo.outputs import (
    CALIBRATION_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    write_json,
    write_parquet,
    write_text,
)
from zoo.points import write_score
from zoo.run_outputs import predictions_frame, write_reliability
from zoo.run_state import RunDirRefused, check_new_run_dir, held_entries, run_lock, write_state
from zoo.thresholds import choose_threshold

#: Where `zoo ensemble SWEEP_DIR` writes one run directory per group, inside the sweep.
ENSEMBLES_DIR = "ensembles"
#: Ensemble runs are the leaderboard model `ensemble_<method>`.
MODEL_PREFIX = "ensemble_"


@dataclass(frozen=True)
class EnsembleSettings:
    """What `zoo ensemble` and the `ensemble:` config block set (conf/ensemble/*.yaml)."""

    method: str = "greedy"
    size: int = 25
    metric: str = "logloss"
    bags: int = 50
    c: float = 0.01
    calibration: str | None = None
    models: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ZooError(f"ensemble method {self.method!r}, expected one of: {', '.join(METHODS)}")
        if self.metric not in SELECTION_METRICS:
            raise ZooError(
                f"ensemble metric {self.metric!r}, expected one of: {', '.join(SELECTION_METRICS)}"
            )
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ZooError(f"ensemble size {self.size!r}, expected a positive integer")
        if isinstance(self.bags, bool) or not isinstance(self.bags, int) or self.bags < 1:
            raise ZooError(f"ensemble bags {self.bags!r}, expected a positive integer")
        if (
            isinstance(self.c, bool)
            or not isinstance(self.c, int | float)
            or not np.isfinite(self.c)
            or self.c <= 0
        ):
            raise ZooError(f"ensemble c {self.c!r}, expected a positive finite number (the stack's C)")
        if self.calibration is not None and self.calibration not in CALIBRATION_METHODS:
            raise ZooError(
                f"ensemble calibration {self.calibration!r}, expected null or one of: "
                f"{', '.join(CALIBRATION_METHODS)}"
            )

    @classmethod
    def from_config(cls, block: Any) -> EnsembleSettings:
        """From the primary config's `ensemble:` block; an unknown key is one line."""
        given = dict(plain(block) or {})
        known = {"method", "size", "metric", "bags", "c", "calibration", "models"}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ZooError(
                f"ensemble.{unknown[0]} is not a setting; expected one of: {', '.join(sorted(known))}"
            )
        models = given.get("models")
        if isinstance(models, str):
            models = [m.strip() for m in models.split(",") if m.strip()]
        given["models"] = tuple(str(m) for m in models) if models else None
        return cls(**given)


@dataclass
class Built:
    """One ensemble written: where, its group, and what its metrics.json holds."""

    run_dir: Path
    group: Group
    result: dict[str, Any]
    best_member: Member


def build_ensembles(
    sweep_dir: Path | str, settings: EnsembleSettings, out: Path | str | None = None
) -> list[Built]:
    """One ensemble run per group of `sweep_dir`'s sealed runs, written to `out/<group>/`
    (default `sweep_dir/ensembles/`, or `ensembles-2/`, `-3/`... when an earlier or a concurrent
    `zoo ensemble` holds a group's folder there). Nothing is written when a group is refused."""
    sweep_dir = Path(sweep_dir)
    groups = read_groups(sweep_dir, settings.models)
    ready = []
    for group in groups:
        if len(group.members) < 2:
            warnings.warn(
                f"group {group.name}: only {len(group.members)} sealed run ({group.members[0].path}); "
                "no ensemble",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        _threshold_setting(group)  # refuse before anything is written
        ready.append(group)
    if not ready:
        raise ZooError(f"no group of {sweep_dir} has 2 or more sealed runs to ensemble")
    names = [g.name for g in ready]
    with contextlib.ExitStack() as locks:  # every group's run lock, from the choice to the seal
        if out is None:
            out = claim_folder(sweep_dir, names, locks)
        else:
            out = Path(out)
            for name in names:
                check_new_run_dir(out / name, where="ensemble run directory")
            for name in names:
                locks.enter_context(run_lock(out / name))
                check_new_run_dir(out / name, where="ensemble run directory")
        return [write_ensemble(group, settings, out / group.name) for group in ready]


def claim_folder(sweep_dir: Path, names: list[str], locks: contextlib.ExitStack) -> Path:
    """The first of `ensembles/`, `ensembles-2/`, ... under `sweep_dir` whose group folders are
    empty and unlocked, with their run locks taken into `locks`: a second `zoo ensemble` on one
    sweep, run after the first or beside it, writes beside the first, never over it."""
    for k in itertools.count(1):
        out = sweep_dir / (ENSEMBLES_DIR if k == 1 else f"{ENSEMBLES_DIR}-{k}")
        if any(held_entries(out / name) for name in names if (out / name).is_dir()):
            continue
        attempt = contextlib.ExitStack()
        try:
            for name in names:
                attempt.enter_context(run_lock(out / name))
                check_new_run_dir(out / name, where="ensemble run directory")
        except RunDirRefused:
            attempt.close()  # taken by a concurrent build: try the next folder
            continue
        locks.enter_context(attempt)
        return out
    raise AssertionError("unreachable")


def _threshold_setting(group: Group) -> Any:
    """The members' `threshold` setting (a number or 'youden'): the ensemble chooses its own the
    same way, on validation rows; members that disagree are refused."""
    settings = {json_text(plain(m.config.get("threshold", 0.5))) for m in group.members}
    if len(settings) > 1:
        raise ZooError(
            f"group {group.name}: the runs choose their thresholds differently "
            f"({', '.join(sorted(settings))}); ensemble runs that share a threshold setting (--models)"
        )
    return plain(group.members[0].config.get("threshold", 0.5))


def json_text(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True)


def fit_group(group: Group, settings: EnsembleSettings) -> tuple[dict[str, Any], np.ndarray]:
    """What the ensemble fits on the validation rows alone: {members: [(member, weight)], method,
    ...} and its validation probabilities (out of fold for the stack)."""
    y = group.members[0].val["label"].to_numpy().astype(np.int64)
    probs = np.stack([m.val["prob"].to_numpy(dtype=np.float64) for m in group.members], axis=1)
    if settings.method == "greedy":
        all_weights = bagged_greedy(
            probs, y, size=settings.size, metric=settings.metric, bags=settings.bags, seed=_seed(group)
        )
        kept = all_weights > 0
        weights = all_weights[kept].tolist()
        fitted = {
            "members": [
                (m, w, {"count": round(w * settings.size)} if settings.bags == 1 else {})
                for m, w in zip(itertools.compress(group.members, kept), weights, strict=True)
            ],
            "intercept": 0.0,
        }
        val_prob = combine("greedy", weights, probs[:, kept])
    else:
        stack, val_prob = fit_stack(probs, y, seed=_seed(group), c=float(settings.c))
        fitted = {
            "members": [(m, w, {}) for m, w in zip(group.members, stack["coefficients"], strict=True)],
            "intercept": stack["intercept"],
        }
    return fitted, val_prob


def _seed(group: Group) -> int:
    """The seed of the group's resampling (greedy's bootstrap replicates, the stack's folds)."""
    return int(group.split_seed or 0)


def write_ensemble(group: Group, settings: EnsembleSettings, run_dir: Path) -> Built:
    """Fit the group's ensemble on validation predictions and write its run directory, sealed
    (under the run lock that `build_ensembles` holds)."""
    started = time.perf_counter()
    threshold_setting = _threshold_setting(group)
    first = group.members[0]
    write_state(run_dir, "training")
    try:
        fitted, val_prob = fit_group(group, settings)
        chosen = fitted["members"]
        weights = [w for _, w, _ in chosen]
        test_probs = np.stack([m.test["prob"].to_numpy(dtype=np.float64) for m, _, _ in chosen], axis=1)
        method = settings.method
        predictions = {
            "val": {
                "prob": val_prob,
                "y": first.val["label"].to_numpy(),
                "row": first.val["row"].to_numpy(),
            },
            "test": {
                "prob": combine(method, weights, test_probs, fitted["intercept"]),
                "y": first.test["label"].to_numpy(),
                "row": first.test["row"].to_numpy(),
            },
        }
        uncalibrated = None
        if settings.calibration:
            calibrator = fit_calibrator(
                settings.calibration, predictions["val"]["prob"], predictions["val"]["y"]
            )
            uncalibrated = {s: compute_metrics(p["prob"], p["y"]) for s, p in predictions.items()}
            for pred in predictions.values():
                pred["prob"] = calibrator.transform(pred["prob"])
            write_json(run_dir / CALIBRATION_FILE, calibrator.to_dict())
        for pred in predictions.values():
            pred["prob"] = pred["prob"].astype(np.float32)  # as any run writes them, and predict returns
        val = predictions["val"]
        threshold, how = choose_threshold(threshold_setting, val["prob"], val["y"])
        result = _metrics(group, settings, predictions, threshold, how, len(chosen))
        result["fit_seconds"] = round(time.perf_counter() - started, 3)
        if uncalibrated is not None:
            result["uncalibrated"] = uncalibrated
        ids = {s: getattr(first, s)["id"].to_numpy() for s in ("val", "test") if "id" in first.val.columns}
        write_parquet(run_dir / PREDICTIONS_FILE, predictions_frame(predictions, ids))
        write_reliability(run_dir, predictions, title=f"{result['model']} on {group.dataset}, test split")
        write_json(run_dir / ENSEMBLE_FILE, _ensemble_record(group, settings, fitted, run_dir))
        config = _config(group, settings)
        write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(config))
        write_score(run_dir, None, config)  # score.json: the members' points scale
        # Field drift is counted with the preprocessing of the first member, the one that scores.
        write_monitor_reference(run_dir, chosen[0][0].path, predictions["val"]["prob"])
        write_json(run_dir / METRICS_FILE, result)
        best = max(group.members, key=lambda m: _val_score(m, settings.metric))
        write_text(run_dir / MODEL_CARD_FILE, _model_card(group, settings, result, chosen, best))
        write_manifest(run_dir, data=first.data, versions=library_versions())
    except BaseException as err:
        write_state(run_dir, "failed", error=(str(err).strip().splitlines() or [type(err).__name__])[0])
        raise
    write_state(run_dir, "finished")
    return Built(run_dir, group, result, best)


def _val_score(member: Member, metric: str) -> float:
    """A member's validation `metric`, larger is better (for choosing the best single model)."""
    value = float(member.metrics.get("val", {}).get(metric, np.nan))
    value = -value if metric == "logloss" else value
    return value if np.isfinite(value) else -np.inf


def _metrics(
    group: Group,
    settings: EnsembleSettings,
    predictions: dict[str, dict[str, np.ndarray]],
    threshold: float,
    how: str,
    n_members: int,
) -> dict[str, Any]:
    """metrics.json, with the keys any run's has (zoo/run_outputs.py)."""
    first = group.members[0].metrics
    seeds = {m.metrics.get("seed") for m in group.members}
    result: dict[str, Any] = {
        "model": f"{MODEL_PREFIX}{settings.method}",
        "dataset": group.dataset,
        "seed": seeds.pop() if len(seeds) == 1 else group.split_seed,
        "fold": group.fold,
        "split_seed": group.split_seed,
        "experiment": first.get("experiment"),
        "threshold": threshold,
        "threshold_method": how,
        "fit_seconds": 0.0,
        "epochs": None,
        "rows": {
            "train": (first.get("rows") or {}).get("train"),
            **{s: len(p["y"]) for s, p in predictions.items()},
        },
        "n_parameters": n_members + (settings.method == "stack"),
        "warnings": [],
        "ensemble": {"method": settings.method, "members": n_members, "candidates": len(group.members)},
    }
    for split, pred in predictions.items():
        result[split] = compute_metrics(pred["prob"], pred["y"], threshold=threshold)
    result["calibration"] = settings.calibration
    return result


def _ensemble_record(
    group: Group, settings: EnsembleSettings, fitted: dict[str, Any], run_dir: Path
) -> dict[str, Any]:
    """ensemble.json: how it was fitted, and each member with its run directory (relative to the
    ensemble's, so a sweep moves as a whole), the digest of its manifest, and its weight."""
    members = []
    for member, weight, extra in fitted["members"]:
        members.append(
            {
                "name": member.name,
                "model": member.model,
                "run_dir": os.path.relpath(member.path.resolve(), run_dir.resolve()),
                "manifest_sha256": member.manifest_sha256,
                "weight": float(weight),
                **extra,
            }
        )
    record: dict[str, Any] = {
        "format": "credit-zoo.ensemble/1",
        "method": settings.method,
        "combine": "weighted mean of probabilities"
        if settings.method == "greedy"
        else "logistic regression on logits",
        "fitted_on": "validation rows only",
        "group": {"dataset": group.dataset, "split_seed": group.split_seed, "fold": group.fold},
        "candidates": [m.name for m in group.members],
        "members": members,
    }
    if settings.method == "greedy":
        record.update(size=settings.size, metric=settings.metric, bags=settings.bags)
        if settings.bags > 1:
            record["bootstrap_seed"] = _seed(group)
    else:
        record.update(c=float(settings.c), intercept=float(fitted["intercept"]))
    return record


def _config(group: Group, settings: EnsembleSettings) -> Any:
    """config.yaml: the ensemble's settings as a `model:` block, and the members' dataset, data,
    threshold, explain and score settings (what scoring reads)."""
    source = group.members[0].config
    # The members are in ensemble.json, not here: per fold they differ, and the leaderboard would
    # take each fold's ensemble for a variant of its own (zoo/leaderboard/collect.py _variants).
    model: dict[str, Any] = {"name": f"{MODEL_PREFIX}{settings.method}"}
    if settings.method == "greedy":
        model.update(size=settings.size, metric=settings.metric, bags=settings.bags)
    else:
        model["c"] = float(settings.c)
    return OmegaConf.create(
        {
            "model": model,
            "dataset": plain(source.get("dataset")),
            "data": plain(source.get("data")),
            "seed": plain(source.get("seed")),
            "threshold": _threshold_setting(group),
            "calibration": settings.calibration,
            "explain": plain(source.get("explain")),
            **({"score": plain(source.score)} if source.get("score") is not None else {}),  # points scale
        }
    )


def _greedy_text(settings: EnsembleSettings) -> str:
    """How a greedy ensemble was fitted, in a clause of the model card."""
    steps = (
        f"greedy ensemble selection with replacement (Caruana et al. 2004), {settings.size} steps on "
        f"validation {settings.metric}"
    )
    if settings.bags == 1:
        return f"{steps}; probabilities averaged with weights count/{settings.size}"
    return (
        f"{steps}, on each of {settings.bags} stratified bootstrap replicates of the validation rows; "
        f"probabilities averaged with weights the mean over replicates of count/{settings.size}"
    )


def _model_card(
    group: Group,
    settings: EnsembleSettings,
    result: dict[str, Any],
    chosen: Sequence[tuple[Member, float, Any]],
    best: Member,
) -> str:
    """A short model card: what the ensemble is, its members and weights, val/test figures."""
    how = (
        _greedy_text(settings)
        if settings.method == "greedy"
        else f"logistic regression (C={settings.c:g}) on the members' logits, cross-fitted on the "
        "validation rows (validation figures are out of fold)"
    )
    lines = [
        f"# {result['model']} on {group.dataset}",
        "",
        f"An ensemble of {len(chosen)} of the {len(group.members)} runs of split seed {group.split_seed}"
        + ("" if group.fold is None else f", fold {group.fold}")
        + f": {how}. Fitted on validation predictions only; the test split was not read to fit it.",
        "",
        "| member | model | weight |",
        "|---|---|---|",
        *[f"| {m.name} | {m.model} | {w:.4f} |" for m, w, _ in chosen],
        "",
        "| | val AUC | test AUC | test Brier |",
        "|---|---|---|---|",
        f"| ensemble | {result['val']['auc']:.4f} | {result['test']['auc']:.4f} | "
        f"{result['test']['brier']:.4f} |",
        f"| best single run on validation ({best.model}) | {best.metrics['val']['auc']:.4f} | "
        f"{best.metrics['test']['auc']:.4f} | {best.metrics['test']['brier']:.4f} |",
        "",
        f"Threshold {result['threshold']:.4f} ({result['threshold_method']}, on validation rows)"
        + (
            f"; {settings.calibration} calibration fitted on validation rows."
            if settings.calibration
            else "."
        ),
        "",
        "Validation figures are optimistic: the weights were chosen on those rows.",
    ]
    return "\n".join(lines) + "\n"
