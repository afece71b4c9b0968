"""Leaderboard of finished runs: collect metrics.json files, summarise over seeds, write md/csv/png.

Turns a Hydra multirun directory into the tables and figure that compare models per dataset.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, cast

import numpy as np
import pandas as pd

from zoo.errors import ZooError

SPLITS = ("train", "val", "test")
DEFAULT_METRICS = ["auc", "ks", "f1", "brier"]
LOWER_IS_BETTER = frozenset({"brier", "logloss", "ece"})
"""Metrics where smaller is better: they sort ascending and their panels say so."""

_RUN_FIELDS = (
    "model",
    "dataset",
    "variant",
    "seed",
    "fold",
    "experiment",
    "threshold",
    "threshold_method",
    "fit_seconds",
)


@dataclass(frozen=True)
class Leaderboard:
    """What write_leaderboard produced: Markdown text, per-(dataset, model) summary, files."""

    markdown: str
    summary: pd.DataFrame
    paths: dict[str, Path]


REPLICATE_KEYS = frozenset({"seed", "data.fold"})
"""Config keys whose runs are repeats of one setting, summarised together (mean ± std)."""


@dataclass(frozen=True)
class _Run:
    """One readable metrics.json: where it is and what it holds."""

    path: Path
    data: dict


# --- collecting


def collect_runs(root: Path) -> pd.DataFrame:
    """One row per metrics.json under root (any depth), split metrics flattened as `test/auc`.

    Unreadable files are skipped with a RuntimeWarning so one crashed run does not sink a multirun;
    so are runs an Optuna pruner stopped early (`pruned_at_epoch`), which are not finished models.
    """
    return _runs_frame(_read_runs(Path(root)))


def _read_runs(root: Path) -> list[_Run]:
    """Read every metrics.json under root; warn about and skip unreadable ones, fail if none is."""
    if not root.exists():
        raise ZooError(f"runs directory not found: {root}")
    if not root.is_dir():
        raise ZooError(f"expected a runs directory, got a file: {root}")
    files = sorted(root.rglob("metrics.json"))
    if not files:
        raise ZooError(f"no metrics.json found under {root}")
    runs, pruned = [], 0
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            _check_run(data)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ZooError) as err:
            warnings.warn(f"skipping unreadable {path}: {err}", RuntimeWarning, stacklevel=3)
            continue
        if data.get("pruned_at_epoch") is not None:
            pruned += 1  # stopped early by an Optuna pruner: its metrics are of an unfinished model
            continue
        runs.append(_Run(path, data))
    if pruned:
        warnings.warn(f"skipping {pruned} runs pruned by an Optuna study", RuntimeWarning, stacklevel=3)
    if not runs:
        raise ZooError(f"none of the {len(files)} metrics.json files under {root} is readable and unpruned")
    return runs


def _check_run(data: object) -> None:
    """Raise ZooError unless data looks like a run's metrics.json."""
    if not isinstance(data, dict):
        raise ZooError(f"expected a JSON object, got {type(data).__name__}")
    for key in ("model", "dataset"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ZooError(f"expected a non-empty string for {key!r}, got {data.get(key)!r}")
    for split in SPLITS:
        block = data.get(split)
        if block is None:
            continue
        if not isinstance(block, dict):
            kind = type(block).__name__
            raise ZooError(f"expected an object of metrics for {split!r}, got {kind}")
        for name, value in block.items():
            if not _is_number_or_none(value):
                raise ZooError(f"expected a number for {split}/{name}, got {value!r}")


def _is_number_or_none(value: object) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _flat_config(run: _Run) -> dict[str, str] | None:
    """The run's resolved config.yaml (beside metrics.json) as {dotted key: value text}, or None."""
    import yaml

    path = run.path.parent / "config.yaml"
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(config, dict):
        return None
    flat: dict[str, str] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            flat[prefix] = json.dumps(value, sort_keys=True, default=str)

    walk("", config)
    return flat


def _variants(runs: Sequence[_Run]) -> list[str]:
    """Per run, the config settings that set it apart from the other runs of its (dataset, model),
    e.g. `use_crosses=true, data.batch_size=512`; "" when they all share one config.

    Seeds and folds are repeats (REPLICATE_KEYS), not variants. Without this, a sweep over a
    model's hyperparameters would silently average different settings into one row.
    """
    configs = [_flat_config(run) for run in runs]
    groups: dict[tuple[str, str], list[int]] = {}
    for i, run in enumerate(runs):
        groups.setdefault((run.data["dataset"], run.data["model"]), []).append(i)
    labels = [""] * len(runs)
    for members in groups.values():
        known = [i for i in members if configs[i] is not None]
        keys = sorted({key for i in known for key in configs[i] or {}} - REPLICATE_KEYS)
        differing = [k for k in keys if len({(configs[i] or {}).get(k) for i in known}) > 1]
        for i in known:
            config = configs[i] or {}
            parts = [f"{k.removeprefix('model.')}={_override_text(config.get(k, 'null'))}" for k in differing]
            labels[i] = ", ".join(parts)
    return labels


def _override_text(text: str) -> str:
    """A JSON value as Hydra override syntax writes it: true, null, 0.001, adam, [256,128]."""
    value = json.loads(text)
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _runs_frame(runs: Sequence[_Run]) -> pd.DataFrame:
    """Flatten runs into a DataFrame: run fields, then `<split>/<metric>` columns, then run_dir."""
    rows = []
    for run, variant in zip(runs, _variants(runs), strict=True):
        row = {field: run.data.get(field) for field in _RUN_FIELDS}
        row["variant"] = variant
        for split in SPLITS:
            for name, value in (run.data.get(split) or {}).items():
                row[f"{split}/{name}"] = np.nan if value is None else float(value)
        row["run_dir"] = str(run.path.parent)
        rows.append(row)
    frame = pd.DataFrame(rows)
    metric_cols = sorted(
        (c for c in frame.columns if "/" in c), key=lambda c: (SPLITS.index(c.split("/", 1)[0]), c)
    )
    return frame[[*_RUN_FIELDS, *metric_cols, "run_dir"]]


# --- summarising


def available_metrics(runs: pd.DataFrame, split: str = "test") -> list[str]:
    """Metric names recorded for split in a collect_runs frame (e.g. ['accuracy', 'auc', ...])."""
    prefix = f"{split}/"
    return sorted(c[len(prefix) :] for c in runs.columns if c.startswith(prefix))


def summarise(runs: pd.DataFrame, metrics: Sequence[str], split: str = "test") -> pd.DataFrame:
    """Per (dataset, model, variant): n_seeds (runs) and each metric's mean and sample std
    (ddof=1) over seeds (and folds).

    One seed gives std NaN (undefined), not 0. Rows sort by dataset, then by the first metric best
    first: descending, or ascending for LOWER_IS_BETTER metrics such as brier.
    """
    metrics = _check_metrics(runs, metrics, split)
    runs = runs.copy()
    if "variant" not in runs.columns:
        runs["variant"] = ""
    if "fold" not in runs.columns:
        runs["fold"] = None
    runs["variant"] = runs["variant"].fillna("")
    keys = ["dataset", "model", "variant", "seed", "fold"]
    dupes = runs[runs["seed"].notna()].duplicated(keys)
    if dupes.any():
        warnings.warn(
            f"{int(dupes.sum())} runs repeat a (dataset, model, variant, seed, fold) already seen;"
            " each counts towards n_seeds",
            RuntimeWarning,
            stacklevel=2,
        )
    groups = runs.groupby(["dataset", "model", "variant"], sort=True)
    summary = groups.size().rename("n_seeds").to_frame()
    for metric in metrics:
        values = groups[f"{split}/{metric}"]
        summary[f"{metric}_mean"] = values.mean()
        summary[f"{metric}_std"] = values.std(ddof=1)
    summary = summary.reset_index()
    first = metrics[0]
    ascending = first in LOWER_IS_BETTER
    summary = summary.sort_values(
        ["dataset", f"{first}_mean", "model", "variant"],
        ascending=[True, ascending, True, True],
        na_position="last",
        kind="stable",
    )
    return summary.reset_index(drop=True)


def _check_metrics(runs: pd.DataFrame, metrics: Sequence[str], split: str) -> list[str]:
    """Return metrics as a list, or raise ZooError naming a bad name and the available ones."""
    if isinstance(metrics, str):
        raise ZooError(f"expected a list of metric names, got the string {metrics!r}")
    metrics = list(metrics)
    if not metrics:
        raise ZooError("expected at least one metric name, got none")
    if runs.empty:
        raise ZooError("expected at least one run to summarise, got an empty table")
    available = available_metrics(runs, split)
    if not available:
        splits = [s for s in SPLITS if available_metrics(runs, s)]
        raise ZooError(f"unknown split {split!r}; available: {', '.join(splits) or 'none'}")
    unknown = [m for m in metrics if m not in available]
    if unknown:
        raise ZooError(
            f"unknown metric {', '.join(map(repr, unknown))} for split {split!r};"
            f" available: {', '.join(available)}"
        )
    if len(set(metrics)) != len(metrics):
        raise ZooError(f"expected distinct metric names, got {metrics}")
    return metrics


# --- Markdown


def format_markdown(
    summary: pd.DataFrame,
    metrics: Sequence[str],
    reference: Mapping[str, Mapping[str, float | None]] | None = None,
) -> str:
    """Markdown table, one row per (dataset, model), cells `mean ± std` to 4 decimals.

    reference ({model: {metric: value or None}}, a paper's figures) adds `paper <metric>` columns.
    """
    metrics = list(metrics)
    _check_summary(summary, metrics)
    if reference is not None:
        _check_reference(reference)
    header = ["dataset", "model", "seeds"]
    for metric in metrics:
        header.append(metric)
        if reference is not None:
            header.append(f"paper {metric}")
    lines = [_md_row(header), _md_row(["---", "---", "---:"] + ["---:"] * (len(header) - 3))]
    for row in summary.to_dict("records"):
        cells = [str(row["dataset"]), model_label(row), str(row["n_seeds"])]
        for metric in metrics:
            cells.append(_mean_std(row[f"{metric}_mean"], row[f"{metric}_std"]))
            if reference is not None:
                paper = (reference.get(row["model"]) or {}).get(metric)
                cells.append("" if paper is None else f"{paper:.4f}")
        lines.append(_md_row(cells))
    return "\n".join(lines) + "\n"


def model_label(row: Mapping[str, object]) -> str:
    """`model`, or `model [variant]` when a sweep ran the model with several settings."""
    variant = row.get("variant")
    return f"{row['model']} [{variant}]" if isinstance(variant, str) and variant else str(row["model"])


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _mean_std(mean: float, std: float) -> str:
    """`0.7812 ± 0.0123`; the mean alone when std is undefined (one seed); `n/a` with no value."""
    if mean is None or math.isnan(mean):
        return "n/a"
    if std is None or math.isnan(std):
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {std:.4f}"


def _check_summary(summary: pd.DataFrame, metrics: Sequence[str]) -> None:
    """Raise ZooError unless summary is a summarise() table holding every metric asked for."""
    if not metrics:
        raise ZooError("expected at least one metric name, got none")
    missing = [c for c in ("dataset", "model", "n_seeds") if c not in summary.columns]
    if missing:
        raise ZooError(f"expected a summarise() table, got one without columns {missing}")
    have = [c[: -len("_mean")] for c in summary.columns if c.endswith("_mean")]
    unknown = [m for m in metrics if m not in have]
    if unknown:
        raise ZooError(
            f"unknown metric {', '.join(map(repr, unknown))} for this summary; available: {', '.join(have)}"
        )


def _check_reference(reference: object) -> None:
    """Raise ZooError unless reference is {model: {metric: number or None}}."""
    if not isinstance(reference, Mapping):
        kind = type(reference).__name__
        raise ZooError(f"expected reference as {{model: {{metric: value}}}}, got {kind}")
    for model, figures in reference.items():
        if not isinstance(figures, Mapping):
            raise ZooError(f"expected reference[{model!r}] as {{metric: value}}, got {figures!r}")
        for metric, value in figures.items():
            if not _is_number_or_none(value):
                where = f"reference[{model!r}][{metric!r}]"
                raise ZooError(f"expected a number or null for {where}, got {value!r}")


# --- figure


def plot_bars(summary: pd.DataFrame, metrics: Sequence[str], out_path: Path) -> Path:
    """PNG, one panel per metric: bars per model grouped by dataset, sample-std error bars.

    Drawn on an Agg canvas without pyplot (no display, no global backend switch); atomic write.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = list(metrics)
    _check_summary(summary, metrics)
    out_path = Path(out_path)
    datasets = sorted(summary["dataset"].unique())
    summary = summary.assign(label=[model_label(row) for row in summary.to_dict("records")])
    models = sorted(summary["label"].unique())
    colours = _palette(len(models))
    width = 0.8 / len(models)

    panel_w = max(4.0, 1.2 + 0.35 * len(datasets) * len(models))
    ncols = 1 if panel_w > 7 else min(len(metrics), 2)  # wide panels stack rather than sprawl
    nrows = math.ceil(len(metrics) / ncols)
    fig = Figure(figsize=(panel_w * ncols, 3.4 * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics, strict=False):
        for i, model in enumerate(models):
            rows = summary[summary["label"] == model].set_index("dataset").reindex(datasets)
            xs = np.arange(len(datasets)) + (i - (len(models) - 1) / 2) * width
            ax.bar(
                xs,
                rows[f"{metric}_mean"].to_numpy(dtype=float),
                width,
                yerr=rows[f"{metric}_std"].to_numpy(dtype=float),  # NaN (one seed): no bar
                capsize=3,
                color=colours[i],
                edgecolor="black",
                linewidth=0.5,
                error_kw={"elinewidth": 1.0, "ecolor": "black"},
                label=model,
            )
        direction = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        ax.set_title(f"{metric} ({direction})", fontsize=10)
        ax.set_xticks(np.arange(len(datasets)), datasets, rotation=20 if len(datasets) > 3 else 0)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=min(len(models), 6),
        fontsize=9,
        title="model",
    )
    _write_atomic(out_path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    return out_path


def plot_tradeoff(summary: pd.DataFrame, x: str, y: str, out_path: Path) -> Path:
    """PNG, one panel per dataset: `y` against `x` (means, sample-std error bars), one line per
    model through its variants, e.g. AUC against the number of rules as a sweep varies K_max."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _check_summary(summary, [x, y])
    out_path = Path(out_path)
    summary = summary.dropna(subset=[f"{x}_mean", f"{y}_mean"])
    if summary.empty:
        raise ZooError(f"no run records both {x!r} and {y!r}; nothing to plot")
    datasets = sorted(summary["dataset"].unique())
    models = sorted(summary["model"].unique())
    colours = dict(zip(models, _palette(len(models)), strict=True))
    fig = Figure(figsize=(4.6 * len(datasets), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(datasets), squeeze=False).ravel()
    for ax, dataset in zip(axes, datasets, strict=True):
        for model in models:
            rows = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
            rows = rows.sort_values(f"{x}_mean")
            if rows.empty:
                continue
            ax.errorbar(
                rows[f"{x}_mean"].to_numpy(dtype=float),
                rows[f"{y}_mean"].to_numpy(dtype=float),
                xerr=rows[f"{x}_std"].to_numpy(dtype=float),
                yerr=rows[f"{y}_std"].to_numpy(dtype=float),
                marker="o",
                capsize=3,
                color=colours[model],
                label=model,
            )
        ax.set_title(dataset, fontsize=10)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(models), 6), fontsize=9)
    _write_atomic(out_path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    return out_path


def _palette(n: int) -> list:
    """n distinct colours: tab10 while it lasts, then evenly spaced viridis."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    return [colormaps["viridis"](x) for x in np.linspace(0, 1, n)]


# --- writing


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Call write(tmp) on a temp path beside path, then os.replace it in: never a partial file.

    write creates tmp itself, so the file gets the usual umask permissions (mkstemp's are 0600).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_leaderboard(
    root: Path,
    metrics: Sequence[str] | None = None,
    split: str = "test",
    out_dir: Path | None = None,
    reference: Mapping[str, Mapping[str, float | None]] | None = None,
) -> Leaderboard:
    """Collect runs under root; write leaderboard.md, .csv, .png atomically into out_dir (or root).

    metrics default to the runs' `experiment_metrics`, else DEFAULT_METRICS; reference to their
    `reference` mapping (an experiment config can carry a paper's published figures). Each of the
    runs' `experiment_charts` metrics also gets a chart of its own, leaderboard_<metric>.png;
    `experiment_tradeoff: [x, y]` adds leaderboard_<y>_vs_<x>.png (`plot_tradeoff`).
    """
    root = Path(root)
    runs = _read_runs(root)
    frame = _runs_frame(runs)
    if metrics is None:
        from_runs = _from_runs(runs, "experiment_metrics", _check_metric_list)
        metrics = cast(list[str], from_runs) if from_runs is not None else DEFAULT_METRICS
    if reference is None:
        reference = cast(dict | None, _from_runs(runs, "reference", _check_reference))
    summary = summarise(frame, metrics, split)
    table = format_markdown(summary, metrics, reference)
    markdown = f"Leaderboard: {split} split, mean ± sample std over seeds.\n\n{table}"

    out_dir = root if out_dir is None else Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / f"leaderboard.{kind}" for kind in ("md", "csv", "png")}
    _write_atomic(paths["md"], lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
    _write_atomic(paths["csv"], lambda tmp: summary.to_csv(tmp, index=False))
    plot_bars(summary, metrics, paths["png"])
    charts = cast(list[str], _from_runs(runs, "experiment_charts", _check_metric_list) or [])
    for metric in charts:
        chart = summary if metric in metrics else summarise(frame, [metric], split)
        paths[f"png_{metric}"] = plot_bars(chart, [metric], out_dir / f"leaderboard_{metric}.png")
    tradeoff = cast(list[str] | None, _from_runs(runs, "experiment_tradeoff", _check_metric_list))
    if tradeoff:
        if len(tradeoff) != 2:
            raise ZooError(f"experiment_tradeoff {tradeoff} names {len(tradeoff)} metrics, expected [x, y]")
        x, y = tradeoff
        name = f"leaderboard_{y}_vs_{x}"
        paths[f"png_{y}_vs_{x}"] = plot_tradeoff(
            summarise(frame, [y, x], split), x, y, out_dir / f"{name}.png"
        )
    return Leaderboard(markdown=markdown, summary=summary, paths=paths)


def _from_runs(runs: Sequence[_Run], key: str, check: Callable[[object], None]) -> object | None:
    """The runs' value for an experiment-level key (first found); warn when runs disagree."""
    found = [(run.path, run.data[key]) for run in runs if run.data.get(key) is not None]
    if not found:
        return None
    path, value = found[0]
    try:
        check(value)
    except ZooError as err:
        raise ZooError(f"bad {key!r} in {path}: {err}") from None
    others = [p for p, v in found[1:] if v != value]
    if others:
        message = f"runs disagree about {key!r}; using the one in {path}, not {others[0]}"
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    return value


def _check_metric_list(value: object) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(m, str) and m for m in value):
        raise ZooError(f"expected a non-empty list of metric names, got {value!r}")


# --- CLI


class _ArgumentParser(argparse.ArgumentParser):
    """Raises on bad arguments instead of exiting, so main reports one line and returns 2."""

    def error(self, message: str) -> NoReturn:
        raise ZooError(message)


def _parse_metrics(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated metric names, got {text!r}")
    return names


def main(argv: list[str] | None = None) -> int:
    """`zoo leaderboard <multirun dir>`: print the table and paths written; 2 on a user error."""
    parser = _ArgumentParser(
        prog="zoo leaderboard", description="Summarise a multirun directory into a leaderboard."
    )
    parser.add_argument("root", type=Path, help="directory of run dirs (metrics.json, any depth)")
    parser.add_argument(
        "--metrics", type=_parse_metrics, help="comma-separated, e.g. auc,precision,recall,f1"
    )
    parser.add_argument("--split", default="test", help="split whose metrics to rank (default: test)")
    parser.add_argument("--out", type=Path, help="directory to write to (default: the runs dir)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    except ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            board = write_leaderboard(args.root, args.metrics, args.split, args.out)
        except (ZooError, OSError) as err:
            _print_warnings(caught)
            print(f"error: {err}", file=sys.stderr)
            return 2
    _print_warnings(caught)
    print(board.markdown)
    for path in board.paths.values():
        print(f"wrote {path}")
    return 0


def _print_warnings(caught: Sequence[warnings.WarningMessage]) -> None:
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
