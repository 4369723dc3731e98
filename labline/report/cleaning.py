"""The report's cleaning section: what each declared cleaning rule removed, against its limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labline.data.cleaning import NONE, run_cleaning
from labline.report.html import badge, esc, section, table
from runner.contracts import RunManifest


def cleaning_section(m: dict[str, Any], path: Path, anchor: str) -> str:
    """One row per rule of each step that glued its cleaning counts; nothing for a run without any."""
    rows = []
    for step, cleaning in run_cleaning(RunManifest.from_dict(m)).items():
        for count in cleaning.counts:
            limit = "none" if count.max_share == NONE else f"{count.max_share:.0%}"
            share = count.removed / count.rows if count.rows else 0.0
            verdict = badge("failed" if count.exceeded else "succeeded")
            rows.append(
                [esc(step), f"<code>{esc(count.rule)}</code>", esc(count.keeps), str(count.removed), str(count.rows)]
                + [f"{share:.1%}", limit, verdict, esc(count.named())]
            )
    if not rows:
        return ""
    columns = ["step", "rule", "keeps", "removed", "of rows", "share", "limit", "", "first removed rows"]
    return section(
        f"cleaning-{anchor}",
        "Cleaning",
        table(columns, rows, numeric={3, 4, 5}),
        note="rows each declared cleaning rule removed; a rule over its limit fails the explore step",
    )
