"""Execute one notebook with papermill and report what happened, whatever happened.

`execute_step` never raises for a notebook's own failure: it returns a StepOutcome that says
which cell failed, on which source line, with which exception, and where the partly executed
notebook is. The scraps glued before the failure are read back too.
"""

from __future__ import annotations

import re
import time
import traceback as tb
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import papermill as pm
from papermill.translators import PythonTranslator, papermill_translators

from runner.scraps import read_scraps

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_LINE = re.compile(r"Cell In\[(\d+)\], line (\d+)")


class ReprPythonTranslator(PythonTranslator):
    """Inject strings with `repr`, so a parameter value is always data and arrives exactly as given."""

    @classmethod
    def translate_str(cls, val):
        return repr(val)

    @classmethod
    def translate_escaped_str(cls, str_val):
        return repr(str_val)


papermill_translators.register("python", ReprPythonTranslator)


@dataclass
class StepOutcome:
    """What one execution of a notebook produced."""

    status: str  # succeeded | failed | timeout | dead_kernel
    output_notebook: str
    scraps: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    started: float = 0.0
    finished: float = 0.0

    @property
    def seconds(self) -> float:
        return round(self.finished - self.started, 3)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = self.seconds
        return data


def _failure_details(exc: Exception) -> dict[str, Any]:
    """Cell number, failing source line, exception name and value, and the traceback text."""
    details: dict[str, Any] = {"ename": type(exc).__name__, "evalue": str(exc)}
    if isinstance(exc, pm.PapermillExecutionError):
        text = _ANSI.sub("", "\n".join(exc.traceback))
        details.update(ename=exc.ename, evalue=exc.evalue, cell=exc.exec_count, traceback=text)
        matches = _CELL_LINE.findall(text)
        lines = exc.source.splitlines()
        line_no = int(matches[-1][1]) if matches else None
        if line_no and line_no <= len(lines):
            details.update(line=line_no, source_line=lines[line_no - 1].strip())
        elif lines:
            details.update(source_line=lines[0].strip())
    else:
        details["traceback"] = "".join(tb.format_exception(exc))
    return details


def classify_failure(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "DeadKernelError" or "kernel died" in str(exc).lower():
        return "dead_kernel"
    if name in ("CellTimeoutError", "TimeoutError", "NotebookTimeout"):
        return "timeout"
    return "failed"


def execute_step(
    notebook: str | Path,
    output_notebook: str | Path,
    parameters: dict[str, Any],
    cwd: str | Path,
    kernel_name: str | None = None,
    cell_timeout: float | None = None,
) -> StepOutcome:
    """Run `notebook` with `parameters` into `output_notebook`, with the kernel working in `cwd`.

    Returns a StepOutcome; the executed (or partly executed) notebook is always written.
    """
    output_notebook = Path(output_notebook)
    output_notebook.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    status, error = "succeeded", None
    try:
        pm.execute_notebook(
            str(notebook),
            str(output_notebook),
            parameters=parameters,
            cwd=str(cwd),
            kernel_name=kernel_name,
            progress_bar=False,
            log_output=False,
            execution_timeout=cell_timeout,
        )
    except Exception as exc:  # the notebook's failure is data for the manifest, not a crash of the runner
        status, error = classify_failure(exc), _failure_details(exc)
    return StepOutcome(
        status=status,
        output_notebook=str(output_notebook),
        scraps=read_scraps(output_notebook),
        error=error,
        started=started,
        finished=time.time(),
    )
