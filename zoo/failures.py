"""`<sweep dir>/failures/<job>.json`: why a job of a multirun failed (`zoo leaderboard` lists it)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from zoo.outputs import FAILURES_DIR, write_json

log = logging.getLogger(__name__)


def failure_path(hydra_cfg: Any) -> Path:
    """Where the failure record of the current Hydra job goes."""
    return Path(hydra_cfg.sweep.dir) / FAILURES_DIR / f"{Path(hydra_cfg.runtime.output_dir).name}.json"


def record_failure(hydra_cfg: Any, err: BaseException) -> None:
    """Write why this job of a multirun failed: its overrides and the error's first line."""
    message = (str(err).strip().splitlines() or [type(err).__name__])[0]
    try:
        write_json(
            failure_path(hydra_cfg),
            {
                "job": Path(hydra_cfg.runtime.output_dir).name,
                "overrides": list(hydra_cfg.overrides.task),
                "error": message,
                "type": type(err).__name__,
            },
        )
    except OSError as write_err:  # the failure itself matters more than its record
        log.warning("could not record the failure of %s: %s", hydra_cfg.runtime.output_dir, write_err)


def clear_failure(hydra_cfg: Any) -> None:
    """A job that now succeeds drops the failure record of an earlier attempt."""
    failure_path(hydra_cfg).unlink(missing_ok=True)
