"""The monitoring report: monitor.md, monitor.json and monitor.html (one self-contained file with
the distribution plots), from the same sections as the leaderboard's report."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.leaderboard.charts import _figure, _save, plot_reliability_curves
from zoo.leaderboard.html import render_html
from zoo.leaderboard.tables import Section, Table, sections_markdown
from zoo.monitor.compare import Monitoring, Stability
from zoo.monitor.psi import ACTION_ABOVE, EMPTY_SHARE, STABLE_BELOW
from zoo.monitor.reference import REFERENCE_FILE
from zoo.outputs import write_json, write_text

#: Fields whose bins the report shows and plots: the ones above the stable band, at most this many.
TOP_FIELDS = 6
_COLOURS = {"stable": "tab:green", "watch": "tab:orange", "action": "tab:red"}

THRESHOLDS_TEXT = (
    f"PSI and CSI: < {STABLE_BELOW} stable, {STABLE_BELOW}–{ACTION_ABOVE} watch, > {ACTION_ABOVE} action. "
    f"An empty bin counts as a share of {EMPTY_SHARE} (or a millionth of the smallest non-zero share, "
    "when that is smaller), as evidently does."
)


@dataclass
class Report:
    markdown: str
    paths: dict[str, Path]


def write_report(found: Monitoring, out_dir: Path | str, *, fail_above: float | None = None) -> Report:
    """Write monitor.md, monitor.json, monitor.html and the PNGs the HTML inlines into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "monitor.md", "json": out_dir / "monitor.json", "html": out_dir / "monitor.html"}
    shown = _shown_fields(found)
    images = {"score": plot_distribution(found.score, out_dir / "monitor_score.png")}
    if found.fields:
        images["csi"] = plot_csi(found.fields, out_dir / "monitor_csi.png")
    if shown:
        images["fields"] = plot_fields(shown, out_dir / "monitor_fields.png")
    if found.performance is not None:
        images["reliability"] = plot_reliability_curves(
            found.performance.scores,
            out_dir / "monitor_reliability.png",
            title="reliability: test split vs new file",
        )
    paths.update({f"png_{k}": v for k, v in images.items()})
    sections = report_sections(found, fail_above, images)
    markdown = sections_markdown(sections)  # the Markdown leaves the pictures out
    write_text(paths["md"], markdown)
    write_json(paths["json"], report_json(found, fail_above))
    title = f"Population stability of {found.run_dir.name} on {found.file.name}"
    write_text(paths["html"], render_html(title, sections))
    return Report(markdown, paths)


def _shown_fields(found: Monitoring) -> list[Stability]:
    return [s for s in found.fields or [] if s.status != "stable"][:TOP_FIELDS]


def report_sections(
    found: Monitoring, fail_above: float | None = None, images: dict[str, Path] | None = None
) -> list[Section]:
    """The report's sections; `images` ({"score", "csi", "fields", "reliability": PNG}) go to the HTML."""
    images = images or {}

    def pictures(*keys: str) -> list[Path]:
        return [images[k] for k in keys if k in images]

    ref = found.reference
    intro = [
        f"Run {found.run_dir} against {found.file}: {found.rows} rows. Reference: the run's {ref.population} "
        f"({ref.rows} rows, from {ref.source}).",
        THRESHOLDS_TEXT,
    ]
    if fail_above is not None:
        over = found.over(fail_above)
        names = ", ".join(f"{s.name} ({s.psi:.4f})" for s in over) or "none"
        intro.append(f"Above --fail-above {fail_above}: {names}.")
    summary = Table(
        ["quantity", "kind", "PSI", "status"],
        [[s.name, s.kind, f"{s.psi:.4f}", s.status] for s in [found.score, *(found.fields or [])]],
        [False, False, True, False],
    )
    sections = [Section("", intro, [summary], [])]
    score_text = [
        f"The score's {len(found.score.labels)} bins are the deciles of the reference scores (probability of "
        f"default); PSI {found.score.psi:.4f}, {found.score.status}."
    ]
    sections.append(Section("Score", score_text, [bin_table(found.score)], pictures("score")))
    if found.fields is None:
        note = (
            f"The run has no {REFERENCE_FILE}: it was trained before field references were saved, so "
            "only the score's PSI is shown. Train the run again for the CSI of every field."
        )
        sections.append(Section("Fields", [note], [], []))
    else:
        shown = _shown_fields(found)
        text = [
            "CSI of each input field on the run's bins: numeric fields at the deciles of their training "
            "values (from the run's saved quantiles), with missing and each special code as bins of "
            "their own; categorical fields by category, with missing and unseen (a category training "
            "never saw) as bins."
        ]
        text.append(
            f"Bins of the fields above the stable band ({len(shown)} shown)."
            if shown
            else "Every field is stable."
        )
        unseen = {k: v for k, v in found.unseen.items() if v}
        if unseen:
            text.append(
                "Rows with a category unseen in training: " + ", ".join(f"{k} {v}" for k, v in unseen.items())
            )
        tables = [bin_table(s, title=True) for s in shown]
        sections.append(Section("Fields", text, tables, pictures("csi", "fields")))
    if found.performance is not None:
        sections.append(performance_section(found, pictures("reliability")))
    return sections


