"""Interrupted runs: a resumable last checkpoint, written atomically, that continues bit for bit.

`zoo-train resume=<run dir>` continues a run stopped by SIGTERM, SIGKILL or Ctrl-C (an
interrupted run, zoo/run_state.py) from `checkpoints/last.ckpt` (the end of its last finished
epoch), or writes its outputs when the fit had ended, or fits again when no epoch had ended.
Lightning restores the weights, optimiser, schedule, epoch counter and callback states;
`ResumeState` adds what it does not: the random number generators (dropout) and the shuffling
order of the training batches.
"""

from __future__ import annotations

import random
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from zoo.errors import ZooError
from zoo.outputs import write_atomic

LAST_CHECKPOINT = "checkpoints/last.ckpt"
#: Exit status of a run ended by SIGTERM, as a shell reports a process killed by it.
SIGTERM_EXIT = 143


class Terminated(Exception):
    """A run stopped by SIGTERM; its message is the one line the user sees."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written beside their path and moved into place: a kill mid-write leaves
    the previous checkpoint whole. A truncated or corrupt one fails to load in one line."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        write_atomic(Path(path), lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> Any:
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except FileNotFoundError:
            raise ZooError(f"checkpoint {str(path)!r} does not exist") from None
        except Exception as err:  # truncated, flipped bytes, not a checkpoint at all
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ZooError(f"checkpoint {str(path)!r} is corrupt or truncated ({detail})") from None


def _numpy_state() -> dict[str, Any]:
    state = np.random.get_state(legacy=True)
    assert isinstance(state, tuple)  # legacy=True: the (name, keys, pos, has_gauss, cached) tuple
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
            "has_gauss": has_gauss, "cached": cached}  # fmt: skip


def _set_numpy_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["pos"], state["has_gauss"], state["cached"]))


class ResumeState(pl.Callback):
    """Saves the generators' states with every checkpoint; after a resume, restores them at the
    start of the first epoch, and keeps the training batches' shuffle on the epoch counter."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        state = {
            "torch": torch.get_rng_state(),
            "numpy": _numpy_state(),
            "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loader = trainer.train_dataloader
        if loader is not None and hasattr(loader, "epoch"):
            loader.epoch = trainer.current_epoch  # the shuffle order of this epoch, resumed or not
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        torch.set_rng_state(state["torch"])
        _set_numpy_state(state["numpy"])
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class ResumePoint:
    """Where `resume=` picks an interrupted run up: its outputs alone when the fit had ended
    (`fitted`, the fit's record), else the epoch loop from `checkpoint` (last.ckpt), else the
    fit from its start (killed before a checkpoint, or a direct fit)."""

    checkpoint: Path | None = None
    fitted: dict[str, Any] | None = None


def resume_point(run_dir: Path) -> ResumePoint:
    """Where an interrupted run continues, or a one-line reason why `run_dir` cannot be resumed."""
    from zoo.run_state import check_resumable, read_record

    run_dir = Path(run_dir)
    check_resumable(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ZooError(f"resume={str(run_dir)!r} has no config.yaml; expected a zoo-train run directory")
    fitted = read_record(run_dir).get("fitted")
    if isinstance(fitted, dict) and (run_dir / str(fitted.get("checkpoint"))).is_file():
        return ResumePoint(fitted=fitted)
    last = run_dir / LAST_CHECKPOINT
    return ResumePoint(checkpoint=last if last.is_file() else None)


#: True while Lightning's own SIGTERM handling is in charge (inside `Trainer.fit`).
_lightning_has_sigterm = False


@contextmanager
def lightning_handles_sigterm() -> Iterator[None]:
    """Around `Trainer.fit`: Lightning stops at the next batch and says so (SIGTERMException)."""
    global _lightning_has_sigterm
    before, _lightning_has_sigterm = _lightning_has_sigterm, True
    try:
        yield
    finally:
        _lightning_has_sigterm = before


def _raise_terminated(signum: int, frame: Any) -> None:
    if not _lightning_has_sigterm:
        raise Terminated("terminated by SIGTERM")


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises `Terminated` wherever the run is (reading data, a direct fit, writing its
    outputs), so it ends as interrupted with one line; inside `Trainer.fit` Lightning handles it.
    Only in the main thread, where Python delivers signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def keep_logs(run_dir: Path) -> list[Path]:
    """Before a resume: move each CSV log (`metrics.csv`) aside to `metrics.part<k>.csv`, since
    Lightning's CSV logger deletes an existing one; the interrupted epochs' log is kept."""
    kept = []
    for log_file in sorted(Path(run_dir).rglob("metrics.csv")):
        if log_file.parent == Path(run_dir):
            continue  # not a logger's file
        k = 1 + len(list(log_file.parent.glob("metrics.part*.csv")))
        kept.append(log_file.rename(log_file.with_name(f"metrics.part{k}.csv")))
    return kept


def output_subdir_resolver(resume: Any) -> str | None:
    """`hydra.output_subdir`: none when resuming, so the run's own `.hydra/` is not overwritten."""
    return ".hydra" if resume in (None, "", "None", "null") else None


def run_dir_resolver(resume: Any, default: str) -> str:
    """`hydra.run.dir`: the interrupted run's own directory when resuming, else the default."""
    return str(resume) if resume not in (None, "", "None", "null") else default
