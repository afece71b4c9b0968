"""`zoo-train`: the Hydra app around `zoo.train.train`, with resume, sweeps' fold objectives,
one-line errors and failure records."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from zoo import registry
from zoo.config_targets import HYDRA_TARGETS
from zoo.console import format_folds, format_table
from zoo.errors import ZooError
from zoo.failures import clear_failure, record_failure
from zoo.outputs import CONFIG_FILE, discard_run_dir
from zoo.resume import SIGTERM_EXIT, Terminated, resumable_checkpoint
from zoo.train import config_dir, objective_value, train, train_folds

log = logging.getLogger(__name__)


def resumed(
    cfg: DictConfig, run_dir: Path, overrides: list[str], *, multirun: bool
) -> tuple[DictConfig, Path]:
    """The saved config and last checkpoint of the interrupted run `resume=` names."""
    if multirun:
        raise ZooError("resume= continues one interrupted run; it cannot be part of a multirun (-m)")
    others = [o for o in overrides if not o.lstrip("+~").startswith(("resume=", "hydra."))]
    if others:
        raise ZooError(
            "resume= continues the run with its own saved config; drop the other overrides: "
            + " ".join(others)
        )
    last = resumable_checkpoint(Path(str(cfg.resume)))
    if Path(str(cfg.resume)).resolve() != run_dir.resolve():
        raise ZooError(f"resume={cfg.resume!r} but the run directory is {str(run_dir)!r}; drop hydra.run.dir")
    saved = OmegaConf.load(run_dir / CONFIG_FILE)
    assert isinstance(saved, DictConfig)
    log.info("resuming %s from %s", run_dir, last)
    return saved, last


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
        before = {entry.name for entry in run_dir.iterdir()} if run_dir.is_dir() else set()
        framework = {str(hydra_cfg.output_subdir), f"{hydra_cfg.job.name}.log"}
        try:
            if multirun:
                check_sweep_job(cfg.trainer)
            folds = 1  # sweep.objective_folds: a run per fold and objective.json
            if cfg.get("resume"):
                cfg, last = resumed(cfg, run_dir, list(hydra_cfg.overrides.task), multirun=multirun)
                result = train(cfg, run_dir, resume_from=last)
            elif (folds := objective_folds(cfg)) > 1:
                result = train_folds(cfg, run_dir, folds)
            else:
                result = train(cfg, run_dir)
        except ZooError as err:
            # Bad input: remove what the run wrote. Anything else (a crash, Ctrl-C, pre-emption)
            # keeps the run directory: its checkpoints hold the training done so far.
            discard_run_dir(run_dir, before, framework)
            print(f"error: {err}", file=sys.stderr)
            if multirun:
                record_failure(hydra_cfg, err)
                raise  # Hydra records the job as failed and the sweep goes on with the others
            sys.exit(2)
        except Terminated as err:
            print(f"error: {err}", file=sys.stderr)
            if multirun:
                record_failure(hydra_cfg, err)
            sys.exit(SIGTERM_EXIT)  # a kill is never a success, for schedulers and `&&` chains alike
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
    _hydra_app()()


if __name__ == "__main__":
    main()
