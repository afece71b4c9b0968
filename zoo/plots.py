"""Bar charts written by runs and experiments (field weights, metric comparisons), as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zoo.outputs import write_atomic


def plot_ranking(
    labels: Sequence[str],
    values: Sequence[float],
    path: Path | str,
    *,
    errors: Sequence[float] | None = None,
    xlabel: str = "",
    title: str = "",
    reference: Sequence[float] | None = None,
    reference_label: str = "reference",
) -> Path:
    """Write a horizontal bar chart (first label on top), with optional error bars and reference marks."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = [str(label) for label in labels]
    bar_values = np.asarray(values, dtype=float)
    if len(labels) != len(bar_values):
        raise ValueError(f"{len(labels)} labels for {len(bar_values)} values, expected one label per value")
    fig = Figure(figsize=(6.0, 1.2 + 0.32 * max(len(labels), 1)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    y = np.arange(len(labels))[::-1]
    ax.barh(y, bar_values, xerr=None if errors is None else np.asarray(errors, dtype=float), color="tab:blue")
    if reference is not None:
        marks = np.asarray(reference, dtype=float)
        ax.scatter(marks, y, marker="|", s=200, color="tab:red", zorder=3, label=reference_label)
        ax.legend(loc="lower right")
    ax.set_yticks(y, labels)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    return write_atomic(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=120))
