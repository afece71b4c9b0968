"""Optuna sweeps through Hydra's sweeper: storage, direction, per-worker sampler seeds, trial records.

`conf/hparams_search/_optuna.yaml` wires these in (docs/tuning.md explains the whole):

- `${zoo.sqlite:<file>}`: the default storage, an SQLite file in the sweep directory, whose name
  comes from model and dataset, so rerunning a command resumes its study.
- `${zoo.journal:<file>}`: Optuna's journal file storage (for file systems where SQLite locking
  fails, e.g. NFS), as a storage object, which the sweeper passes to Optuna as it is.
- `${zoo.direction:${optimized_metric}}`: maximize, or minimize for a loss (log-loss, Brier, ECE).
- `${zoo.sampler_seed:<base>}`: the sampler's seed from the base seed, the worker index
  (`ZOO_WORKER`) and the number of trials already in the study, so neither a second worker nor a
  resumed study re-samples the parameter sets of the first.
- `${zoo.trial_dir:}`: the job's sub-directory, `trial_<number>` of its Optuna trial.
- `${zoo.fold_tag:<n_folds>,<fold>,<fold_column>}`: `_fold<k>` at the end of a multirun job's
  sub-directory when the runs are folds of a cross-validation, else nothing.
- `claim_trial` (the sweeper's `custom_search_space` hook) marks each trial with the process that
  asked for it; `TrialRecorder` (a Hydra callback) refuses to resume a study towards the other
  direction, fails the trials a killed process left RUNNING, and writes each job's run directory,
  and a failed job's error, onto its trial.
- `check_sweep_job`: zoo-train refuses, inside a sweep, a DDP trainer that would re-run the sweep.
- `objective_folds`: `sweep.objective_folds` checked; with k > 1 each job trains folds 0..k-1 of a
  k-fold split (`fold_config`, one run directory `fold<i>/` each) and returns their mean
  (`zoo.train.train_folds`); `TrialRecorder` copies the per-fold values from the job's
  `objective.json` onto its trial and refuses to resume a study with another number of folds.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from zoo.errors import ZooError
from zoo.leaderboard import LOWER_IS_BETTER
from zoo.run_state import process_alive

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

#: Environment variable holding this process's worker index (0, 1, ...) among a study's workers.
WORKER_ENV = "ZOO_WORKER"
#: Metrics (the part after `val/` or `test/`) that a study minimises; every other one is maximised.
MINIMISED = LOWER_IS_BETTER | {"loss"}

#: Trial user attributes written here.
RUN_DIR_ATTR = "run_dir"
ERROR_ATTR = "error"
HOST_ATTR = "host"
PID_ATTR = "pid"
WORKER_ATTR = "worker"
#: The number of folds a trial's value averages (absent: one split), and each fold's value.
FOLDS_ATTR = "objective_folds"
FOLD_VALUES_ATTR = "fold_values"
#: Split settings that objective_folds cannot be combined with: each defines the split itself.
_OWN_SPLITS = {
    "split_column": "a predefined split has a single validation part",
    "fold_column": "the fold column defines folds of its own",
    "date_column": "an out-of-time split keeps one validation period; random folds would mix periods",
}


def register_resolvers() -> None:
    """Register the `zoo.*` resolvers the configs use (idempotent)."""
    from zoo.resume import output_subdir_resolver, run_dir_resolver

    resolvers: dict[str, Callable[..., Any]] = {
        "zoo.run_dir": run_dir_resolver,
        "zoo.output_subdir": output_subdir_resolver,
        "zoo.direction": direction,
        "zoo.sqlite": sqlite_url,
        "zoo.journal": journal_storage,
        "zoo.sampler_seed": sampler_seed,
        "zoo.trial_dir": trial_dir,
        "zoo.fold_tag": fold_tag,
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_resolver(name, resolver)


def fold_tag(n_folds: Any, fold: Any, fold_column: Any) -> str:
    """`_fold<k>` for a run directory's name when the run is fold k of a cross-validation
    (data.n_folds or data.fold_column set), else ""."""
    if n_folds in (None, "", 0) and fold_column in (None, ""):
        return ""
    return f"_fold{fold}"


def direction(metric: str) -> str:
    """`minimize` for a loss (`val/loss`, `val/logloss`, `val/brier`, `val/ece`), else `maximize`."""
    from zoo.metrics import METRIC_NAMES

    split, _, name = str(metric).partition("/")
    if split not in ("val", "test") or name not in (*METRIC_NAMES, "loss"):
        raise ZooError(
            f"optimized_metric={metric!r}, expected val/<metric> (or test/<metric>) with a metric "
            f"among loss, {', '.join(METRIC_NAMES)}"
        )
    return "minimize" if name in MINIMISED else "maximize"


def worker_index() -> int:
    """This process's worker index, from `ZOO_WORKER` (0 when unset)."""
    value = os.environ.get(WORKER_ENV, "0").strip() or "0"
    if not value.isdigit():
        raise ZooError(f"{WORKER_ENV}={value!r}, expected a worker index 0, 1, 2, ...")
    return int(value)