def bin_table(stability: Stability, *, title: bool = False) -> Table:
    table = stability.table()
    first = f"{stability.name} bin (CSI {stability.psi:.4f})" if title else "bin"
    rows = [
        [
            str(r.bin),
            str(r.reference_rows),
            f"{r.reference_share:.2%}",
            str(r.new_rows),
            f"{r.new_share:.2%}",
            f"{r.psi_term:.4f}",
        ]
        for r in table.itertuples()
    ]
    header = [first, "reference rows", "reference share", "new rows", "new share", "PSI term"]
    return Table(header, rows, [False, True, True, True, True, True])


def performance_section(found: Monitoring, images: list[Path]) -> Section:
    perf = found.performance
    assert perf is not None
    metrics = Table(
        ["metric", "run test split", "new file"],
        [[k, number_text(perf.test.get(k)), number_text(perf.new[k])] for k in perf.new],
        [False, True, True],
    )
    rows = [
        [
            f"[{r.lower:.1f}, {r.upper:.1f}{']' if r.upper == 1 else ')'}",
            str(r.count),
            number_text(r.mean_predicted),
            number_text(r.observed_rate),
            str(r.test_count),
            number_text(r.test_observed_rate),
        ]
        for r in perf.calibration.itertuples()
    ]
    calibration = Table(
        ["predicted", "new rows", "new mean predicted", "new bad rate", "test rows", "test bad rate"],
        rows,
        [False, True, True, True, True, True],
    )
    text = [
        f"The file holds the target: {perf.rows} labelled rows, bad rate {perf.bad_rate:.2%}. The run's "
        "figures on them beside its test split's; the calibration table bins the predicted probability "
        "of default."
    ]
    return Section("Performance on the new file", text, [metrics, calibration], images)


def number_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value):.4f}"


def report_json(found: Monitoring, fail_above: float | None = None) -> dict[str, Any]:
    def stability(s: Stability) -> dict[str, Any]:
        return {
            "name": s.name,
            "kind": s.kind,
            "psi": s.psi,
            "status": s.status,
            "bins": s.table().to_dict(orient="records"),
        }

    perf = found.performance
    return {
        "run": str(found.run_dir),
        "file": str(found.file),
        "rows": found.rows,
        "reference": {
            "population": found.reference.population,
            "rows": found.reference.rows,
            "source": found.reference.source,
        },
        "thresholds": {"stable_below": STABLE_BELOW, "action_above": ACTION_ABOVE},
        "empty_share": EMPTY_SHARE,
        "score": stability(found.score),
        "fields": None if found.fields is None else [stability(s) for s in found.fields],
        "unseen": found.unseen,
        "performance": None
        if perf is None
        else {
            "rows": perf.rows,
            "bad_rate": perf.bad_rate,
            "new": perf.new,
            "test": perf.test,
            "calibration": perf.calibration.to_dict(orient="records"),
        },
        "fail_above": fail_above,
        "over": None if fail_above is None else [s.name for s in found.over(fail_above)],
    }


# --- pictures -----------------------------------------------------------------------------------


def _bars(ax: Any, s: Stability, *, rotate: bool) -> None:
    table = s.table()
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["reference_share"], width=0.4, color="tab:blue", label="reference")
    ax.bar(x + 0.2, table["new_share"], width=0.4, color=_COLOURS[s.status], label="new file")
    ax.set_xticks(
        x, [str(b) for b in table["bin"]], rotation=45 if rotate else 0, ha="right" if rotate else "center"
    )
    ax.tick_params(axis="x", labelsize=7)
    ax.set_ylabel("share of rows")
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(f"{s.name}: PSI {s.psi:.3f} ({s.status})", fontsize=10)


def plot_distribution(s: Stability, out_path: Path) -> Path:
    """PNG of one quantity's reference and new shares per bin, side by side."""
    fig, ax = _figure(7.0, 4.0)
    _bars(ax, s, rotate=True)
    ax.legend(fontsize=8)
    return _save(fig, out_path)


def plot_csi(fields: list[Stability], out_path: Path) -> Path:
    """PNG of every field's CSI as horizontal bars, coloured by band, the thresholds marked."""
    fig, ax = _figure(6.0, max(2.5, 0.28 * len(fields) + 1.2))
    names = [s.name for s in fields][::-1]
    values = [s.psi for s in fields][::-1]
    ax.barh(names, values, color=[_COLOURS[s.status] for s in fields][::-1])
    for limit in (STABLE_BELOW, ACTION_ABOVE):
        ax.axvline(limit, color="grey", linestyle="--", linewidth=1)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("CSI")
    ax.grid(alpha=0.3, axis="x")
    ax.set_title("CSI per field", fontsize=10)
    return _save(fig, out_path)


def plot_fields(fields: list[Stability], out_path: Path) -> Path:
    """PNG of the shown fields' reference and new shares per bin, one panel each."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(2, len(fields))
    rows = math.ceil(len(fields) / cols)
    fig = Figure(figsize=(6.0 * cols, 3.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    for i, s in enumerate(fields):
        ax = fig.add_subplot(rows, cols, i + 1)
        _bars(ax, s, rotate=True)
        ax.legend(fontsize=7)
    return _save(fig, out_path)
