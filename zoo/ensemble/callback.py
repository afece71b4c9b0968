"""The Hydra callback that builds a multirun's ensembles when it ends (`+ensemble=greedy`): the
same `build_ensembles` as `zoo ensemble SWEEP_DIR`, with the settings of the `ensemble:` block."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from zoo.errors import ZooError

log = logging.getLogger(__name__)


class EnsembleCallback(Callback):
    """Checks the `ensemble:` settings when a multirun starts (a bad one stops it before the first
    job) and, when it ends, writes one ensemble run per group into `<sweep dir>/ensembles/`."""

    def __init__(self) -> None:
        self.refused = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from zoo.ensemble.build import EnsembleSettings

        try:
            EnsembleSettings.from_config(config.get("ensemble"))
        except ZooError as err:
            self.refused = True  # Hydra still calls on_multirun_end: it has nothing to add
            # Hydra turns a callback's exception into a warning; this one must stop the sweep.
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from zoo.ensemble.build import EnsembleSettings, build_ensembles
        from zoo.ensemble.cli import report

        if self.refused:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                built = build_ensembles(sweep_dir, EnsembleSettings.from_config(config.get("ensemble")))
            except ZooError as err:
                for warning in caught:
                    print(f"warning: {warning.message}", file=sys.stderr)
                print(f"error: ensemble: {err}", file=sys.stderr)
                raise SystemExit(2) from None
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
        for line in report(built):
            print(line)
