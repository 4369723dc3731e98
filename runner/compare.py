"""Tables across runs: one row per step that glued any of the wanted metrics."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from runner.contracts import OK_STATES

# Words of a metric's name that say smaller is better: errors, losses, timings, memory.
LOWER_IS_BETTER_WORDS = frozenset({"mae", "mse", "rmse", "mape", "loss", "error", "errors", "seconds", "ms", "mb"})


def lower_is_better(metric: str) -> bool:
    """Whether a smaller `metric` is better; the one rule for compare, sweep, the gate and retraining.

    The name is split into words at `_`: test_mae, log_loss, error_rate, fit_seconds and peak_memory_mb go
    down; accuracy, F1, R², cv_score, rates (samples_per_second) and scikit-learn's neg_* scores go up.
    """
    words = metric.lower().replace("-", "_").split("_")
    if words[0] == "neg" or "per" in words:
        return False
    return any(word in LOWER_IS_BETTER_WORDS for word in words)


def comparison_rows(
    manifests: list[dict[str, Any]], metrics: list[str], label: str | None = None
) -> list[dict[str, Any]]:
    """Rows of (run_id, step, [label], metrics...) for succeeded steps that glued a metric."""
    rows = []
    for manifest in manifests:
        for step, body in manifest.get("steps", {}).items():
            scraps = body.get("scraps") or {}
            if body.get("status") not in OK_STATES or not any(m in scraps for m in metrics):
                continue
            row: dict[str, Any] = {"run_id": manifest["run_id"], "step": step}
            if label:
                row[label] = scraps.get(label, "")
            row.update({m: scraps.get(m) for m in metrics})
            rows.append(row)
    return rows


def sort_rows(rows: list[dict[str, Any]], metric: str, descending: bool = True) -> list[dict[str, Any]]:
    present = [r for r in rows if isinstance(r.get(metric), (int, float))]
    absent = [r for r in rows if not isinstance(r.get(metric), (int, float))]
    return sorted(present, key=lambda r: r[metric], reverse=descending) + absent


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def render(rows: list[dict[str, Any]], fmt: str = "table", title: str | None = None) -> str:
    """Render rows as a terminal table, CSV, JSON or Markdown."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
        return "\n".join(lines)
    if fmt == "table":
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for column in columns:
            table.add_column(
                column, justify="right" if rows and isinstance(rows[0].get(column), (int, float)) else "left"
            )
        for row in rows:
            table.add_row(*(_cell(row.get(c)) for c in columns))
        console = Console(file=io.StringIO(), width=200, force_terminal=False)
        console.print(table)
        return console.file.getvalue()
    raise ValueError(f"unknown format {fmt!r}; expected table, csv, json or markdown")
