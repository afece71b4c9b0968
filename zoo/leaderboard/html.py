"""leaderboard.html: the whole report in one self-contained file (tables as HTML, every picture an
inline base64 PNG, styles inline, no external or local references) for readers without Python."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from zoo.leaderboard.tables import Section, Table

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 0.5em; }
img { max-width: 100%; }
"""


def table_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in table.header)
    body = []
    for cells in table.rows:
        tds = (
            f'<td class="num">{html.escape(c)}</td>' if numeric else f"<td>{html.escape(c)}</td>"
            for c, numeric in zip(cells, table.numeric, strict=True)
        )
        body.append(f"<tr>{''.join(tds)}</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def image_html(path: Path) -> str:
    """The PNG inline as a data URI, captioned by its file name."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    name = html.escape(Path(path).name)
    image = f'<img alt="{name}" src="data:image/png;base64,{data}">'
    return f"<figure>{image}<figcaption>{name}</figcaption></figure>"


def render_html(title: str, sections: Sequence[Section]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        f'<head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>',
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        if section.heading:
            parts.append(f"<h2>{html.escape(section.heading)}</h2>")
        parts += [f"<p>{html.escape(text)}</p>" for text in section.paragraphs]
        parts += [table_html(table) for table in section.tables]
        if section.images:
            parts.append("<div>" + "\n".join(image_html(path) for path in section.images) + "</div>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"