def sqlite_url(path: str) -> str:
    """The SQLAlchemy URL of an SQLite file (absolute), creating its directory."""
    file = Path(path).expanduser().absolute()
    file.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{file}"


def journal_storage(path: str | None = None, *, _root_: DictConfig) -> Any:
    """Optuna's journal storage in a file (default: `study.log` in the sweep directory), created with
    its directory and locked with `open(O_EXCL)` (NFS v3 or later)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    if not path:
        path = f"{OmegaConf.select(_root_, 'hydra.sweep.dir')}/study.log"
    file = Path(path).expanduser().absolute()
    file.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(file), lock_obj=JournalFileOpenLock(str(file))))


def _sweeper(root: DictConfig) -> DictConfig | None:
    sweeper = OmegaConf.select(root, "hydra.sweeper")
    return sweeper if isinstance(sweeper, DictConfig) else None


def load_study(sweeper: Any) -> optuna.Study | None:
    """The sweeper's study as stored (None: no persistent storage, or no such study yet)."""
    import optuna

    storage, name = sweeper.get("storage"), sweeper.get("study_name")
    if storage is None or name is None:
        return None
    try:
        return optuna.load_study(study_name=str(name), storage=storage)
    except KeyError:
        return None


def sampler_seed(base: int, *, _root_: DictConfig) -> int:
    """The sampler's seed: `base` in a new study's first worker, otherwise a seed drawn from
    (base, worker index, trials already in the study) by `numpy.random.SeedSequence`.

    TPE starts with random trials drawn from its seed alone: two workers with one seed, or a resumed
    study with its first seed, would ask for the parameter sets already tried.
    """
    import numpy as np

    worker = worker_index()
    sweeper = _sweeper(_root_)
    study = load_study(sweeper) if sweeper is not None else None
    done = len(study.get_trials(deepcopy=False)) if study is not None else 0
    if worker == 0 and done == 0:
        return int(base)
    return int(np.random.SeedSequence([int(base), worker, done]).generate_state(1)[0])


def check_direction(study: optuna.Study, sweeper: DictConfig) -> None:
    """A stored study keeps its direction: refuse to resume it towards the other one (a study
    created for val/auc, resumed with optimized_metric=val/logloss, would maximise the loss)."""
    wanted = sweeper.get("direction")
    wanted = [str(d) for d in wanted] if OmegaConf.is_list(wanted) else [str(wanted)]
    stored = [d.name.lower() for d in study.directions]
    if stored != [w.lower() for w in wanted]:
        storage = sweeper.storage if isinstance(sweeper.storage, str) else type(sweeper.storage).__name__
        raise ZooError(
            f"study {study.study_name!r} in {storage} was created to {', '.join(stored)}, "
            f"but this sweep would {', '.join(wanted)}; name another study "
            f"(hydra.sweeper.study_name=...) or sweep directory (hydra.sweep.dir=...)"
        )


