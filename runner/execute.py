"""Execute one notebook in its own kernel and report what happened, whatever happened.

`execute_step` never raises for a notebook's own failure: it returns a StepOutcome that says
which cell failed, on which source line, with which exception, and where the partly executed
notebook is (written after every cell). The scraps glued before the failure are read back too.

Failure kinds: `failed` (a cell raised), `timeout` (a cell or the whole notebook ran out of
time), `dead_kernel` (the kernel process exited: `os._exit`, a signal, out of memory; found
within about a second), `interrupted` (the run was stopped).
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import time
import traceback as tb
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runner.kernels import KernelLoop
from runner.notebook import imported_modules, prepare, write_atomic
from runner.scraps import scraps_of

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_LINE = re.compile(r"Cell In\[(\d+)\], line (\d+)")
DEFAULT_KERNEL = "python3"

CellProgress = Callable[[int, int], None]  # (code cells done, code cells in all)


@dataclass
class StepOutcome:
    """What one execution of a notebook produced."""

    status: str  # succeeded | failed | timeout | dead_kernel | interrupted
    output_notebook: str
    scraps: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    started: float = 0.0
    finished: float = 0.0
    cells_done: int = 0
    cells_total: int = 0

    @property
    def seconds(self) -> float:
        return round(self.finished - self.started, 3)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = self.seconds
        return data


class NotebookTimeout(Exception):
    """The whole notebook ran past its `timeout:`."""


def _error_details(cell: Any, execution_count: int | None) -> dict[str, Any]:
    """Cell number, failing source line, exception name and value, and the traceback text."""
    details: dict[str, Any] = {"ename": "Error", "evalue": "", "cell": execution_count}
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    source_lines = cell.source.splitlines()
    if errors:
        err = errors[-1]
        text = _ANSI.sub("", "\n".join(err.get("traceback", [])))
        details.update(ename=err.get("ename", "Error"), evalue=err.get("evalue", ""), traceback=text)
        matches = _CELL_LINE.findall(text)
        line_no = int(matches[-1][1]) if matches else None
        if line_no and line_no <= len(source_lines):
            details.update(line=line_no, source_line=source_lines[line_no - 1].strip())
            return details
    if source_lines:
        details["source_line"] = source_lines[0].strip()
    return details


def classify_failure(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "DeadKernelError" or "kernel died" in str(exc).lower():
        return "dead_kernel"
    if name in ("CellTimeoutError", "TimeoutError", "NotebookTimeout"):
        return "timeout"
    if isinstance(exc, asyncio.CancelledError):
        return "interrupted"
    return "failed"


async def execute_async(
    notebook: str | Path,
    output_notebook: str | Path,
    parameters: dict[str, Any],
    cwd: str | Path,
    kernel_name: str | None = None,
    cell_timeout: float | None = None,
    timeout: float | None = None,
    on_cell: CellProgress | None = None,
) -> StepOutcome:
    """The coroutine behind `execute_step`; runs on the KernelLoop."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    started = time.time()
    deadline = None  # set once the kernel is ready: kernel start-up has its own limit
    output_notebook = Path(output_notebook)
    output_notebook.parent.mkdir(parents=True, exist_ok=True)
    nb = prepare(notebook, parameters, output_notebook)
    write_atomic(nb, output_notebook)
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
    outcome = StepOutcome("succeeded", str(output_notebook), started=started, cells_total=len(code_cells))
    kernel_name = kernel_name or nb.metadata.get("kernelspec", {}).get("name") or DEFAULT_KERNEL
    pool = KernelLoop.get().pool
    kernel = None
    current = None
    try:
        kernel = await pool.acquire(kernel_name, str(cwd), tuple(imported_modules(nb)))
        deadline = time.time() + timeout if timeout else None
        client = NotebookClient(nb, km=kernel.km, kernel_name=kernel_name, allow_errors=False,
                                resources={"metadata": {"path": str(cwd)}}, record_timing=True,
                                shutdown_kernel="immediate")
        client.kc = kernel.kc
        reply = await client.async_wait_for_reply(await _maybe_await(kernel.kc.kernel_info()))
        if reply and "language_info" in reply["content"]:
            nb.metadata["language_info"] = reply["content"]["language_info"]
        for done, index in enumerate(code_cells):
            current = index
            client.timeout = _cell_budget(cell_timeout, deadline)
            await client.async_execute_cell(nb.cells[index], index, execution_count=done + 1)
            outcome.cells_done = done + 1
            write_atomic(nb, output_notebook)
            if on_cell:
                on_cell(done + 1, len(code_cells))
        current = None
    except CellExecutionError:
        outcome.status = "failed"
        outcome.error = _error_details(nb.cells[current], nb.cells[current].get("execution_count"))
    except BaseException as exc:  # every other ending is data for the manifest, not a crash
        status = classify_failure(exc)
        if status == "timeout" and deadline and time.time() >= deadline - 1:
            exc = NotebookTimeout(f"the notebook ran past its timeout of {timeout:g} s")
        outcome.status = status
        outcome.error = {"ename": type(exc).__name__, "evalue": str(exc) or status,
                         "traceback": "".join(tb.format_exception(exc))[-4000:]}
        if current is not None:
            outcome.error.update(cell=outcome.cells_done + 1, source_line=(nb.cells[current].source.splitlines() or [""])[0].strip())
        if status == "dead_kernel" and kernel is not None:
            outcome.error["kernel_log"] = kernel.log_tail()
            _keep_log(kernel.log_path, output_notebook.parent / "kernel.log")
        if status == "interrupted":
            raise
    finally:
        if kernel is not None:
            await asyncio.shield(pool.stop(kernel))
        try:
            write_atomic(nb, output_notebook)
        except Exception:
            pass
        outcome.scraps = scraps_of(nb)
        outcome.finished = time.time()
    return outcome


async def _maybe_await(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future) else value


def _cell_budget(cell_timeout: float | None, deadline: float | None) -> int | None:
    """nbclient's per-cell timeout (whole seconds): the cell's own, cut to what the notebook has left."""
    budgets = [cell_timeout] if cell_timeout else []
    if deadline:
        budgets.append(max(deadline - time.time(), 0.001))
    return max(1, math.ceil(min(budgets))) if budgets else None


def _keep_log(source: Path, target: Path) -> None:
    try:
        if source.exists() and source.stat().st_size:
            shutil.copyfile(source, target)
    except OSError:
        pass


def execute_step(
    notebook: str | Path,
    output_notebook: str | Path,
    parameters: dict[str, Any],
    cwd: str | Path,
    kernel_name: str | None = None,
    cell_timeout: float | None = None,
    timeout: float | None = None,
    on_cell: CellProgress | None = None,
) -> StepOutcome:
    """Run `notebook` with `parameters` into `output_notebook`, its kernel working in `cwd`.

    `cell_timeout` bounds each cell, `timeout` all the cells together (the kernel's start-up
    has its own limit, `runner.kernels.STARTUP_TIMEOUT`).
    Returns a StepOutcome; the executed (or partly executed) notebook is always written.
    Safe to call from many threads at once: kernels are driven by one loop per process.
    """
    loop = KernelLoop.get()
    future = asyncio.run_coroutine_threadsafe(
        execute_async(notebook, output_notebook, parameters, cwd, kernel_name, cell_timeout, timeout, on_cell),
        loop.loop)
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise
