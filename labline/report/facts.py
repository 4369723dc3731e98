"""What the report shows, read from a run's manifest and folder: the one place that knows where
each notebook leaves its results (scraps, the model card, the monitor's result.json)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from labline.report.html import RUN_ID
from runner.contracts import StepStatus
from runner.scraps import FRAME_KEY

OK_STATES = (StepStatus.SUCCEEDED, StepStatus.CACHED)


def frame(value: Any) -> tuple[list, list, list] | None:
    """(columns, index, rows) of a glued DataFrame, without importing pandas."""
    if isinstance(value, dict) and FRAME_KEY in value:
        parts = value[FRAME_KEY]
        return list(parts["columns"]), list(parts["index"]), [list(r) for r in parts["data"]]
    return None


def records(value: Any) -> list[dict[str, Any]]:
    """A glued DataFrame, or a list of dicts, as a list of dicts."""
    parts = frame(value)
    if parts:
        columns, _, rows = parts
        return [dict(zip(columns, row)) for row in rows]
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def scraps(body: dict[str, Any]) -> dict[str, Any]:
    return body.get("scraps") or {}


def failed_steps(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        s: b for s, b in manifest.get("steps", {}).items() if b.get("status") not in (*OK_STATES, StepStatus.SKIPPED)
    }


def wilson(share: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion measured on n rows (slice accuracy)."""
    if n <= 0:
        return 0.0, 1.0
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def failing_cell(body: dict[str, Any]) -> str | None:
    """The source of the cell that raised, read from the partly executed notebook."""
    path = body.get("output_notebook")
    error = body.get("error") or {}
    if not path or not Path(path).exists():
        return None
    try:
        cells = json.loads(Path(path).read_text()).get("cells", [])
    except (OSError, json.JSONDecodeError):
        return None
    # the cell with the error output; the index is a fallback (papermill inserts cells before it)
    raised = [c for c in cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    index = error.get("cell_index")
    cell = raised[-1] if raised else (cells[index] if isinstance(index, int) and index < len(cells) else None)
    if cell is None:
        return None
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def text_file(path: Any, limit: int = 200_000) -> str | None:
    """A small text artifact (the model card), or None when the run does not have it any more."""
    if not path or not Path(path).is_file():
        return None
    return Path(path).read_text(errors="replace")[:limit]


def monitor_result(body: dict[str, Any]) -> dict[str, Any] | None:
    """The monitor notebook's result.json (per-feature drift), written beside its report."""
    report = scraps(body).get("report_path")
    if not report:
        return None
    path = Path(report).with_name("result.json")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def relative(value: Any, run_path: Path) -> Any:
    """A path inside a run folder written as <run>/..., so runs compare by what differs, not where."""
    if not isinstance(value, str) or "/" not in value:
        return value
    text = value.replace(str(run_path), "<run>")
    match = RUN_ID.search(text)
    if match and text.startswith("/"):
        text = "<run " + match.group(0) + ">" + text[match.end() :] if match.group(0) != run_path.name else text
    return text
