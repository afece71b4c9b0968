"""`zoo-train`: the Hydra app around `zoo.train.train`, with resume, sweeps' fold objectives,
one-line errors and failure records."""

from __future__ import annotations

import copy
import errno
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

from omegaconf import DictConfig, OmegaConf

from zoo import registry
from zoo.config_targets import HYDRA_TARGETS
from zoo.console import format_folds, format_table
from zoo.errors import ZooError
from zoo.failures import clear_failure, record_failure
from zoo.outputs import CONFIG_FILE, discard_run_dir
from zoo.resume import SIGTERM_EXIT, ResumePoint, Terminated, resume_point, sigterm_raises
from zoo.run_state import RunDirRefused, check_new_run_dir, check_resumable, child_rank
from zoo.settings import check_dataset_name
from zoo.train import config_dir, objective_value, train, train_folds

log = logging.getLogger(__name__)


def resumed(
    cfg: DictConfig, run_dir: Path, overrides: list[str], *, multirun: bool
) -> tuple[DictConfig, ResumePoint]:
    """The saved config of the interrupted run `resume=` names, and where it continues."""
    if multirun:
        raise ZooError("resume= continues one interrupted run; it cannot be part of a multirun (-m)")
    others = [o for o in overrides if not o.lstrip("+~").startswith(("resume=", "hydra."))]
    if others:
        raise ZooError(
            "resume= continues the run with its own saved config; drop the other overrides: "
            + " ".join(others)
        )
    point = resume_point(Path(str(cfg.resume)))
    if Path(str(cfg.resume)).resolve() != run_dir.resolve():
        raise ZooError(f"resume={cfg.resume!r} but the run directory is {str(run_dir)!r}; drop hydra.run.dir")
    saved = OmegaConf.load(run_dir / CONFIG_FILE)
    assert isinstance(saved, DictConfig)
    log.info("resuming %s from %s", run_dir, point.checkpoint or "its start")
    return saved, point


#: What writing a file may fail with for reasons outside the run: a full disk or quota, a
#: read-only file system, no permission.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)

#: Command-line flags with which Hydra prints or lists and runs no job.
NO_JOB_FLAGS = ("--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc")


def _override(argv: list[str], key: str) -> str | None:
    """The value `key=` is given on the command line (`+`/`++` forms too), the last one wins."""
    value = None
    for arg in argv:
        name, sep, rest = arg.lstrip("+").partition("=")
        if sep and name == key:
            value = rest
    return value


#: `hydra.*` keys that build or run code (callbacks, logging factories and handler classes, the
#: sweeper's and launcher's classes): chosen through config groups (`hydra/sweeper=optuna`), never
#: set key by key on the command line.
CODE_KEYS = ("hydra.callbacks", "hydra.job_logging", "hydra.hydra_logging", "hydra.sweeper._target_",
             "hydra.launcher._target_")  # fmt: skip


def check_hydra_overrides(argv: list[str]) -> None:
    """Refuse a command-line override of a `hydra.*` key that would build or run code."""
    for arg in argv:
        key = arg.lstrip("+~").partition("=")[0]
        if any(key == k or key.startswith(f"{k}.") for k in CODE_KEYS):
            raise ZooError(
                f"{key} cannot be set on the command line: it builds or runs code; choose a config "
                "group instead (hydra/job_logging=..., hydra/sweeper=..., hydra/launcher=...)"
            )


def check_run_dir_first(argv: list[str]) -> None:
    """Before Hydra writes anything (its `.hydra/` record, the job log): refuse a single run whose
    directory is given on the command line and may not be written, i.e. an existing non-empty one
    for a new run, anything but an interrupted run for `resume=`."""
    if child_rank() or any(a in NO_JOB_FLAGS or a.startswith(("--cfg=", "--info=")) for a in argv):
        return
    if "-m" in argv or "--multirun" in argv:
        return  # each job checks its own directory
    resume = _override(argv, "resume")
    if resume not in (None, "", "null", "None"):
        check_resumable(Path(str(resume)))
        return
    run_dir = _override(argv, "hydra.run.dir")
    if run_dir and "${" not in run_dir:  # an interpolated one is checked by the job
        check_new_run_dir(Path(run_dir))


