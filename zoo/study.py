"""`zoo study <storage> <study>`: an Optuna study's trials, best value and parameters, two PNGs, and
the best trial frozen as an experiment config.

    zoo study multirun/sweeps/lr_german/study.db lr_german      # or: zoo study multirun/sweeps/lr_german
    zoo-train --config-dir multirun/sweeps/lr_german/study experiment=lr_german_best

The summary counts trials by state: complete, pruned (Optuna's PRUNED, or a FAIL that zoo's pruning
callback marked with `pruned_at_epoch`, see zoo/pruning.py), failed (with the errors zoo.sweeps
recorded on the last three), running. `<out>/<study>_history.png` is Optuna's optimisation history and
`<out>/<study>_importances.png` its fANOVA parameter importances (needs two complete trials with a
parameter that varies).

The export, `<out>/experiment/<study>_best.yaml` unless `--export PATH`, is an experiment config
(`# @package _global_`): `override /model` and `override /dataset` in its defaults list (from the
study's user attributes, the trial's fixed overrides, or the study name `<model>_<dataset>`), the
trial's other fixed overrides (`trainer=fast` becomes `override /trainer: fast`), its parameters as
nested values (`model.learning_rate=...` becomes `model: {learning_rate: ...}`) and the seed.
`zoo-train` finds experiments in a folder named `experiment/` on Hydra's search path, so
`zoo-train --config-dir <out> experiment=<study>_best` trains the best trial again and reproduces its
validation metric; copying the file into `conf/experiment/` of a source checkout works without
`--config-dir`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from zoo.errors import ZooError
from zoo.manifest import MANIFEST_FILE, seal_problem
from zoo.outputs import OBJECTIVE_FILE, write_atomic, write_text
from zoo.pruning import PRUNED_ATTR
from zoo.sweeps import (
    ERROR_ATTR,
    FOLD_VALUES_ATTR,
    FOLDS_ATTR,
    HOST_ATTR,
    PID_ATTR,
    RUN_DIR_ATTR,
    WORKER_ATTR,
)

if TYPE_CHECKING:
    import optuna

SQLITE_MAGIC = b"SQLite format 3\x00"
#: The storage files `zoo study` looks for in a sweep directory (conf/hparams_search/_optuna.yaml).
STORAGE_FILES = ("study.db", "study.log")
#: Config groups and keys an exported experiment leaves out: the search and its settings, and the
#: experiment slot it fills.
NOT_EXPORTED = ("hparams_search", "experiment", "sweep")
#: Trial user attributes zoo writes (the sweeper's own are the sweep command's fixed overrides).
ZOO_ATTRS = (
    RUN_DIR_ATTR,
    ERROR_ATTR,
    HOST_ATTR,
    PID_ATTR,
    WORKER_ATTR,
    PRUNED_ATTR,
    FOLDS_ATTR,
    FOLD_VALUES_ATTR,
)


def resolve_storage(text: str) -> tuple[Any, str]:
    """The storage a command-line argument names, and how to call it: a database URL, a SQLite or
    Optuna journal file, or a sweep directory holding one (`study.db` or `study.log`)."""
    if "://" in text:
        if text.startswith("sqlite:///"):
            path = Path(text.removeprefix("sqlite:///"))
            if not path.is_file():  # Optuna would create an empty database there
                raise ZooError(f"storage {text!r}: no such file {str(path)!r}")
        return text, text
    path = Path(text)
    if path.is_dir():
        found = [path / name for name in STORAGE_FILES if (path / name).is_file()]
        if len(found) != 1:
            raise ZooError(
                f"storage {text!r} is a directory with {len(found)} of {', '.join(STORAGE_FILES)}; "
                "expected exactly one, or name the file"
            )
        path = found[0]
    if not path.is_file():
        raise ZooError(
            f"storage {text!r}: no such file; expected a database URL (sqlite:///file.db, "
            "postgresql://...), a SQLite or Optuna journal file, or a sweep directory"
        )
    with path.open("rb") as handle:
        if handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC:
            url = f"sqlite:///{path.resolve()}"
            return url, url
        handle.seek(0)
        first = handle.readline()
    import optuna

    try:
        if first and "op_code" not in json.loads(first):  # a journal is one JSON operation a line
            raise ValueError("its first line is not an Optuna journal operation")
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    except (ValueError, TypeError) as err:  # JSONDecodeError is a ValueError
        raise ZooError(
            f"storage {text!r} is neither a SQLite database nor an Optuna journal file ({err})"
        ) from None
    return storage, str(path)


def study_names(storage: Any, label: str) -> list[str]:
    import optuna

    try:
        return sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
    except Exception as err:  # a database that is not Optuna's, a server that refuses, a bad URL
        line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ZooError(f"storage {label!r} cannot be read as an Optuna storage: {line}") from None


def load_study(storage: Any, study_name: str | None, label: str) -> optuna.Study:
    """The study `study_name` in `storage` (the only one there when None); a one-line error otherwise."""
    import optuna

    names = study_names(storage, label)
    if study_name is None:
        if len(names) != 1:
            listed = ", ".join(names) if names else "none"
            raise ZooError(f"storage {label!r} holds {len(names)} studies ({listed}); name one")
        study_name = names[0]
    if study_name not in names:
        listed = ", ".join(names) if names else "none"
        raise ZooError(f"study {study_name!r} not found in {label!r}; studies there: {listed}")
    return optuna.load_study(study_name=study_name, storage=storage)


def _is_pruned(trial: optuna.trial.FrozenTrial) -> bool:
    return trial.state.name == "PRUNED" or (trial.state.name == "FAIL" and PRUNED_ATTR in trial.user_attrs)


def _is_failure(trial: optuna.trial.FrozenTrial) -> bool:
    return trial.state.name == "FAIL" and not _is_pruned(trial)


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Trials by state: complete, pruned, failed, running, waiting, and all of them."""
    counts = dict.fromkeys(("complete", "pruned", "failed", "running", "waiting"), 0)
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        if _is_pruned(trial):
            counts["pruned"] += 1
        elif _is_failure(trial):
            counts["failed"] += 1
        else:
            counts[trial.state.name.lower()] += 1
    counts["total"] = len(trials)
    return counts


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best complete trial of a single-objective study, or None."""
    from optuna.trial import TrialState

    if len(study.directions) > 1 or not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def format_summary(study: optuna.Study, storage_label: str) -> str:
    counts = trial_counts(study)
    directions = ", ".join(d.name.lower() for d in study.directions)
    lines = [
        f"study {study.study_name} in {storage_label} ({directions})",
        f"trials: {counts['total']} (complete {counts['complete']}, pruned {counts['pruned']}, "
        f"failed {counts['failed']}, running {counts['running']}"
        + (f", waiting {counts['waiting']}" if counts["waiting"] else "")
        + ")",
    ]
    failed = [t for t in study.get_trials(deepcopy=False) if _is_failure(t) and ERROR_ATTR in t.user_attrs]
    lines += [f"  trial {t.number} failed: {t.user_attrs[ERROR_ATTR]}" for t in failed[-3:]]
    best = best_trial(study)
    if best is None:
        reason = "several objectives" if len(study.directions) > 1 else "no complete trial"
        lines.append(f"best: none ({reason})")
        return "\n".join(lines)
    lines.append(f"best: trial {best.number}, value {best.value:.6f}")
    if FOLD_VALUES_ATTR in best.user_attrs:  # sweep.objective_folds: the value is their mean
        values = ", ".join("-" if v is None else f"{v:.6f}" for v in best.user_attrs[FOLD_VALUES_ATTR])
        lines.append(f"  mean of {best.user_attrs.get(FOLDS_ATTR)} folds: {values}")
    lines += [f"  {name} = {value}" for name, value in best.params.items()]
    if RUN_DIR_ATTR in best.user_attrs:
        run_dir = str(best.user_attrs[RUN_DIR_ATTR])
        lines.append(f"  run directory: {run_dir}{_seal_note(Path(run_dir))}")
    return "\n".join(lines)


def _seal_note(run_dir: Path) -> str:
    """` (not a sealed run: <reason>)` when the best trial's run directory is here but no manifest
    that verifies seals it (or, for a trial over folds, one of its folds); "" otherwise, also when
    the directory is on another machine. The value above comes from the study, not from the run."""
    if not run_dir.is_dir():
        return ""
    runs = [run_dir]
    if (run_dir / OBJECTIVE_FILE).is_file() and not (run_dir / MANIFEST_FILE).is_file():
        try:  # a trial over folds: its folds are the runs
            runs = [run_dir / str(d) for d in json.loads((run_dir / OBJECTIVE_FILE).read_text())["run_dirs"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            return f" (not a sealed run: {OBJECTIVE_FILE} unreadable: {err})"
    for run in runs:
        problem = seal_problem(run)
        if problem is not None:
            where = "" if run == run_dir else f"{run.name}: "
            return f" (not a sealed run: {where}{problem})"
    return ""


@contextlib.contextmanager
def _matplotlib() -> Iterator[Any]:
    """pyplot on the Agg backend, with Optuna's style change undone afterwards."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.exceptions import ExperimentalWarning

    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # Optuna marks its matplotlib plots so
        yield plt


