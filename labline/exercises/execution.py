"""Run a notebook that may misbehave, under a time limit, and always come back.

A student's notebook may loop forever, kill its kernel or never answer an interrupt. It runs
through the runner's one executor (`runner.execute.execute_step`: papermill on labline's
engine, a kernel started ahead of time), with every cell allowed to fail: each cell gets at most
`cell_timeout` seconds and never more than what is left of `total_timeout`; a dead kernel is
found within about a second; the kernel is stopped (its process group killed) afterwards,
whatever happened, so none is left behind.
"""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

DEFAULT_CELL_TIMEOUT = 60.0
DEFAULT_TOTAL_TIMEOUT = 300.0
ERROR_MARKER_TAG = "papermill-error-cell-tag"  # papermill's banner cells around a failing cell
PRELUDE_TAG = "labline-prelude"  # the grader's own first cell (see run_notebook)
PRELUDE_CELL = -1  # where an execution stopped in that cell (indices count the notebook's own cells)


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
    nb.cells = [c for c in nb.cells if not {ERROR_MARKER_TAG, PRELUDE_TAG} & set(c.metadata.get("tags", []))]
    return nb


def _verdict(outcome, cell_timeout: float, total_timeout: float, where: int | None) -> tuple[str, str]:
    error = outcome.error or {}
    if (
        outcome.status in ("succeeded", "failed")
        and error.get("ename") != "KernelMissing"
        and outcome.cells_done >= outcome.cells_total
    ):
        return "completed", "every cell ran"
    if outcome.status == "timeout" and where == PRELUDE_CELL:
        return "error", (
            f"the kernel was not ready within the {cell_timeout:g} s cell limit (its start-up imports on a busy "
            "machine?); nothing of the notebook ran"
        )
    if outcome.status == "timeout":
        return "timeout", (
            f"time limit reached in cell {where} (at most {cell_timeout:g} s a cell, {total_timeout:g} s in all)"
        )
    if outcome.status == "dead_kernel" and where == PRELUDE_CELL:
        log = " ".join(str(error.get("kernel_log", "")).strip().splitlines()[-2:])
        return "error", f"the grader could not confine the kernel, nothing of the notebook ran: {log}"
    if outcome.status == "dead_kernel":
        return "dead_kernel", f"the kernel died while running cell {where}"
    return "error", f"{error.get('ename', 'Error')}: {error.get('evalue', '')}"


def _with_prelude(notebook: NotebookNode, prelude: str | None) -> NotebookNode:
    """`notebook` with the grader's own first cell (tagged, removed again from the result)."""
    if not prelude:
        return notebook
    cell = nbformat.v4.new_code_cell(prelude, metadata={"tags": [PRELUDE_TAG]})
    cell.id = PRELUDE_TAG
    wrapped = copy.copy(notebook)
    wrapped.cells = [cell, *notebook.cells]
    return wrapped


def run_notebook(
    notebook: NotebookNode,
    cwd: str | Path,
    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
    kernel_name: str | None = None,
    prelude: str | None = None,
) -> Execution:
    """Execute every cell of `notebook` (a copy is executed), continuing past cell errors, on the
    kernel it declares unless `kernel_name` is given; `prelude` is code run first, in a cell of its
    own left out of the result (the submission's confinement).

    Stops early only when the time limit is reached or the kernel dies. Never raises for
    anything the notebook does.
    """
    from runner.execute import execute_step

    started = time.monotonic()
    shift = 1 if prelude else 0
    with tempfile.TemporaryDirectory(prefix="labline-grade-") as tmp:
        out = Path(tmp) / "executed.ipynb"
        outcome = execute_step(
            _with_prelude(notebook, prelude),
            out,
            {},
            cwd,
            kernel_name=kernel_name,
            cell_timeout=cell_timeout,
            timeout=total_timeout,
            allow_errors=True,
        )
        executed = _executed(out, notebook)
    index = (outcome.error or {}).get("cell_index")
    where = None if index is None else index - shift
    status, message = _verdict(outcome, cell_timeout, total_timeout, where)
    stopped = None if status == "completed" else where
    return Execution(executed, status, message, stopped, round(time.monotonic() - started, 3))


def prestart(notebook: NotebookNode, cwd: str | Path, prelude: str | None = None) -> None:
    """Start the kernel `run_notebook(notebook, cwd, prelude=prelude)` will take, ahead of time, so it
    is warm (started, its imports done) when the run begins. Returns at once."""
    from runner.kernels import KernelLoop, declared_kernel
    from runner.notebook import imported_modules

    wrapped = _with_prelude(notebook, prelude)
    loop = KernelLoop.get()
    modules = tuple(imported_modules(wrapped))
    loop.call(loop.pool.prestart, declared_kernel(wrapped), str(cwd), modules, 1)
