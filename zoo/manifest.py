"""The run manifest: package versions, git SHA, and SHA-256 digests of the data and of every
artifact, so a run can prove what it was trained on and refuse a corrupted checkpoint."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from zoo.errors import ZooError
from zoo.expected_warnings import quiet_load
from zoo.outputs import METRICS_FILE, write_json

MANIFEST_FILE = "manifest.json"
#: The run's lifecycle state (created, training, finished, failed, interrupted), rewritten after
#: the manifest seals the run, so it is not one of the artifacts the manifest digests.
STATE_FILE = "state.json"
#: Files a run directory holds that are not the run's own artifacts (Hydra's, the state, the job log).
_NOT_ARTIFACTS = (MANIFEST_FILE, STATE_FILE, ".hydra")


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_frame(frame: pd.DataFrame) -> str:
    """Digest of a frame built in memory (synthetic data): its values, index and column names."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    return digest.hexdigest()


def git_sha() -> str | None:
    """The commit of the credit-zoo source in use, when it runs from a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def artifact_digests(run_dir: Path) -> dict[str, str]:
    """SHA-256 of every file in the run directory but the manifest and Hydra's own files."""
    out = {}
    for path in sorted(Path(run_dir).rglob("*")):
        rel = path.relative_to(run_dir)
        if (
            not path.is_file()
            or rel.parts[0] in _NOT_ARTIFACTS
            or rel.suffix == ".log"
            or rel.name.startswith(".")
        ):
            continue
        out[rel.as_posix()] = sha256_file(path)
    return out


def write_manifest(run_dir: Path, *, data: dict[str, Any], versions: dict[str, str]) -> dict[str, Any]:
    """Write `manifest.json`, the last file of a run: it digests everything written before it."""
    manifest = {
        "format": "credit-zoo.manifest/1",
        "versions": versions,
        "git_sha": git_sha(),
        "data": data,
        "artifacts": artifact_digests(run_dir),
    }
    write_json(Path(run_dir) / MANIFEST_FILE, manifest)
    return manifest


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST_FILE
    if not path.is_file():
        raise ZooError(
            f"{str(path)!r} does not exist: {str(run_dir)!r} is not a finished credit-zoo run directory"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ZooError(f"manifest {str(path)!r} could not be read: {err}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), dict):
        raise ZooError(f"manifest {str(path)!r} has no 'artifacts' table of digests: not a run manifest")
    return manifest


def verify_run(run_dir: Path) -> dict[str, Any]:
    """The manifest of a sealed, intact run: it exists, lists metrics.json, and every artifact it
    lists is there with its SHA-256. Otherwise a ZooError whose message is the one-line reason
    (`no manifest`, `manifest does not verify: metrics.json changed`), for the caller to put beside
    the run's path. Every reader of runs (leaderboard, study) uses it."""
    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST_FILE).is_file():
        raise ZooError("no manifest")
    try:
        manifest = read_manifest(run_dir)
    except ZooError as err:
        raise ZooError(f"manifest unreadable: {err}") from None
    listed: dict[str, Any] = manifest["artifacts"]
    if METRICS_FILE not in listed:
        raise ZooError(f"manifest does not verify: it does not list {METRICS_FILE}")
    for name, expected in sorted(listed.items()):
        path = run_dir / name
        if not path.is_file():
            raise ZooError(f"manifest does not verify: {name} missing")
        try:
            actual = sha256_file(path)
        except OSError as err:
            raise ZooError(f"manifest does not verify: {name} unreadable ({err.strerror or err})") from None
        if actual != expected:
            raise ZooError(f"manifest does not verify: {name} changed")
    return manifest


def seal_problem(run_dir: Path) -> str | None:
    """Why `run_dir` is not a sealed, intact run (see verify_run), or None when it is."""
    try:
        verify_run(run_dir)
    except ZooError as err:
        return str(err)
    return None


def verify(run_dir: Path, name: str, manifest: dict[str, Any] | None = None) -> Path:
    """The path of artifact `name` after checking its SHA-256 against the manifest."""
    manifest = manifest if manifest is not None else read_manifest(run_dir)
    path = Path(run_dir) / name
    expected = manifest.get("artifacts", {}).get(name)
    if expected is None:
        raise ZooError(
            f"{name!r} is not listed in {str(Path(run_dir) / MANIFEST_FILE)!r}; refusing to load it"
        )
    if not path.is_file():
        raise ZooError(f"artifact {str(path)!r} is missing from the run directory")
    actual = sha256_file(path)
    if actual != expected:
        raise ZooError(
            f"artifact {str(path)!r} is corrupted or was changed after the run: SHA-256 {actual[:12]}..., "
            f"expected {expected[:12]}... from the manifest; refusing to load it"
        )
    return path


def read_json(run_dir: Path, name: str, manifest: dict[str, Any] | None = None) -> Any:
    """A run's JSON artifact, checked against the manifest; unreadable JSON is a one-line error."""
    path = verify(run_dir, name, manifest)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ZooError(f"artifact {str(path)!r} is not valid JSON: {err}") from None


def read_yaml(run_dir: Path, name: str, manifest: dict[str, Any] | None = None) -> Any:
    """A run's YAML artifact (its config), checked against the manifest."""
    from omegaconf import OmegaConf

    path = verify(run_dir, name, manifest)
    try:
        return OmegaConf.load(path)
    except Exception as err:  # yaml's and OmegaConf's own error types
        raise ZooError(f"artifact {str(path)!r} is not valid YAML: {_first_line(err)}") from None


def load_checkpoint(cls: type[Any], path: Path | str, *, map_location: Any = "cpu") -> Any:
    """`cls.load_from_checkpoint` with `weights_only=True` (no stored code runs); an empty,
    truncated or unreadable checkpoint is a one-line error naming the file, not EOFError."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"checkpoint {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise ZooError(f"checkpoint {str(path)!r} is empty (0 bytes): the file was truncated")
    try:
        with quiet_load():  # strict loading: an empty state dict is a model without parameters
            return cls.load_from_checkpoint(path, map_location=map_location, weights_only=True)
    except (
        EOFError,
        OSError,
        RuntimeError,
        KeyError,
        ValueError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
    ) as err:
        raise ZooError(f"checkpoint {str(path)!r} could not be loaded: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
