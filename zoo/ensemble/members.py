"""The candidate members of a multirun's ensembles: its sealed runs (read_sweep, each checked with
verify_run), grouped by dataset and split, every run of a group on the same validation rows and
the same data."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo.errors import ZooError
from zoo.manifest import MANIFEST_FILE, read_manifest, read_yaml, sha256_file, verify
from zoo.outputs import CONFIG_FILE, PREDICTIONS_FILE

#: What an ensemble run writes besides the files of any run: its members and weights.
ENSEMBLE_FILE = "ensemble.json"


@dataclass
class Member:
    """One sealed run a group may use: its predictions of the validation and test rows (in row
    order), its config, and the digest of the manifest that seals it."""

    path: Path
    model: str
    metrics: dict[str, Any]
    config: Any
    manifest_sha256: str
    data: dict[str, Any]
    val: pd.DataFrame
    test: pd.DataFrame

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class Group:
    """The runs of one dataset and split: `key` (dataset, split seed, fold) and its folder name."""

    dataset: str
    split_seed: int | None
    fold: int | None
    members: list[Member]

    @property
    def name(self) -> str:
        fold = "" if self.fold is None else f"_fold{self.fold}"
        return f"{self.dataset}_seed{self.split_seed}{fold}"


def read_member(run_dir: Path, metrics: dict[str, Any]) -> Member:
    """A sealed run's predictions and config, each checked against its manifest on reading."""
    manifest = read_manifest(run_dir)
    for name in (PREDICTIONS_FILE, CONFIG_FILE):
        if name not in manifest["artifacts"]:
            raise ZooError(f"its manifest does not list {name}")
    path = verify(run_dir, PREDICTIONS_FILE, manifest)
    frame = pd.read_parquet(path, columns=None)
    split = frame["split"].astype(str)
    val = frame[split == "val"].sort_values("row", kind="stable").reset_index(drop=True)
    test = frame[split == "test"].sort_values("row", kind="stable").reset_index(drop=True)
    return Member(
        path=run_dir,
        model=str(metrics["model"]),
        metrics=metrics,
        config=read_yaml(run_dir, CONFIG_FILE, manifest),
        manifest_sha256=sha256_file(run_dir / MANIFEST_FILE),
        data=dict(manifest.get("data") or {}),
        val=val,
        test=test,
    )


def read_groups(root: Path, models: Sequence[str] | None = None) -> list[Group]:
    """The sealed runs under `root` (ensembles aside), grouped by dataset and split and checked:
    a ZooError (one line) when a group's runs differ in validation rows, labels or data. Runs that
    are not sealed by a manifest that verifies are never used: each is warned about, one line."""
    from zoo.leaderboard.collect import read_sweep

    root = Path(root)
    with warnings.catch_warnings(record=True) as caught:  # the leaderboard's own warnings, re-said
        warnings.simplefilter("always")
        sweep = read_sweep(root)
    for warning in caught:
        warnings.warn(str(warning.message), RuntimeWarning, stacklevel=2)
    for unsealed in sweep.unranked:
        warnings.warn(f"not used: {unsealed.path}: {unsealed.reason}", RuntimeWarning, stacklevel=2)
    runs = [run for run in sweep.runs if ENSEMBLE_FILE not in run.artifacts]
    available = sorted({str(run.data["model"]) for run in runs})
    if models:
        unknown = [m for m in models if m not in available]
        if unknown:
            raise ZooError(
                f"--models: no sealed run of {unknown[0]!r} under {root}; "
                f"models there: {', '.join(available)}"
            )
        runs = [run for run in runs if run.data["model"] in models]
    groups: dict[tuple[str, int | None, int | None], list[Member]] = {}
    for run in sorted(runs, key=lambda r: str(r.path)):
        try:
            member = read_member(run.path.parent, run.data)
        except ZooError as err:
            warnings.warn(f"not used: {run.path.parent}: {err}", RuntimeWarning, stacklevel=2)
            continue
        data = run.data
        split_seed = data.get("split_seed", data.get("seed"))
        key = (str(data["dataset"]), split_seed, data.get("fold"))
        groups.setdefault(key, []).append(member)
    out = [Group(dataset, seed, fold, members) for (dataset, seed, fold), members in groups.items()]
    for group in out:
        check_group(group)
    return out


def check_group(group: Group) -> None:
    """Every run of a group has the first one's data digest, validation rows and labels."""
    first = group.members[0]
    for member in group.members[1:]:
        where = f"group {group.name}: runs {first.path} and {member.path}"
        if member.data != first.data:
            raise ZooError(
                f"{where} were trained on different data (manifest data {_short(first.data)} vs "
                f"{_short(member.data)}); an ensemble needs its members on the same rows"
            )
        if not np.array_equal(member.val["row"].to_numpy(), first.val["row"].to_numpy()):
            raise ZooError(
                f"{where} have different validation rows ({len(first.val)} vs {len(member.val)} rows, "
                "or other rows: a different fold or split); an ensemble needs its members on the same rows"
            )
        if not np.array_equal(member.val["label"].to_numpy(), first.val["label"].to_numpy()):
            raise ZooError(f"{where} label the same validation rows differently")
        if not np.array_equal(member.test["row"].to_numpy(), first.test["row"].to_numpy()):
            raise ZooError(
                f"{where} have different test rows; an ensemble needs its members on the same rows"
            )


def _short(data: dict[str, Any]) -> str:
    digest = data.get("sha256")
    return f"sha256 {str(digest)[:12]}..." if digest else repr(data)[:60]