def _save(ax: Any, path: Path, plt: Any) -> Path:
    fig = ax.figure
    fig.set_size_inches(7.0, 4.5)
    fig.tight_layout()
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    finally:
        plt.close(fig)


def retitle(ax: Any, title: str) -> None:
    """Replace Optuna's title, wherever Optuna placed it (left, centre or right), by `title`: a
    matplotlib axis holds one title per position, and setting one leaves the others drawn."""
    for loc in ("left", "right"):
        ax.set_title("", loc=loc)
    ax.set_title(title)


def plot_history(study: optuna.Study, path: Path) -> Path | None:
    """Optuna's optimisation history (every complete trial's value and the best so far) as a PNG."""
    if best_trial(study) is None:
        return None
    from optuna.visualization.matplotlib import plot_optimization_history

    with _matplotlib() as plt:
        ax = plot_optimization_history(study)
        retitle(ax, f"{study.study_name}: optimisation history")
        return _save(ax, path, plt)


def importances_note(study: optuna.Study) -> str | None:
    """Why parameter importances cannot be computed, or None when they can."""
    from optuna.trial import TrialState

    if len(study.directions) > 1:
        return "several objectives"
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return f"{len(complete)} complete trial(s), at least 2 needed"
    names = {name for trial in complete for name in trial.params}
    if not any(len({repr(t.params.get(name)) for t in complete}) > 1 for name in names):
        return "no parameter varies across the complete trials"
    return None