def _resolve(cfg: DictConfig) -> None:
    """Resolve every interpolation once, so a loop or a bad one is one line naming the key."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.resolve(copy.deepcopy(cfg))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ZooError(f"config{f' key {key!r}' if key else ''}: {first}") from None
    except RecursionError:
        raise ZooError("config: an interpolation refers to itself (a loop); expected values") from None


def _hydra_app() -> Any:
    import hydra

    @hydra.main(
        config_path=str(config_dir()),
        config_name="config",
        execution_whitelist=list(HYDRA_TARGETS),
    )
    def run(cfg: DictConfig) -> float:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from zoo.sweeps import check_sweep_job, objective_folds

        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        multirun = hydra_cfg.mode == RunMode.MULTIRUN

        def stop(err: BaseException, message: str, code: int) -> NoReturn:
            """One `error:` line, then exit with `code`. In a multirun the job's failure is recorded
            and Hydra goes on with the other jobs, except after SIGTERM, which stops the sweep."""
            print(f"error: {message}", file=sys.stderr)
            if multirun:
                record_failure(hydra_cfg, err)
                if code != SIGTERM_EXIT:
                    raise err
            sys.exit(code)

        before = {entry.name for entry in run_dir.iterdir()} if run_dir.is_dir() else set()
        framework = {str(hydra_cfg.output_subdir), f"{hydra_cfg.job.name}.log"}
        try:
            if multirun:
                check_sweep_job(cfg.trainer)
            _resolve(cfg)
            folds = 1  # sweep.objective_folds: a run per fold and objective.json
            if cfg.get("resume"):
                cfg, point = resumed(cfg, run_dir, list(hydra_cfg.overrides.task), multirun=multirun)
                result = train(cfg, run_dir, resume=point)
            elif (folds := objective_folds(cfg)) > 1:
                result = train_folds(cfg, run_dir, folds)
            else:
                result = train(cfg, run_dir)
        except RunDirRefused as err:  # another run's directory: nothing in it is touched
            stop(err, str(err), 2)
        except ZooError as err:
            # Bad input: remove what the run wrote. Anything else (a crash, Ctrl-C, pre-emption)
            # keeps the run directory: its checkpoints hold the training done so far.
            discard_run_dir(run_dir, before, framework)
            stop(err, str(err), 2)
        except Terminated as err:
            stop(err, str(err), SIGTERM_EXIT)  # a kill is never a success, nor is the sweep's rest run
        except OSError as err:
            if err.errno not in WRITE_ERRNOS:
                if multirun:
                    record_failure(hydra_cfg, err)
                raise
            # A full disk or a read-only place: the machine's state, not a bug; the run is failed.
            stop(err, f"could not write {err.filename or run_dir}: {err.strerror}; the run failed", 1)
        except Exception as err:
            if multirun:
                record_failure(hydra_cfg, err)
            raise
        if multirun:
            clear_failure(hydra_cfg)
        if not result:
            return float("nan")
        if folds > 1:
            print(format_folds(result))
            print(f"run directories: {run_dir}/fold<0..{folds - 1}>")
            return float("nan") if result["mean"] is None else float(result["mean"])
        print(format_table(result))
        print(f"run directory: {run_dir}")
        # NaN when pruned by Optuna: the sweeper records the trial as failed
        return objective_value(result, str(cfg.optimized_metric))

    return run


def main() -> None:
    """Console entry point: register plugin configs and the sweep resolvers, then hand over to Hydra."""
    from zoo.sweeps import register_resolvers

    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    registry.store_configs(config_dir(), only=registry.chosen_models(sys.argv[1:]))
    register_resolvers()
    try:
        check_hydra_overrides(sys.argv[1:])
        name = _override(sys.argv[1:], "dataset.name")
        if name is not None:  # part of the default run directory's name, which Hydra makes first
            check_dataset_name(OmegaConf.create({"dataset": {"name": name}}))
        check_run_dir_first(sys.argv[1:])
    except ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    with sigterm_raises():
        _hydra_app()()


if __name__ == "__main__":
    main()