def trial_overrides(params: dict[str, Any]) -> set[str]:
    """The overrides the sweeper launches a trial with: `name=value` per parameter."""
    return {f"{name}={value}" for name, value in params.items()}


def find_trial(study: optuna.Study, overrides: Iterable[str]) -> optuna.trial.FrozenTrial | None:
    """The RUNNING trial of `study` launched with `overrides` (its parameters among them); when two
    running trials have equal parameters, one no job has recorded its run directory on yet."""
    import optuna

    given = set(overrides)
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    matches = [t for t in running if t.params and trial_overrides(t.params) <= given]
    unclaimed = [t for t in matches if RUN_DIR_ATTR not in t.user_attrs]
    chosen = unclaimed or matches
    return chosen[0] if chosen else None


def trial_dir(*, _root_: DictConfig) -> str:
    """A job's sub-directory: `trial_<number>` of the Optuna trial it runs (unique across workers and
    resumed runs); `<time>_<host>-<pid>_<job number>` when the trial cannot be found."""
    from datetime import datetime

    sweeper = _sweeper(_root_)
    overrides = OmegaConf.select(_root_, "hydra.overrides.task", default=[]) or []
    study = load_study(sweeper) if sweeper is not None else None
    trial = find_trial(study, overrides) if study is not None else None
    if trial is not None:
        return f"trial_{trial.number:04d}"
    num = OmegaConf.select(_root_, "hydra.job.num", default=0)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    return f"{stamp}_{socket.gethostname()}-{os.getpid()}_{num}"


def claim_trial(cfg: DictConfig, trial: optuna.Trial) -> None:
    """The sweeper's `custom_search_space` hook, called as each trial is asked for: records the
    process that asked (host, pid, worker index), the one that will tell the study its result.

    A search space that needs its own hook calls this one from it.
    """
    trial.set_user_attr(HOST_ATTR, socket.gethostname())
    trial.set_user_attr(PID_ATTR, os.getpid())
    trial.set_user_attr(WORKER_ATTR, worker_index())


def fail_stale_trials(study: optuna.Study, *, own: bool = False) -> list[int]:
    """Mark FAIL the RUNNING trials of `study` asked by a sweeper process on this host that is gone
    (killed before it could tell the study), and with `own` those of this process too (a sweep that
    ends with trials still running was interrupted). Returns their numbers; other hosts' are left."""
    import optuna

    host, me = socket.gethostname(), os.getpid()
    stale = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = trial.user_attrs.get(PID_ATTR)
        if trial.user_attrs.get(HOST_ATTR) != host or not isinstance(pid, int):
            continue
        if pid == me and own:
            reason = "its sweep was interrupted"
        elif pid != me and not process_alive(pid):
            reason = f"its sweep process {pid} ended before the trial did"
        else:
            continue
        try:
            study._storage.set_trial_user_attr(trial._trial_id, ERROR_ATTR, reason)
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        except RuntimeError:  # it finished meanwhile
            continue
        stale.append(trial.number)
    return stale


#: Strategies whose ranks Lightning starts by re-running the command line (its subprocess launcher).
_RERUN_STRATEGIES = ("ddp", "ddp_find_unused_parameters_true", "ddp_find_unused_parameters_false")
#: Set when a scheduler (SLURM through submitit, torchrun) started the ranks itself.
_EXTERNAL_RANKS = ("LOCAL_RANK", "TORCHELASTIC_RUN_ID")