def plot_importances(study: optuna.Study, path: Path) -> tuple[Path | None, str | None]:
    """fANOVA parameter importances (seeded) as a PNG; (None, why) when they cannot be computed."""
    note = importances_note(study)
    if note is not None:
        return None, note
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization.matplotlib import plot_param_importances

    with _matplotlib() as plt:
        try:
            ax = plot_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
        except (ValueError, RuntimeError) as err:  # e.g. zero variance of the objective
            plt.close("all")
            return None, str(err).strip().splitlines()[0]
        retitle(ax, f"{study.study_name}: parameter importances (fANOVA)")
        return _save(ax, path, plt), None


# -- best trial -> experiment config --------------------------------------------------------------


def _config_groups() -> set[str]:
    from zoo.train import config_dir

    return {entry.name for entry in config_dir().iterdir() if entry.is_dir()} | {"model", "dataset"}


def _model_and_dataset(study_name: str) -> tuple[str | None, str | None]:
    """Split a study name `<model>_<dataset>` on installed model and dataset names."""
    from zoo import registry
    from zoo.train import config_dir

    datasets = {path.stem for path in (config_dir() / "dataset").glob("*.yaml")}
    for model in registry.names():
        rest = study_name.removeprefix(f"{model}_")
        if rest != study_name and rest in datasets:
            return model, rest
    return None, None


