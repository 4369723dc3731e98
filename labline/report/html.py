"""Small HTML building blocks shared by the report's sections: escaping, numbers, tables."""

from __future__ import annotations

import html
import json
import re
from typing import Any

RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A value as the report prints it: floats with 4 decimals, so tests and readers see the same text."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def seconds(value: Any) -> str:
    return f"{value:.1f} s" if isinstance(value, (int, float)) else "–"


def slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]+", "-", str(text)).strip("-") or "x"


def table(
    columns: list[str],
    rows: list[list[str]],
    classes: str = "",
    cell_classes: list[list[str]] | None = None,
    numeric: set[int] | None = None,
) -> str:
    """A table from already-escaped cell HTML; `numeric` columns are right-aligned."""
    numeric = numeric or set()
    head = "".join(f'<th class="{"num" if i in numeric else ""}">{esc(c)}</th>' for i, c in enumerate(columns))
    body = []
    for r, row in enumerate(rows):
        cells = []
        for i, cell in enumerate(row):
            extra = cell_classes[r][i] if cell_classes else ""
            cls = " ".join(x for x in ("num" if i in numeric else "", extra) if x)
            cells.append(f'<td class="{cls}">{cell}</td>' if cls else f"<td>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def badge(status: str) -> str:
    return f'<span class="badge s-{slug(status)}">{esc(status)}</span>'


def section(anchor: str, title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{note}</p>' if note else ""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{note_html}{body}</section>'