def check_sweep_job(trainer: Any) -> None:
    """Refuse a trainer that would re-run the sweep's command line once per rank.

    Lightning starts DDP ranks 1..n-1 by re-running `sys.argv`; inside `zoo-train -m` each such rank
    starts a sweep of its own, asks the study for a trial of its own and trains the shared model with
    other hyperparameters (seen with 2 CPU ranks). Ranks started by SLURM (submitit's
    `tasks_per_node`) or torchrun are fine, and so is one device per trial.
    """
    strategy = str(trainer.get("strategy", "auto"))
    devices = trainer.get("devices", 1)
    one_device = devices in (1, "1") or (OmegaConf.is_list(devices) and len(devices) == 1)
    slurm_ranks = int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1
    if strategy not in _RERUN_STRATEGIES or (one_device and int(trainer.get("num_nodes", 1)) == 1):
        return
    if slurm_ranks or any(key in os.environ for key in _EXTERNAL_RANKS):
        return
    raise ZooError(
        f"trainer.strategy={strategy} with devices={devices} in a -m sweep: Lightning would re-run the "
        f"sweep command in every rank; tune on one device per trial (trainer=gpu, one worker per GPU) "
        f"or let SLURM start the ranks (hydra.launcher.tasks_per_node), see docs/tuning.md"
    )


def objective_folds(cfg: Any) -> int:
    """`sweep.objective_folds` checked against the run's split settings: the number of folds each
    trial's objective averages (1 when null: one validation split, as without it)."""
    sweep = cfg.get("sweep") or {}
    value = sweep.get("objective_folds")
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ZooError(
            f"sweep.objective_folds={value!r}, expected null or a whole number of folds >= 2 "
            f"(1 is the same as null: one validation split)"
        )
    if value == 1:
        return 1
    data = cfg.get("data") or {}
    unset = {"n_folds": (None,), "fold": (None, 0)}  # their defaults in conf/config.yaml
    given = [f"data.{key}={data.get(key)!r}" for key, empty in unset.items() if data.get(key) not in empty]
    if given:
        raise ZooError(
            f"sweep.objective_folds={value} sets data.n_folds={value} and data.fold=0..{value - 1} "
            f"itself; drop {' and '.join(given)}"
        )
    for key, why in _OWN_SPLITS.items():
        if data.get(key):
            raise ZooError(
                f"sweep.objective_folds={value} cannot be combined with data.{key}={data.get(key)!r}: "
                f"{why}; drop one of them"
            )
    return value


def fold_config(cfg: DictConfig, folds: int, fold: int) -> DictConfig:
    """The config of fold `fold` of a `folds`-fold objective: the job's config with data.n_folds and
    data.fold set, and nothing else changed (the folds of a trial are one variant to a leaderboard)."""
    import copy

    from omegaconf import open_dict

    fold_cfg = copy.deepcopy(cfg)
    with open_dict(fold_cfg):
        fold_cfg.data.n_folds = folds
        fold_cfg.data.fold = fold
    return fold_cfg


def check_objective(study: optuna.Study, folds: int) -> None:
    """A stored study keeps its objective: refuse to add trials averaging another number of folds
    (a 5-fold mean and a single-split value do not rank each other)."""
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    stored = sorted({int(t.user_attrs.get(FOLDS_ATTR, 1)) for t in done})
    if stored and stored != [folds]:
        shown = ", ".join("null" if k == 1 else str(k) for k in stored)
        raise ZooError(
            f"study {study.study_name!r} has trials with sweep.objective_folds={shown}, but this sweep "
            f"asks for {'null' if folds == 1 else folds}; keep the study's setting, or name another study "
            f"(hydra.sweeper.study_name=...) or sweep directory (hydra.sweep.dir=...)"
        )