def _default_seed() -> int:
    from zoo.train import config_dir

    return int(OmegaConf.load(config_dir() / "config.yaml").seed)


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def best_config(study: optuna.Study, name: str) -> dict[str, Any]:
    """The best trial as an experiment config: group choices in `defaults`, values as nested keys."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    best = best_trial(study)
    if best is None:
        raise ZooError(f"study {study.study_name!r} has no complete trial to export")
    # The sweeper launched the trial with these overrides: its parameters, then its fixed overrides
    # (the sweep command's own, kept as user attributes), each as `name=value` text.
    lines = [f"{key}={value}" for key, value in best.params.items()]
    lines += [
        f"{key}={value}"
        for key, value in best.user_attrs.items()
        if key not in ZOO_ATTRS and isinstance(value, str)  # the sweeper stores them as text
    ]
    groups = _config_groups()
    choices: dict[str, str] = {}
    values: dict[str, Any] = {}
    parser = OverridesParser.create()
    included: list[str] = []
    for override in parser.parse_overrides(lines):
        key = override.key_or_group
        if key == "experiment":  # the sweep ran on an experiment: this one builds on it
            included.append(f"/experiment/{override.value()}")
        if key.split("/")[0].split(".")[0] in NOT_EXPORTED:
            continue
        if "/" in key or (key in groups and override.package is None):
            choices[key] = str(override.value())
        else:
            values[key] = override.value()
    model, dataset = _model_and_dataset(study.study_name)
    model = choices.get("model") or study.user_attrs.get("model") or model
    model = model or best.user_attrs.get("hparams_search")
    dataset = choices.get("dataset") or study.user_attrs.get("dataset") or dataset
    ordered = {"model": model, "dataset": dataset, **choices}
    seed = values.pop("seed", study.user_attrs.get("seed", _default_seed()))
    config: dict[str, Any] = {
        "defaults": [
            *included,
            *({f"override /{group}": choice} for group, choice in ordered.items() if choice),
        ],
        "experiment_name": name,
        "seed": seed,
    }
    for key, value in values.items():
        _set_dotted(config, key, value)
    return config


def reproduce_command(path: Path) -> str:
    """The `zoo-train` command that runs an experiment config written at `path`."""
    from zoo.train import config_dir

    path = Path(path)
    if path.parent.name != "experiment":
        return f"copy {path} into a folder named experiment/ and pass its parent as zoo-train --config-dir"
    root = path.parent.parent
    if root.resolve() == config_dir().resolve():
        return f"zoo-train experiment={path.stem}"
    return f"zoo-train --config-dir {root} experiment={path.stem}"


def write_best_config(study: optuna.Study, path: Path, storage_label: str = "") -> Path:
    """Write the best trial as an experiment config at `path` (named after the file)."""
    path = Path(path)
    config = best_config(study, path.stem)  # a ZooError when the study has no complete trial
    best = best_trial(study)
    assert best is not None
    header = [
        "# @package _global_",
        f"# Best trial ({best.number}, value {best.value!r}) of Optuna study {study.study_name!r}"
        + (f" in {storage_label}" if storage_label else "")
        + ", written by `zoo study`.",
        f"# Train it again: {reproduce_command(path)}",
    ]
    return write_text(path, "\n".join(header) + "\n" + OmegaConf.to_yaml(config))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="zoo study",
        description="Summarise an Optuna study; plot its history and parameter importances; "
        "export its best trial as an experiment config.",
    )
    parser.add_argument(
        "storage", help="database URL (sqlite:///f.db, postgresql://...), SQLite/journal file or sweep dir"
    )
    parser.add_argument("study", nargs="?", help="study name (default: the only study in the storage)")
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for the PNGs and experiment/ (default: the storage file's folder "
        "+ /study, or ./study for a server)",
    )
    parser.add_argument(
        "--export", type=Path, help="experiment config to write (default: <out>/experiment/<study>_best.yaml)"
    )
    args = parser.parse_args(argv)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    try:
        storage, label = resolve_storage(args.storage)
        study = load_study(storage, args.study, label)
    except ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_summary(study, label))
    out = args.out
    if out is None:
        local = label.removeprefix("sqlite:///")
        out = (Path(local).parent if "://" not in local else Path.cwd()) / "study"
    name = study.study_name
    history = plot_history(study, out / f"{name}_history.png")
    print(f"history: {history}" if history else "history: none (no complete trial)")
    importances, note = plot_importances(study, out / f"{name}_importances.png")
    print(f"importances: {importances}" if importances else f"importances: none ({note})")
    if best_trial(study) is None:
        print("best config: none (no complete trial)")
        return 0
    export = args.export or out / "experiment" / f"{name}_best.yaml"
    write_best_config(study, export, label)
    print(f"best config: {export}")
    print(f"  train it again: {reproduce_command(export)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
