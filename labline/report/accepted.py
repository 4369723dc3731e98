"""The run report's accepted risks: models of this run promoted although the gate refused them.

The run's manifest cannot know (acceptance comes after the run), so the section reads the
registry's decisions; a report made where there is no registry has no such section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labline.report.html import esc, section, table


def accepted_risks(m: dict[str, Any], path: Path, anchor: str) -> str:
    from labline.registry import Registry

    registry = Registry.existing()
    if registry is None:
        return ""
    try:
        risks = registry.accepted_risks(run_id=m.get("run_id"))
    finally:
        registry.close()
    if not risks:
        return ""
    rows = [
        [
            esc(f"v{r.version}"),
            esc(f"{r.scope}@{r.alias}"),
            esc(r.reason),
            esc(r.who),
            esc(r.when),
            "<br>".join(f"<b>{esc(c.rule)}</b>: {esc(c.reason)}" for c in r.failed),
        ]
        for r in risks
    ]
    body = table(["version", "alias", "reason", "who", "when", "failed checks"], rows)
    note = "promoted with <code>labline promote --accept</code>: the gate refused, a person accepted the risk"
    return section(f"accepted-{anchor}", "Accepted risks", body, note)