def _error_text(err: BaseException) -> str:
    """`<type>: <first line of the message>`, at most 500 characters."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:500]


class TrialRecorder(Callback):
    """A Hydra callback for Optuna sweeps with persistent storage. When a sweep starts: stops it on a
    trainer that cannot run in a sweep or a stored study of the other direction, and fails the
    trials a killed sweeper left RUNNING. When a job ends: writes its run directory and, when it
    failed or returned NaN, its error onto its trial (`study.trials[i].user_attrs`), and with
    `sweep.objective_folds` the number of folds and each fold's value; and prints
    "trial k/N: value, best so far" (k counts this command's trials: Hydra's in-process launchers
    keep one callback for the sweep)."""

    def __init__(self) -> None:
        self.finished = 0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        study = load_study(config.hydra.sweeper)
        launcher_ranks = int(OmegaConf.select(config, "hydra.launcher.tasks_per_node", default=1) or 1)
        try:
            if launcher_ranks == 1 and "trainer" in config:
                check_sweep_job(config.trainer)  # every trial would fail on it: stop before the first
            folds = objective_folds(config)
            if study is not None:
                check_direction(study, config.hydra.sweeper)
                check_objective(study, folds)
        except ZooError as err:
            # Hydra turns a callback's exception into a warning; these must stop the sweep.
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        if study is not None:
            self._fail_stale(config, own=False)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._fail_stale(config, own=True)  # trials still running here: the sweep was interrupted

    @staticmethod
    def _fail_stale(config: DictConfig, *, own: bool) -> None:
        study = load_study(config.hydra.sweeper)
        if study is None:
            return
        stale = fail_stale_trials(study, own=own)
        if stale:
            log.warning("study %s: trials %s, left running, are now FAIL", study.study_name, stale)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus

        study = load_study(config.hydra.sweeper)
        if study is None:
            return
        trial = find_trial(study, config.hydra.overrides.task)
        if trial is None:
            return
        storage = study._storage
        run_dir = Path(config.hydra.runtime.output_dir)
        if run_dir.is_dir():  # a job failing on bad input removes it
            storage.set_trial_user_attr(trial._trial_id, RUN_DIR_ATTR, str(run_dir))
        error = None
        if job_return.status == JobStatus.FAILED:
            error = _error_text(job_return._return_value)
        else:
            value = job_return._return_value
            if isinstance(value, float) and math.isnan(value):
                error = f"the job returned NaN for {config.get('optimized_metric')}"
        if error is not None:
            storage.set_trial_user_attr(trial._trial_id, ERROR_ATTR, error)
        _record_folds(storage, trial._trial_id, run_dir)
        self.finished += 1
        value = None if error is not None else float(job_return._return_value)
        metric = str(config.get("optimized_metric") or "value")
        n = int(config.hydra.sweeper.n_trials)
        print(trial_progress(study, trial.number, metric, value, error, k=self.finished, n=n), flush=True)


def trial_progress(
    study: optuna.Study, number: int, metric: str, value: float | None, error: str | None, *, k: int, n: int
) -> str:
    """ "trial k/N (#number): metric value; best so far value (#number)", the best over the study's
    finished trials and this one (whose value the sweeper has not told the study yet)."""
    import optuna

    scored = [
        (t.value, t.number)
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value) and t.number != number
    ]
    if value is not None:
        scored.append((value, number))
    said = f"{metric} {value:.4f}" if value is not None else f"failed ({error})"
    line = f"trial {k}/{n} (#{number}): {said}"
    if not scored:
        return f"{line}; no trial has a value yet"
    pick = min if study.direction == optuna.study.StudyDirection.MINIMIZE else max
    best, best_number = pick(scored, key=lambda pair: pair[0])
    return f"{line}; best so far {best:.4f} (#{best_number})"


def _record_folds(storage: Any, trial_id: int, run_dir: Path) -> None:
    """The number of folds and each fold's value from the job's `objective.json`, onto its trial."""
    import json

    from zoo.outputs import OBJECTIVE_FILE

    path = run_dir / OBJECTIVE_FILE
    if not path.is_file():
        return
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        folds, values = int(record["folds"]), list(record["values"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:  # JSONDecodeError too
        log.warning("could not read the fold values in %s: %s", path, err)
        return
    storage.set_trial_user_attr(trial_id, FOLDS_ATTR, folds)
    storage.set_trial_user_attr(trial_id, FOLD_VALUES_ATTR, values)
