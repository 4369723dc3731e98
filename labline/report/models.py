"""The trained models side by side: the same rows `labline compare` prints, best value in bold."""

from __future__ import annotations

from typing import Any

from labline.report.html import esc, fmt, section, table
from runner.compare import comparison_rows, lower_is_better


def model_table(manifests: list[dict[str, Any]], metrics: list[str]) -> str:
    rows = comparison_rows(manifests, metrics, label="model_name")
    used = [m for m in metrics if any(isinstance(r.get(m), (int, float)) for r in rows)]
    if not rows:
        return ""
    best = {}
    for metric in used:
        values = [r[metric] for r in rows if isinstance(r.get(metric), (int, float))]
        best[metric] = min(values) if lower_is_better(metric) else max(values)
    lead = ["run", "step", "model"] if len(manifests) > 1 else ["step", "model"]
    body, classes = [], []
    for r in rows:
        cells = ([f"<code>{esc(r['run_id'])}</code>"] if len(manifests) > 1 else []) + [
            esc(r["step"]),
            f"<b>{esc(r.get('model_name') or '')}</b>",
        ]
        marks = [""] * len(cells)
        for metric in used:
            cells.append(esc(fmt(r.get(metric))))
            marks.append("best" if len(rows) > 1 and r.get(metric) == best[metric] else "")
        body.append(cells)
        classes.append(marks)
    numeric = set(range(len(lead), len(lead) + len(used)))
    return table(lead + used, body, "models", classes, numeric)


def models_section(manifests: list[dict[str, Any]], metrics: list[str], anchor: str) -> str:
    html = model_table(manifests, metrics)
    note = "The rows of <code>labline compare</code>; every model tested on the same held-out rows. Bold: best."
    return section(f"models-{anchor}", "Models", html, note) if html else ""
