"""The life of a run directory: created -> training -> finished | failed | interrupted.

- The state lives in `state.json`, written atomically at each step; a finished run is sealed by
  its manifest, written last (zoo/manifest.py), and only a sealed run counts as finished.
- A new run never reuses a directory that holds anything (Hydra's own `.hydra/` and job log
  aside); `resume=` continues an interrupted run only.
- `.lock` (created exclusively, holding host and pid) keeps a second writer out while a run
  writes; the lock of a process that is gone (same host) is stale and is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.manifest import MANIFEST_FILE, STATE_FILE
from zoo.outputs import write_json

LOCK_FILE = ".lock"
STATES = ("created", "training", "finished", "failed", "interrupted")
#: A state a live process writes while it works: when that process is gone, the run was interrupted.
WORKING = ("created", "training")


class RunDirRefused(ZooError):
    """A run directory that a run may not write to (in use, or holding another run): refused
    before anything is written, and nothing in it is removed."""


def child_rank() -> bool:
    """A worker process of a multi-process run that is not global rank 0 (Lightning's launcher
    and torchrun set these): rank 0 owns the run directory, its lock and its record."""
    return any(os.environ.get(key, "0") not in ("", "0") for key in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def framework_entries() -> set[str]:
    """What Hydra writes into a job's directory before the job starts (`.hydra/`, the job log),
    when running under Hydra; nothing otherwise."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return set()
    hydra_cfg = HydraConfig.get()
    return {str(hydra_cfg.output_subdir), f"{hydra_cfg.job.name}.log"}


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _owner_gone(record: dict[str, Any]) -> bool:
    """The process a record names is known to be gone: it ran on this host and no longer exists."""
    pid = record.get("pid")
    return record.get("host") == socket.gethostname() and isinstance(pid, int) and not process_alive(pid)


def read_record(run_dir: Path) -> dict[str, Any]:
    """What `state.json` holds; {} when there is none or it cannot be read."""
    try:
        record = json.loads((Path(run_dir) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_state(run_dir: Path, state: str, **details: Any) -> dict[str, Any]:
    """Record `state` (one of STATES) for this process, with `details`, atomically."""
    if state not in STATES:
        raise ValueError(f"state={state!r}, expected one of {', '.join(STATES)}")
    record = {
        "state": state,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **details,
    }
    write_json(Path(run_dir) / STATE_FILE, record)
    return record


def current_state(run_dir: Path) -> str | None:
    """What a run directory is now: `finished` when its manifest seals it, `interrupted` when the
    process that was working on it is gone (or an older run stopped with a checkpoint), else the
    recorded state; None for a directory without a run."""
    run_dir = Path(run_dir)
    if (run_dir / MANIFEST_FILE).is_file():
        return "finished"
    record = read_record(run_dir)
    state = record.get("state")
    if state in WORKING and _owner_gone(record):
        return "interrupted"
    if state in STATES:
        return str(state)
    if (run_dir / "checkpoints" / "last.ckpt").is_file():  # a run from before state.json
        return "interrupted"
    return None


def held_entries(run_dir: Path, framework: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """The entries of `run_dir` other than `framework` ones (Hydra's `.hydra/` and job log)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted(e.name for e in run_dir.iterdir() if e.name not in framework and e.name != LOCK_FILE)


def check_place(run_dir: Path, where: str = "hydra.run.dir") -> None:
    """A run directory must be a directory of its own: never the working directory or one above
    it (a failed run removes its directory), never a file."""
    path = Path(run_dir).resolve()
    cwd = Path.cwd().resolve()
    if path == cwd or path in cwd.parents:
        raise RunDirRefused(
            f"{where}={str(run_dir)!r} is the working directory or one above it; a run needs a "
            "directory of its own, e.g. a new one under outputs/"
        )
    if path.exists() and not path.is_dir():
        raise RunDirRefused(f"{where}={str(run_dir)!r} is a file; expected a new directory")


def check_new_run_dir(run_dir: Path, framework: set[str] = frozenset(), where: str = "hydra.run.dir") -> None:  # type: ignore[assignment]
    """A new run goes into a new or empty directory: refuse one that holds anything else."""
    check_place(run_dir, where)
    held = held_entries(run_dir, framework)
    if not held:
        return
    state = current_state(run_dir)
    what = (
        f"a {state} run"
        if state
        else f"{len(held)} entries ({', '.join(held[:3])}{', ...' if len(held) > 3 else ''})"
    )
    hint = f"; continue it with: zoo-train resume={run_dir}" if state == "interrupted" else ""
    raise RunDirRefused(
        f"{where}={str(run_dir)!r} already holds {what}; a new run never reuses a directory: "
        f"choose a new one{hint}"
    )


def check_resumable(run_dir: Path) -> None:
    """`resume=` continues an interrupted run, nothing else."""
    check_place(run_dir, "resume")
    if not Path(run_dir).is_dir():
        raise RunDirRefused(
            f"resume={str(run_dir)!r} is not a directory; expected an interrupted run's directory"
        )
    state = current_state(run_dir)
    if state == "interrupted":
        return
    if state in WORKING:
        record = read_record(run_dir)
        raise RunDirRefused(
            f"resume={str(run_dir)!r} is still being written by process {record.get('pid')} on "
            f"{record.get('host')}; wait for it to end"
        )
    what = {"finished": "a finished run (sealed by its manifest)", "failed": "a failed run"}.get(
        str(state), "not a zoo-train run directory"
    )
    raise RunDirRefused(f"resume={str(run_dir)!r} is {what}; only an interrupted run can be resumed")


@contextmanager
def run_lock(run_dir: Path) -> Iterator[Path]:
    """Hold `.lock` in `run_dir` while a run writes it; a second writer gets a one-line refusal. A
    lock left by a process that is gone is taken over. Released (removed) on the way out."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    mine = {"host": socket.gethostname(), "pid": os.getpid()}
    for attempt in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                owner = {}
            if attempt == 0 and isinstance(owner, dict) and _owner_gone(owner):
                path.unlink(missing_ok=True)  # a stale lock: its process is gone
                continue
            who = (
                f"process {owner.get('pid')} on {owner.get('host')}"
                if isinstance(owner, dict)
                else "another process"
            )
            raise RunDirRefused(
                f"run directory {str(run_dir)!r} is being written by {who} ({path}); wait for it "
                "to end, or remove the lock if that process is gone"
            ) from None
        with os.fdopen(fd, "w") as handle:
            json.dump(mine, handle)
        break
    try:
        yield path
    finally:
        try:
            if json.loads(path.read_text(encoding="utf-8")) == mine:
                path.unlink()
        except (OSError, ValueError):
            pass
