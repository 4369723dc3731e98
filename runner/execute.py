"""Execute one notebook with papermill, in a kernel started ahead of time, whatever happens.

Every notebook the project runs headless goes through `execute_step` (pipeline steps, the
exercise checker and grader, the monitor notebook): one `papermill.execute_notebook` call with
labline's engine (`runner.engine`) and a warm kernel from `runner.kernels` passed in. So the
executed notebook carries papermill's full metadata, and `papermill.PapermillExecutionError`'s
error markers when a cell raised.

`execute_step` never raises for a notebook's own failure: it returns a StepOutcome that says
which cell failed, on which source line, with which exception (`outcome.failure`, a
`NotebookExecutionError`), and where the partly executed notebook is (written after every
cell). The scraps glued before the failure are read back too.

Failure kinds: `failed` (a cell raised), `timeout` (a cell or the whole notebook ran out of
time), `dead_kernel` (the kernel process exited: `os._exit`, a signal, out of memory; found
within about a second), `interrupted` (the run was stopped).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import threading
import time
import traceback as tb
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import KernelMissing, NotebookExecutionError
from runner.kernels import Kernel, KernelLoop, declared_kernel, require_kernel
from runner.notebook import imported_modules, read_json
from runner.scraps import read_scraps

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_LINE = re.compile(r"Cell In\[(\d+)\], line (\d+)")
ENGINE = "labline"
# Steps start from several threads at once; two threads importing jupyter_client (through papermill)
# for the first time see each other's half-initialized modules, so the first import is serialized.
_IMPORT_LOCK = threading.Lock()

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

    @property
    def failure(self) -> NotebookExecutionError | None:
        """The error as an exception object (None when the notebook succeeded)."""
        if not self.error:
            return None
        e = self.error
        return NotebookExecutionError(
            self.status,
            e.get("ename", "Error"),
            e.get("evalue", ""),
            e.get("cell_index"),
            e.get("cell"),
            e.get("source", ""),
            str(e.get("traceback", "")).splitlines(),
            e.get("line"),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = self.seconds
        return data


def classify_failure(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "DeadKernelError" or "kernel died" in str(exc).lower():
        return "dead_kernel"
    if name in ("CellTimeoutError", "TimeoutError", "NotebookTimeout"):
        return "timeout"
    if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)):
        return "interrupted"
    return "failed"


def _details(
    ename: str, evalue: str, source: str, cell_index: int | None, exec_count: int | None, traceback: str
) -> dict[str, Any]:
    """The manifest's `error`: cell index and number, line, source line, exception, traceback."""
    text = _ANSI.sub("", traceback)
    details: dict[str, Any] = {
        "ename": ename,
        "evalue": evalue,
        "cell": exec_count,
        "cell_index": cell_index,
        "traceback": text[-4000:],
    }
    lines = source.splitlines()
    matches = _CELL_LINE.findall(text)
    line_no = int(matches[-1][1]) if matches else None
    if line_no and line_no <= len(lines):
        details.update(line=line_no, source_line=lines[line_no - 1].strip())
    elif lines:
        details["source_line"] = next((s.strip() for s in lines if s.strip()), "")
    return details


def _stopped_cell(output_notebook: Path) -> tuple[int | None, dict[str, Any] | None]:
    """The cell the execution stopped in: the last one papermill started in the written notebook
    (after a timeout, a dead kernel or Ctrl-C papermill records it `completed`, not `failed`)."""
    try:
        cells = read_json(output_notebook)["cells"]
    except (OSError, ValueError, KeyError):
        return None, None
    started = [i for i, cell in enumerate(cells) if (cell.get("metadata", {}).get("papermill") or {}).get("start_time")]
    return (started[-1], cells[started[-1]]) if started else (None, None)


def _error_from(exc: BaseException, output_notebook: Path) -> dict[str, Any]:
    """The error of an execution that did not finish, from papermill's error or the written notebook."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        details = _details(exc.ename, exc.evalue, exc.source, exc.cell_index, exc.exec_count, "\n".join(exc.traceback))
        return details | _cell_id(output_notebook, exc.cell_index)
    index, cell = _stopped_cell(output_notebook)
    source = "".join(cell.get("source", "")) if cell else ""
    count = cell.get("execution_count") if cell else None
    details = _details(
        type(exc).__name__, str(exc) or classify_failure(exc), source, index, count, "".join(tb.format_exception(exc))
    )
    return details | ({"cell_id": cell["id"]} if cell and cell.get("id") else {})


def _cell_id(output_notebook: Path, index: int | None) -> dict[str, str]:
    try:
        cell_id = read_json(output_notebook)["cells"][index].get("id")
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return {}
    return {"cell_id": cell_id} if cell_id else {}


async def _exit_code(kernel: Kernel, wait: float = 2.0) -> int | None:
    """A dead kernel's exit code, once its parent (us or its template) has reaped it."""
    for _ in range(int(wait / 0.05)):
        try:
            code = await kernel.km.provisioner.poll()
        except Exception:
            return None
        if code is not None:
            return code
        await asyncio.sleep(0.05)
    return None


