"""The live progress display of `labline run`: each step's state, cell progress and time.

On a terminal it is a rich table redrawn in place; elsewhere (logs, CI, pipes) it prints one line
per step event. Events arrive from worker threads, so updates take a lock.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from runner.contracts import BROKE_STATES, OK_STATES, StepStatus

STYLES = {
    StepStatus.PENDING: "dim",
    StepStatus.RUNNING: "cyan",
    StepStatus.RETRYING: "yellow",
    StepStatus.SKIPPED: "yellow",
    **{status: "green" for status in OK_STATES},
    **{status: "red" for status in BROKE_STATES},
}
CELL = "cell"  # the event of a cell done: not a step status


def progress_printer(console: Console):
    """One line per step event (cell progress left out): for logs and non-terminals."""
    marks = {
        StepStatus.RUNNING: "[cyan]…[/]",
        StepStatus.SUCCEEDED: "[green]✓[/]",
        StepStatus.CACHED: "[green]=[/]",
        StepStatus.SKIPPED: "[yellow]-[/]",
        StepStatus.RETRYING: "[yellow]↻[/]",
    }

    def on_event(step: str, state: str, details: dict[str, Any]) -> None:
        if state == CELL:
            return
        if "combo" in details:
            step = f"{step} {json.dumps(details['combo'], default=str)}"
        mark = marks.get(state, "[red]✗[/]")
        extra = f" {details.get('seconds', 0):.1f}s" if "seconds" in details else ""
        if state == StepStatus.CACHED:
            extra = f" (from run {details.get('cached_from')})"
        console.print(f"{mark} {step:<16} {state}{extra}")

    return on_event


class ProgressDisplay:
    """A context manager whose `on_event` is the runner's event callback."""

    def __init__(self, console: Console, steps: list[str]):
        self.console = console
        self.rows: dict[str, dict[str, Any]] = {
            s: {"state": StepStatus.PENDING, "cells": "", "started": None, "note": ""} for s in steps
        }
        self.lock = threading.Lock()
        self.live: Live | None = None
        if not console.is_terminal:
            self._printer = progress_printer(console)

    def __enter__(self) -> ProgressDisplay:
        if self.console.is_terminal:
            self.live = Live(
                self._table(), console=self.console, refresh_per_second=8, transient=False, get_renderable=self._table
            )
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def on_event(self, step: str, state: str, details: dict[str, Any]) -> None:
        if self.live is None:
            self._printer(step, state, details)
            return
        with self.lock:
            row = self.rows.setdefault(step, {"state": StepStatus.PENDING, "cells": "", "started": None, "note": ""})
            if state == CELL:
                row["cells"] = f"{details['done']}/{details['total']}"
                return
            row["state"] = state
            if state == StepStatus.RUNNING:
                row["started"] = time.time()
            if state == StepStatus.CACHED:
                row["note"] = f"from run {details.get('cached_from')}"
            if "seconds" in details:
                row["note"] = f"{details['seconds']:.1f}s"
                row["started"] = None
            if state == StepStatus.RETRYING:
                row["note"] = f"attempt {details.get('attempt')}"

    def _table(self) -> Table:
        table = Table(box=None, pad_edge=False, show_header=True)
        for column in ("step", "state", "cells", ""):
            table.add_column(column)
        with self.lock:
            for step, row in self.rows.items():
                note = row["note"]
                if row["started"] is not None:
                    note = f"{time.time() - row['started']:.0f}s"
                style = STYLES.get(row["state"], "")
                table.add_row(step, f"[{style}]{row['state']}[/]", row["cells"], note)
        return table
