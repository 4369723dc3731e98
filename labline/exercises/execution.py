"""Run a notebook that may misbehave, under a time limit, and always come back.

A student's notebook may loop forever, kill its kernel or never answer an interrupt. It runs
through the runner's one executor (`runner.execute.execute_step`: papermill on labline's
engine, a kernel started ahead of time), with every cell allowed to fail: each cell gets at most
`cell_timeout` seconds and never more than what is left of `total_timeout`; a dead kernel is
found within about a second; the kernel is stopped (its process group killed) afterwards,
whatever happened, so none is left behind.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

DEFAULT_CELL_TIMEOUT = 60.0
DEFAULT_TOTAL_TIMEOUT = 300.0
ERROR_MARKER_TAG = "papermill-error-cell-tag"  # papermill's banner cells around a failing cell


@dataclass
class Execution:
    """What happened: `completed` (every cell ran, errors allowed), `timeout`, `dead_kernel` or `error`."""

    notebook: NotebookNode
    status: str
    message: str
    stopped_at: int | None  # index of the cell that was running when execution stopped
    seconds: float

    @property
    def finished(self) -> bool:
        return self.status == "completed"


def cell_error(cell: NotebookNode) -> dict | None:
    """The error output of an executed code cell (ename, evalue, traceback), or None."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return {
                "ename": output.get("ename", ""),
                "evalue": output.get("evalue", ""),
                "traceback": output.get("traceback", []),
            }
    return None


def _executed(path: Path, fallback: NotebookNode) -> NotebookNode:
    """The executed notebook without papermill's error banners, so cell indices match the input."""
    try:
        nb = nbformat.read(str(path), as_version=4)
    except (OSError, ValueError):
        return fallback
    nb.cells = [c for c in nb.cells if ERROR_MARKER_TAG not in c.metadata.get("tags", [])]
    return nb


def _verdict(outcome, cell_timeout: float, total_timeout: float) -> tuple[str, str]:
    error = outcome.error or {}
    where = error.get("cell_index")
    if (
        outcome.status in ("succeeded", "failed")
        and error.get("ename") != "KernelMissing"
        and outcome.cells_done >= outcome.cells_total
    ):
        return "completed", "every cell ran"
    if outcome.status == "timeout":
        return "timeout", (
            f"time limit reached in cell {where} (at most {cell_timeout:g} s a cell, {total_timeout:g} s in all)"
        )
    if outcome.status == "dead_kernel":
        return "dead_kernel", f"the kernel died while running cell {where}"
    return "error", f"{error.get('ename', 'Error')}: {error.get('evalue', '')}"


def run_notebook(
    notebook: NotebookNode,
    cwd: str | Path,
    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
    kernel_name: str | None = None,
) -> Execution:
    """Execute every cell of `notebook` (a copy is executed), continuing past cell errors, on the
    kernel it declares unless `kernel_name` is given.

    Stops early only when the time limit is reached or the kernel dies. Never raises for
    anything the notebook does.
    """
    from runner.execute import execute_step

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="labline-grade-") as tmp:
        out = Path(tmp) / "executed.ipynb"
        outcome = execute_step(
            notebook,
            out,
            {},
            cwd,
            kernel_name=kernel_name,
            cell_timeout=cell_timeout,
            timeout=total_timeout,
            allow_errors=True,
        )
        executed = _executed(out, notebook)
    status, message = _verdict(outcome, cell_timeout, total_timeout)
    stopped = None if status == "completed" else (outcome.error or {}).get("cell_index")
    return Execution(executed, status, message, stopped, round(time.monotonic() - started, 3))