def _dead_kernel(kernel: Kernel, error: dict[str, Any], step_folder: Path) -> None:
    """Keep what a dead kernel leaves: its whole log as the step's kernel.log (even when empty: it
    says the kernel wrote nothing), the log's tail and its exit code (or signal) in the error."""
    error["kernel_log"] = kernel.log_tail()
    code = KernelLoop.get().run(_exit_code(kernel))
    if code is not None:
        error["kernel_exit"] = code
        error["evalue"] = f"{error.get('evalue') or 'Kernel died'} ({_exit_words(code)})"
    try:
        shutil.copyfile(kernel.log_path, step_folder / "kernel.log")
    except OSError:
        pass  # the run's own error (a full disk) is reported elsewhere


def _exit_words(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def load_papermill() -> Any:
    """papermill, labline's engine and jupyter_client, imported once per process, whichever thread asks."""
    with _IMPORT_LOCK:
        import jupyter_client.kernelspec  # noqa: F401
        import papermill

        from runner.translator import use_translator

        use_translator()  # the project's kernel gets labline's literals, whichever engine runs
    return papermill


def _papermill(
    notebook, output_notebook: Path, parameters, kernel, kernel_name, cell_timeout, timeout, on_cell, allow_errors
) -> None:
    pm = load_papermill()
    pm.execute_notebook(
        notebook,
        str(output_notebook),
        parameters=parameters,
        engine_name=ENGINE,
        kernel_name=kernel_name,
        progress_bar=False,
        log_output=False,
        km=kernel.km,
        kc=kernel.kc,
        execution_timeout=cell_timeout,
        notebook_timeout=timeout,
        on_cell=on_cell,
        allow_errors=allow_errors,
    )


def execute_step(
    notebook: str | Path | Any,
    output_notebook: str | Path,
    parameters: dict[str, Any],
    cwd: str | Path,
    kernel_name: str | None = None,
    cell_timeout: float | None = None,
    timeout: float | None = None,
    on_cell: CellProgress | None = None,
    allow_errors: bool = False,
) -> StepOutcome:
    """Run `notebook` (a path or an nbformat node) with `parameters` into `output_notebook`, its
    kernel working in `cwd`, through `papermill.execute_notebook` on labline's engine.

    The kernel is the one the notebook declares unless `kernel_name` is given. `cell_timeout`
    bounds each cell, `timeout` all the cells together (the kernel's start-up has its own limit,
    `runner.kernels.STARTUP_TIMEOUT`). `allow_errors` runs on past failing cells (the grader).
    Returns a StepOutcome; the executed (or partly executed) notebook is always written.
    Safe to call from many threads at once: kernels are driven by one loop per process.
    """
    started = time.time()
    output_notebook = Path(output_notebook)
    output_notebook.parent.mkdir(parents=True, exist_ok=True)
    nb = read_json(notebook) if isinstance(notebook, (str, Path)) else notebook
    if not isinstance(notebook, (str, Path)):
        import copy

        notebook = copy.deepcopy(notebook)  # papermill changes the node it is given
    total = sum(1 for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip())
    outcome = StepOutcome("succeeded", str(output_notebook), started=started, cells_total=total)

    def progress(done: int, all_cells: int) -> None:
        outcome.cells_done, outcome.cells_total = done, all_cells
        if on_cell:
            on_cell(done, all_cells)

    kernel = None
    pool = KernelLoop.get().pool
    try:
        load_papermill()
        kernel_name = kernel_name or declared_kernel(nb)
        require_kernel(kernel_name)
        loop = KernelLoop.get()
        kernel = loop.run(pool.acquire(kernel_name, str(cwd), tuple(imported_modules(nb))))
        _papermill(
            notebook if not isinstance(notebook, Path) else str(notebook),
            output_notebook,
            parameters,
            kernel,
            kernel_name,
            cell_timeout,
            timeout,
            progress,
            allow_errors,
        )
    except KernelMissing as exc:
        outcome.status, outcome.error = "failed", {"ename": "KernelMissing", "evalue": str(exc), "cell": None}
    except BaseException as exc:  # every ending is data for the manifest, not a crash
        outcome.status = classify_failure(exc)
        outcome.error = _error_from(exc, output_notebook)
        if outcome.status == "dead_kernel" and kernel is not None:
            _dead_kernel(kernel, outcome.error, output_notebook.parent)
        if outcome.status == "interrupted":
            raise
    finally:
        if kernel is not None:
            KernelLoop.get().run(pool.stop(kernel))
        outcome.scraps = read_scraps(output_notebook)
        outcome.finished = time.time()
    return outcome
