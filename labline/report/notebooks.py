"""The executed notebooks as HTML, by nbconvert: embedded in the page, or written beside it and linked.

Embedded notebooks are body fragments of nbconvert's `lab` template, styled by the report's own
CSS, so six notebooks add their cells and not six copies of JupyterLab's stylesheet.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from labline.report.html import badge, esc, section, slug
from labline.report.style import CSP, CSS

# The lab template's cells without its page; code is Pygments output (already escaped), so it skips
# the bleach pass the stock template runs on every input cell, which costs more than the rest together.
FRAGMENT = """{%- extends 'lab/base.html.j2' -%}
{% block input %}
<div class="jp-InputArea-editor">{{ cell.source | highlight_code(metadata=cell.metadata) }}</div>
{%- endblock input %}
"""
SCRAP_MIMETYPE = "application/scrapbook.scrap."


def notebook_css() -> str:
    """Pygments colours for the code cells, scoped to the embedded notebooks."""
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(style="default").get_style_defs(".nbv .highlight")


def standalone(title: str, fragment: str) -> str:
    """A linked notebook's own page: the same cells and styles as embedded, the same CSP, no CDN."""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}"><title>{esc(title)}</title>'
        f"<style>{CSS}{notebook_css()}</style></head><body><main><h1>{esc(title)}</h1>"
        f'<div class="nbv">{fragment}</div></main></body></html>'
    )


def exporter():
    """An HTMLExporter for the cells only: the report supplies page, styles and no scripts."""
    from runner.lazy_imports import defer_slow_imports

    defer_slow_imports()  # nbformat's jsonschema would build an unused grammar for ~2 s
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="lab", template_file="fragment.j2", extra_loaders=[DictLoader({"fragment.j2": FRAGMENT})]
    )


def read_notebook(path: Path):
    """The notebook without scrapbook's outputs, which no browser can show."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.get("outputs"):
            cell.outputs = [
                o for o in cell.outputs if not any(k.startswith(SCRAP_MIMETYPE) for k in (o.get("data") or {}))
            ]
    return nb


def convert(path: Path, html_exporter) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unrepresentable mimetypes: dropped on purpose
        body, _ = html_exporter.from_notebook_node(read_notebook(path))
    return body


def notebook_paths(m: dict[str, Any]) -> list[tuple[str, dict[str, Any], Path]]:
    return [
        (name, body, Path(body["output_notebook"]))
        for name, body in m.get("steps", {}).items()
        if body.get("output_notebook") and Path(body["output_notebook"]).is_file()
    ]


def notebooks_section(m: dict[str, Any], anchor: str, mode: str, out: Path | None) -> str:
    """`embed`: every notebook inside the page; `link`: one HTML file per notebook beside the page."""
    found = notebook_paths(m)
    if mode == "none" or not found:
        return ""
    html_exporter = exporter()
    blocks = []
    for name, body, path in found:
        title = f"<b>{esc(name)}</b> <code>{esc(path.name)}</code> {badge(body.get('status', '?'))}"
        if mode == "link":
            target = out.parent / f"{out.stem}_notebooks" / f"{slug(m['run_id'])}-{slug(name)}.html"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(standalone(f"{m['run_id']} · {name}", convert(path, html_exporter)))
            blocks.append(f'<li>{title}: <a href="{esc(target.relative_to(out.parent).as_posix())}">open</a></li>')
        else:
            blocks.append(
                f'<details class="notebook" id="nb-{anchor}-{slug(name)}"><summary>{title}</summary>'
                f'<div class="nbv">{convert(path, html_exporter)}</div></details>'
            )
    body = f"<ul>{''.join(blocks)}</ul>" if mode == "link" else "".join(blocks)
    return section(f"notebooks-{anchor}", "Notebooks", body, "The executed notebooks, as papermill left them.")
