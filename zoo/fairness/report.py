"""The fairness section as Markdown: the model card's and `zoo predict --groups`' tables."""

from __future__ import annotations

from typing import Any

#: Column headers of the per-group table, by figure.
HEADERS = {
    "approval_rate": "approval rate",
    "air": "AIR",
    "smd": "SMD",
    "tpr": "TPR",
    "fpr": "FPR",
    "auc": "AUC",
    "bad_rate": "bad rate",
    "mean_pd": "mean PD",
}


def _cell(value: Any) -> str:
    return "" if value is None else f"{value:.3f}"


def group_table(attribute: dict[str, Any], air_threshold: float) -> list[str]:
    """One row per group: count and figures, `too small` instead of numbers; a flagged AIR is
    marked with ⚠ and the most favoured group with `(ref)`."""
    rows = attribute["groups"]
    figures = [k for k in HEADERS if any(k in r for r in rows)]
    header = ["group", "count", *(HEADERS[k] for k in figures)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in rows:
        name = str(row["group"]) + (" (ref)" if row["group"] == attribute.get("reference_group") else "")
        if row.get("too_small"):
            cells = ["too small"] + [""] * (len(figures) - 1)
        else:
            cells = [_cell(row.get(k)) for k in figures]
            if row.get("air_flag"):
                cells[figures.index("air")] += f" ⚠ < {air_threshold:g}"
        lines.append("| " + " | ".join([name.replace("|", "\\|"), str(row["count"]), *cells]) + " |")
    return lines


def summary_line(name: str, attribute: dict[str, Any], air_threshold: float) -> str:
    """`worst AIR 0.71 (flagged, < 0.8), max |SMD| 0.31, TPR gap 0.12, ...` for one attribute."""
    parts = []
    worst = attribute.get("worst_air")
    if worst is not None:
        flag = f" (flagged: < {air_threshold:g})" if attribute.get("air_flagged") else ""
        parts.append(f"worst AIR {worst:.3f}{flag}")
    for key, label in (
        ("max_abs_smd", "max |SMD|"),
        ("tpr_gap", "TPR gap"),
        ("fpr_gap", "FPR gap"),
        ("equalized_odds_gap", "equalised-odds gap"),
        ("auc_gap", "AUC gap"),
        ("calibration_gap", "max |mean PD − bad rate|"),
    ):
        if attribute.get(key) is not None:
            parts.append(f"{label} {attribute[key]:.3f}")
    if attribute.get("too_small"):
        parts.append(f"too small: {', '.join(map(str, attribute['too_small']))}")
    used = " (used as a feature: dataset.allow_protected)" if attribute.get("used_as_feature") else ""
    bins = attribute.get("bins")
    binned = f", binned at {', '.join(f'{b:g}' for b in bins)}" if bins else ""
    return f"**{name}**{used}{binned}: " + ("; ".join(parts) or "no group large enough to compare")


def section_markdown(section: dict[str, Any]) -> list[str]:
    """The card's Fairness section: settings, then per attribute a summary line, the group table
    and the proxies."""
    air = float(section["air_threshold"])
    lines = [
        f"Split: {section['split']}, at the run's threshold {section['threshold']:.4f}: approved when "
        f"{section['approve']}. AIR: approval rate over the most favoured group's (ref), flagged below "
        f"{air:g} (four-fifths rule); SMD: standardized mean difference of the PD against ref; TPR and "
        "FPR: approval rates of those who repaid and of those who defaulted. Groups with fewer than "
        f"{section['min_group']} rows are too small to report. See docs/fairness.md.",
        "",
        f"- excluded from the features: {', '.join(section['excluded']) or 'none'}",
        f"- used as features (dataset.allow_protected): {', '.join(section['used_as_features']) or 'none'}",
    ]
    if section.get("dropped_for_protected"):
        dropped = ", ".join(section["dropped_for_protected"])
        lines.append(f"- crosses dropped as they read a protected column: {dropped}")
    for name, attribute in section["attributes"].items():
        lines += ["", summary_line(name, attribute, air), ""]
        lines += group_table(attribute, air)
        proxies = attribute.get("proxies") or []
        if proxies:
            shown = ", ".join(f"{p['feature']} (AUC {p['auc']:.3f} for {p['group']})" for p in proxies)
            lines += ["", f"Proxies (training rows; reported, not removed): {shown}"]
    return lines
