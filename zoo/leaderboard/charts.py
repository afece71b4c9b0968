"""The leaderboard's pictures, drawn on Agg canvases without pyplot (no display, no global backend
switch) and written atomically: point-and-interval charts of the metrics, a trade-off chart across a sweep's
variants, and per dataset the ROC, reliability and KS curves of the best models' test predictions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from zoo.calibration import reliability_table
from zoo.errors import ZooError
from zoo.leaderboard.collect import model_label
from zoo.leaderboard.stats import LOWER_IS_BETTER
from zoo.leaderboard.tables import check_summary
from zoo.outputs import write_atomic


def plot_points(summary: pd.DataFrame, metrics: Sequence[str], out_path: Path) -> Path:
    """PNG, one panel per metric: each model's mean as a point with a sample-std interval, grouped
    by dataset, on an axis fitted to the points and intervals (not from 0: AUCs of 0.78 and 0.80
    would look equal on bars from 0, and those differences are the ones that matter).

    Drawn on an Agg canvas without pyplot (no display, no global backend switch); atomic write.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = list(metrics)
    check_summary(summary, metrics)
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
            ax.errorbar(
                xs,
                rows[f"{metric}_mean"].to_numpy(dtype=float),
                yerr=rows[f"{metric}_std"].to_numpy(dtype=float),  # NaN (one seed): the point alone
                fmt="o",
                markersize=6,
                capsize=3,
                color=colours[i],
                markeredgecolor="black",
                markeredgewidth=0.5,
                elinewidth=1.2,
                label=model,
            )
        ax.margins(x=0.5 / max(1, len(datasets)), y=0.12)  # the axis fits the points, not 0
        direction = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        ax.set_title(f"{metric} ({direction}), mean ± sample std", fontsize=10)
        ax.set_xticks(np.arange(len(datasets)), datasets, rotation=20 if len(datasets) > 3 else 0)
        for edge in np.arange(len(datasets) - 1) + 0.5:  # datasets apart
            ax.axvline(edge, color="0.85", linewidth=0.8)
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
    return write_atomic(out_path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def plot_tradeoff(summary: pd.DataFrame, x: str, y: str, out_path: Path) -> Path:
    """PNG, one panel per dataset: `y` against `x` (means, sample-std error bars), one line per
    model through its variants, e.g. AUC against the number of rules as a sweep varies K_max."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_summary(summary, [x, y])
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
    return write_atomic(out_path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def _palette(n: int) -> list:
    """n distinct colours: tab10 while it lasts, then evenly spaced viridis."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    return [colormaps["viridis"](x) for x in np.linspace(0, 1, n)]


# --- curves of test predictions

Scores = Mapping[str, tuple[np.ndarray, np.ndarray]]
"""{model label: (labels, probabilities)}, best model first."""


def _figure(width: float = 5.0, height: float = 4.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig, out_path: Path) -> Path:
    return write_atomic(Path(out_path), lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def _check_scores(scores: Scores) -> None:
    if not scores:
        raise ZooError("expected predictions of at least one model to plot, got none")


def plot_roc(scores: Scores, out_path: Path, *, title: str = "") -> Path:
    """PNG of the models' ROC curves overlaid (true vs false positive rate), AUC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    _check_scores(scores)
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    for (label, (y, prob)), colour in zip(scores.items(), _palette(len(scores)), strict=True):
        fpr, tpr, _ = roc_curve(y, prob)
        ax.plot(fpr, tpr, color=colour, linewidth=1.4, label=f"{label} (AUC {roc_auc_score(y, prob):.3f})")
    ax.set(
        xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate (goods)", ylabel="true positive rate (bads)"
    )
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or "ROC", fontsize=10)
    return _save(fig, out_path)


def plot_reliability_curves(scores: Scores, out_path: Path, *, title: str = "", n_bins: int = 10) -> Path:
    """PNG of the models' reliability curves overlaid: observed bad rate against the mean predicted
    probability in equal-width bins (zoo.calibration.reliability_table), with the diagonal."""
    _check_scores(scores)
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    for (label, (y, prob)), colour in zip(scores.items(), _palette(len(scores)), strict=True):
        table = reliability_table(prob, y, n_bins=n_bins)
        filled = table[table["count"] > 0]
        ax.plot(
            filled["mean_predicted"],
            filled["observed_rate"],
            marker="o",
            markersize=4,
            color=colour,
            label=label,
        )
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability", ylabel="observed bad rate")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or "reliability", fontsize=10)
    return _save(fig, out_path)


def ks_curve(y: np.ndarray, prob: np.ndarray) -> pd.DataFrame:
    """Cumulative share of bads and of goods scoring at or below each distinct score, and the gap."""
    y, prob = np.asarray(y).astype(bool), np.asarray(prob, dtype=float)
    if y.all() or not y.any():
        raise ZooError("expected both classes among the labels for a KS curve, got one")
    thresholds = np.unique(prob)
    order = np.sort(prob[y]), np.sort(prob[~y])
    bad = np.searchsorted(order[0], thresholds, side="right") / y.sum()
    good = np.searchsorted(order[1], thresholds, side="right") / (~y).sum()
    return pd.DataFrame({"score": thresholds, "bad": bad, "good": good, "gap": good - bad})


def plot_ks(label: str, y: np.ndarray, prob: np.ndarray, out_path: Path, *, title: str = "") -> Path:
    """PNG of the KS curve: the cumulative distributions of bads and goods against the score, the
    maximum gap (the KS statistic) marked."""
    curve = ks_curve(y, prob)
    best = curve.loc[curve["gap"].abs().idxmax()]
    fig, ax = _figure(5.6, 4.2)
    ax.step(curve["score"], curve["good"], where="post", color="tab:green", label="goods (label 0)")
    ax.step(curve["score"], curve["bad"], where="post", color="tab:red", label="bads (label 1)")
    ax.vlines(best["score"], best["bad"], best["good"], color="black", linewidth=1.6, linestyle=":")
    ax.annotate(
        f"KS {abs(best['gap']):.3f}\nat score {best['score']:.3f}",
        xy=(best["score"], (best["bad"] + best["good"]) / 2),
        xytext=(8, 0),
        textcoords="offset points",
        fontsize=9,
        va="center",
        bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"},
    )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="score (predicted probability of default)",
        ylabel="cumulative share",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or f"KS: {label}", fontsize=10)
    return _save(fig, out_path)
