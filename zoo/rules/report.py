"""The rule table a risk analyst reads: `rules.csv` and `rules.md` in the run directory.

Every rule model (attention_rules, rulefit, cart) writes the same columns, so their rule sets can
be read and compared side by side; a column a model has no value for is left empty.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from zoo.outputs import write_csv, write_text

RULES_CSV = "rules.csv"
RULES_MD = "rules.md"
COLUMNS = ("rule", "points", "support", "bad_rate", "lift", "attention_weight", "stability", "length")


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def direction(points: float) -> str:
    """The rule's effect in words: risk up for positive points (log-odds of default), down else."""
    return "risk ↑" if points > 0 else "risk ↓" if points < 0 else "no effect"


def write_rules(run_dir: Path | str, table: pd.DataFrame, *, title: str, preamble: str = "") -> None:
    """Write `table` (one row per rule, `COLUMNS` where known) as rules.csv and rules.md.

    `rule` is the readable condition; `points` its contribution to the log-odds of default when
    a row satisfies it; `bad_rate` and `support` are measured on the training rows."""
    missing = [c for c in ("rule", "points") if c not in table.columns]
    if missing:
        raise ValueError(f"rule table lacks columns {missing}, expected at least 'rule' and 'points'")
    frame = table.reindex(columns=[c for c in COLUMNS if c in table.columns])
    run_dir = Path(run_dir)
    write_csv(run_dir / RULES_CSV, frame)
    lines = [f"# {title}", ""]
    if preamble:
        lines += [preamble, ""]
    header = ["#", "rule", *[c for c in frame.columns if c != "rule"]]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, row in enumerate(frame.itertuples(index=False), start=1):
        values = row._asdict()
        text = f"IF {values['rule']} THEN {direction(float(values['points']))}"
        cells = [str(i), _cell(text), *[_cell(values[c]) for c in frame.columns if c != "rule"]]
        lines.append("| " + " | ".join(cells) + " |")
    write_text(run_dir / RULES_MD, "\n".join(lines) + "\n")
