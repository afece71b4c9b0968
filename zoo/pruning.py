"""Pruning the Optuna sweeper's trials: a Lightning callback that reports to the study in its storage.

The Hydra Optuna sweeper asks the study for a trial, launches a job with the trial's parameters as
overrides and tells the study the job's return value; the job never sees the trial object. A job can
still reach its trial: the sweeper's config (storage, study name) is in `HydraConfig`, and the trial
the sweeper asked for is the RUNNING trial of that study whose parameters are this job's overrides
(`zoo.sweeps.find_trial`: the sweeper writes them as `f"{name}={value}"`, which is what
`hydra.overrides.task` holds).

`OptunaPruning` finds that trial when fitting starts, reports the optimised validation metric after
every validation epoch (`trial.report`) and, when the study's pruner (configured here, when the study
is loaded: the storage does not keep it) says prune, stops training and records the epoch as the
trial's user attribute `pruned_at_epoch`. The job then returns NaN, which the sweeper records as a
FAIL (Optuna turns a NaN value into a failed trial; the 1.4 sweeper has no PRUNED state either);
`zoo study` counts those as pruned. The settings live under `sweep` in the run config::

    sweep:
      pruner: median             # null: no pruning; median or successive_halving
      pruners:                   # keyword arguments of each pruner (optuna.pruners.*)
        median: {n_startup_trials: 5, n_warmup_steps: 2}
        successive_halving: {min_resource: 2, reduction_factor: 3}

A run that is not a trial of an Optuna sweep with persistent storage gets no callback. With
`sweep.objective_folds` = k > 1 a trial trains k fold runs (zoo.train.train_folds); fold 0 alone
reports (so every trial's curve is on the same split), and a pruned fold 0 ends the trial.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from zoo.errors import ZooError
from zoo.sweeps import RUN_DIR_ATTR, find_trial

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

#: The trial user attribute that marks a pruned trial (recorded FAIL by the sweeper).
PRUNED_ATTR = "pruned_at_epoch"
#: Metrics of `optimized_metric` that models log each validation epoch under another name.
EPOCH_NAMES = {"val/logloss": "val/loss"}


def pruner_classes() -> dict[str, type]:
    """The pruners `sweep.pruner` may name."""
    import optuna

    return {
        "median": optuna.pruners.MedianPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    }


def build_pruner(name: str, args: Mapping[str, Any] | None = None) -> optuna.pruners.BasePruner:
    """The Optuna pruner `name` with keyword arguments `args`; a one-line ZooError on a bad name or key."""
    classes = pruner_classes()
    if name not in classes:
        raise ZooError(f"sweep.pruner={name!r}, expected null or one of: {', '.join(classes)}")
    cls = classes[name]
    args = dict(args or {})
    accepted = list(inspect.signature(cls).parameters)
    for key in args:
        if key not in accepted:
            raise ZooError(
                f"sweep.pruners.{name}.{key} is not an argument of {cls.__name__}; "
                f"expected one of: {', '.join(accepted)}"
            )
    try:
        return cls(**args)
    except (TypeError, ValueError) as err:
        raise ZooError(f"sweep.pruners.{name}: {err}") from None


class OptunaPruning(pl.Callback):
    """Report `monitor` to this job's Optuna trial after each validation epoch; stop when it is pruned.

    Only global rank 0 talks to the storage; its decision is broadcast so every rank stops together.
    """

    def __init__(
        self,
        *,
        storage: Any,
        study_name: str,
        overrides: Sequence[str],
        monitor: str,
        pruner: optuna.pruners.BasePruner,
        run_dir: str | None = None,
    ) -> None:
        self.storage = storage
        self.study_name = study_name
        self.overrides = list(overrides)
        self.monitor = monitor
        self.pruner = pruner
        self.run_dir = run_dir
        self.trial: optuna.trial.Trial | None = None
        self.pruned_at_epoch: int | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or self.trial is not None:
            return
        import optuna

        study = optuna.load_study(study_name=self.study_name, storage=self.storage, pruner=self.pruner)
        if len(study.directions) > 1:
            log.warning("pruning is off: study %r has several objectives", self.study_name)
            return
        found = find_trial(study, self.overrides)
        if found is None:
            log.warning(
                "pruning is off: no running trial of study %r has this job's parameters (%s)",
                self.study_name,
                " ".join(self.overrides),
            )
            return
        self.trial = optuna.trial.Trial(study, found._trial_id)
        if self.run_dir is not None:
            self.trial.set_user_attr(RUN_DIR_ATTR, self.run_dir)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.pruned_at_epoch is not None:
            return
        epoch = int(trainer.current_epoch)
        prune, value = False, float("nan")
        if self.trial is not None:
            logged = trainer.callback_metrics.get(self.monitor)
            if logged is None:
                log.warning("pruning is off: %r is not logged each validation epoch", self.monitor)
                self.trial = None
            else:
                value = float(logged)
                self.trial.report(value, step=epoch)
                prune = self.trial.should_prune()
        if trainer.strategy.broadcast(prune, src=0):
            self.pruned_at_epoch = epoch
            trainer.should_stop = True
            if self.trial is not None:
                self.trial.set_user_attr(PRUNED_ATTR, epoch)
                log.info(
                    "trial %d pruned after epoch %d (%s %.4f)", self.trial.number, epoch, self.monitor, value
                )


def pruned_epoch(trainer: pl.Trainer) -> int | None:
    """The epoch after which this run's Optuna trial was pruned, or None when it was not."""
    for callback in getattr(trainer, "callbacks", []):  # a property Lightning's stubs do not declare
        if isinstance(callback, OptunaPruning) and callback.pruned_at_epoch is not None:
            return callback.pruned_at_epoch
    return None


def pruning_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """`[OptunaPruning]` when this run is a trial of an Optuna sweep with persistent storage and
    `sweep.pruner` is set, else `[]` (a plain run, another sweeper, an in-memory study, or a fold
    after the first of a trial averaging `sweep.objective_folds`)."""
    sweep = cfg.get("sweep") or {}
    name = sweep.get("pruner")
    if not name:
        return []
    if (sweep.get("objective_folds") or 1) > 1 and int(cfg.data.fold) > 0:
        return []  # a trial averaging folds is compared with the others on fold 0's curve alone
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return []
    hydra_cfg: Any = HydraConfig.get()  # a DictConfig at run time, typed as the HydraConf dataclass
    sweeper: Any = hydra_cfg.get("sweeper") or {}
    if hydra_cfg.mode != RunMode.MULTIRUN or "optuna" not in str(sweeper.get("_target_", "")):
        return []
    pruner = build_pruner(str(name), _plain((sweep.get("pruners") or {}).get(name)))
    if sweeper.get("storage") is None or sweeper.get("study_name") is None:
        log.warning("pruning is off: it needs hydra.sweeper.storage and hydra.sweeper.study_name set")
        return []
    return [
        OptunaPruning(
            storage=_plain(sweeper.storage),
            study_name=str(sweeper.study_name),
            overrides=list(hydra_cfg.overrides.task),
            monitor=EPOCH_NAMES.get(str(cfg.optimized_metric), str(cfg.optimized_metric)),
            pruner=pruner,
            run_dir=str(hydra_cfg.runtime.output_dir),
        )
    ]


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
