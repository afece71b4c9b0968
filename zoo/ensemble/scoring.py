"""Scoring with an ensemble run: every member scores through its own saved run (zoo.predict's
load_run and score_frame), after its digests are checked against the ones the ensemble recorded;
the members' probabilities are combined by the fitted weights, then the ensemble's calibration."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo.calibration import calibrator_from_dict
from zoo.ensemble.members import ENSEMBLE_FILE
from zoo.ensemble.select import combine
from zoo.errors import ZooError
from zoo.manifest import MANIFEST_FILE, read_json, read_manifest, read_yaml, sha256_file, verify_run
from zoo.outputs import CALIBRATION_FILE, CONFIG_FILE, METRICS_FILE
from zoo.predict import Run, load_run, score_frame


@dataclass
class EnsembleRun(Run):
    """A finished ensemble run, loaded for scoring: its members' runs and what combines them.
    `preprocessor` is the first member's (for the columns a file must have); `model` is None."""

    method: str = "greedy"
    members: list[Run] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    intercept: float = 0.0

    def score_members(
        self, frame: pd.DataFrame, *, batch_size: int = 8192, reasons: int = 0
    ) -> tuple[np.ndarray, dict[str, int], pd.DataFrame | None]:
        """What zoo.predict.score_frame returns, for the ensemble: probabilities, unseen categories
        per field (the most any member saw), and with `reasons=K` the K reason codes."""
        probs: list[np.ndarray] = []
        unseen: dict[str, int] = {}
        for member in self.members:
            prob, seen, _ = score_frame(member, frame, batch_size=batch_size)
            probs.append(prob.astype(np.float64))
            for name, count in seen.items():
                unseen[name] = max(unseen.get(name, 0), count)
        matrix = np.stack(probs, axis=1) if probs else np.zeros((len(frame), 0))
        out = combine(self.method, self.weights, matrix, self.intercept)
        if self.calibrator is not None:
            out = self.calibrator.transform(out)
        columns = reason_columns(self, frame, reasons) if reasons else None
        return out.astype(np.float32), unseen, columns


def load_ensemble(run_dir: Path, *, device: str = "cpu") -> EnsembleRun:
    """Load an ensemble run and each member's run; a member that is missing, or whose run changed
    since the ensemble was built, is a one-line ZooError naming it."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    record = read_json(run_dir, ENSEMBLE_FILE, manifest)
    config = read_yaml(run_dir, CONFIG_FILE, manifest)
    metrics = read_json(run_dir, METRICS_FILE, manifest)
    calibrator = None
    if metrics.get("calibration"):
        calibrator = calibrator_from_dict(read_json(run_dir, CALIBRATION_FILE, manifest))
    members = [_load_member(run_dir, entry, device) for entry in record.get("members") or []]
    if not members:
        raise ZooError(f"ensemble {str(run_dir)!r} lists no members in {ENSEMBLE_FILE}")
    first = members[0]
    return EnsembleRun(
        run_dir=run_dir,
        config=config,
        preprocessor=first.preprocessor,
        schema=first.schema,
        model=None,
        threshold=float(metrics["threshold"]),
        calibrator=calibrator,
        method=str(record["method"]),
        members=members,
        weights=[float(entry["weight"]) for entry in record["members"]],
        intercept=float(record.get("intercept", 0.0)),
    )


def _load_member(run_dir: Path, entry: dict[str, Any], device: str) -> Run:
    name = entry.get("name")
    path = (run_dir / str(entry.get("run_dir"))).resolve()
    what = f"ensemble member {name!r} ({path})"
    if not (path / MANIFEST_FILE).is_file():
        raise ZooError(f"{what} is missing: no sealed run there; the ensemble cannot score without it")
    if sha256_file(path / MANIFEST_FILE) != entry.get("manifest_sha256"):
        raise ZooError(f"{what} changed: its manifest is not the one the ensemble was built on")
    try:
        verify_run(path)
    except ZooError as err:
        raise ZooError(f"{what} changed: {err}") from None
    return load_run(path, device=device)


def reason_columns(run: EnsembleRun, frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """reason_1..reason_k from the members' own per-field log-odds contributions, weighted by the
    ensemble's weights. Exact for the stack (its logit is linear in the members' logits); for the
    greedy mean of probabilities, a weighted mean of the members' log-odds contributions."""
    from zoo.data.validate import check_features
    from zoo.explain import contributions, explain_settings, read_reference, reason_codes
    from zoo.explain.contributions import Contributions

    total: dict[str, np.ndarray] = {}
    methods, crosses = [], {}
    for member, weight in zip(run.members, run.weights, strict=True):
        roles = {c: "categorical" for c in member.preprocessor.categorical}
        roles.update({c: "numeric" for c in member.preprocessor.numeric})
        features = check_features(frame, roles, allow_empty=True)
        raw = bool(getattr(member.model, "uses_raw_values", False))
        arrays = member.preprocessor.transform(features, raw=raw)
        settings = explain_settings(member.config)
        found = contributions(
            member.model, arrays, read_reference(member.run_dir), n_reference=settings["occlusion_rows"]
        )
        for f, name in enumerate(found.fields):
            total[name] = total.get(name, 0.0) + weight * found.values[:, f]
        methods.append(found.method)
        crosses.update({c.name: c for c in member.model.feature_spec.crosses})
    names = list(total)
    values = (
        np.stack([np.broadcast_to(total[n], (len(frame),)) for n in names], 1)
        if names
        else np.zeros((len(frame), 0))
    )
    method = (
        f"{run.method} ensemble: members' log-odds contributions ({', '.join(sorted(set(methods)))}) weighted"
    )
    spec = replace(run.members[0].model.feature_spec, crosses=tuple(crosses.values()))
    units = dict(run.config.dataset.get("units") or {})
    return reason_codes(Contributions(values, names, method), frame, spec, k, units=units)
