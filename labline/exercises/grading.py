"""Grade a student's notebook against its solution's checks, whatever the notebook does.

The grader trusts the student's work cells and nothing else: it removes every check cell the
student's copy holds, puts the solution's checks (visible and hidden) back after the cell each
followed in the solution (found by cell id; at the end when the student's notebook lost it),
and runs the result with every cell allowed to fail, under a time limit. Each check cell is
one check worth one point: passed when it ran without an error.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from labline.exercises.execution import DEFAULT_CELL_TIMEOUT, DEFAULT_TOTAL_TIMEOUT, Execution, cell_error, run_notebook
from labline.exercises.explained import explain_asserts
from labline.exercises.template import HIDDEN_CHECKS, STUB_EXCEPTION, STUB_PREFIX, cell_tags, is_check

GRADER_TAG = "labline-grader"
WRITTEN_SOURCE = "labline-check-source"  # a graded check's metadata: its source as written (it runs rewritten)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_LINE = re.compile(r"Cell In\[\d+\], line (\d+)")


@dataclass
class CheckResult:
    name: str
    hidden: bool
    passed: bool
    message: str
    line: str = ""  # the check's statement that failed (its assert: what was expected)


@dataclass
class CellError:
    """An error in one of the student's own cells, where it happened."""

    cell: int  # index in the graded notebook
    line: int | None  # line in that cell
    source_line: str
    error: str  # "ename: evalue"
    unfinished: bool  # a stub still raising: not done yet, rather than wrong

    def describe(self) -> str:
        where = f"cell {self.cell}" + (f", line {self.line}" if self.line else "")
        return f"{where} ({self.source_line[:60]}) {'is not done yet' if self.unfinished else 'raised'}: {self.error}"


@dataclass
class GradeReport:
    """Every check with its verdict and message, the score, and what went wrong in the student's cells."""

    exercise: str
    notebook: str
    status: str  # completed | timeout | dead_kernel | unreadable | error
    message: str
    checks: list[CheckResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cell_errors: list[CellError] = field(default_factory=list)

    @property
    def score(self) -> int:
        return sum(c.passed for c in self.checks)

    @property
    def total(self) -> int:
        return len(self.checks)

    @property
    def passed(self) -> bool:
        return self.total > 0 and self.score == self.total

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(score=self.score, total=self.total, passed=self.passed)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> GradeReport:
        """The report `to_dict` wrote (a previous grading's, read back)."""
        fields = {k: data[k] for k in ("exercise", "notebook", "status", "message", "problems", "seconds")}
        checks = [CheckResult(**c) for c in data["checks"]]
        return cls(**fields, checks=checks, cell_errors=[CellError(**e) for e in data.get("cell_errors", [])])

    def to_text(self) -> str:
        lines = [f"exercise {self.exercise}: {self.notebook}"]
        for check in self.checks:
            mark = "PASS" if check.passed else "FAIL"
            kind = " (hidden)" if check.hidden else ""
            message = "" if check.passed else ": " + check.message.replace("\n", "\n        ")
            lines.append(f"  {mark}  {check.name}{kind}{message}")
        if self.status != "completed":
            lines.append(f"  stopped early: {self.message}")
        for problem in self.problems:
            lines.append(f"  note: {problem}")
        lines.append(f"score: {self.score}/{self.total}")
        return "\n".join(lines)


def check_name(cell: NotebookNode, number: int) -> str:
    """A check's name: the first comment line of its cell, else its number."""
    for line in cell.source.splitlines():
        text = line.strip()
        if text.startswith("#"):
            return text.lstrip("#").strip().removeprefix("Check:").strip() or f"check {number}"
        if text:
            break
    return f"check {number}"


def solution_checks(solution: NotebookNode) -> list[tuple[str | None, NotebookNode]]:
    """Each check cell of the solution with the id of the nearest non-check cell before it."""
    anchor, found = None, []
    for cell in solution.cells:
        if is_check(cell):
            found.append((anchor, cell))
        else:
            anchor = cell.get("id")
    return found


def assemble(student: NotebookNode, solution: NotebookNode) -> NotebookNode:
    """The student's non-check cells with the solution's checks in place, each check marked for the grader
    and its asserts rewritten to say expected and found (`explained`)."""
    cells = [copy.deepcopy(c) for c in student.cells if not is_check(c)]
    ids = [c.get("id") for c in cells]
    pending: dict[str | None, list[NotebookNode]] = {}
    for anchor, check in solution_checks(solution):
        graded = copy.deepcopy(check)
        graded.metadata["tags"] = cell_tags(check) + [GRADER_TAG]
        graded.metadata[WRITTEN_SOURCE] = check.source
        graded.source = explain_asserts(check.source)
        graded.outputs, graded.execution_count = [], None
        key = anchor if (anchor is None or anchor in ids) else "__end__"
        pending.setdefault(key, []).append(graded)
    assembled = list(pending.get(None, []))
    for cell in cells:
        assembled.append(cell)
        assembled.extend(pending.get(cell.get("id"), []))
    assembled.extend(pending.get("__end__", []))
    notebook = copy.deepcopy(student)
    notebook.cells = assembled
    return notebook


def _error_text(error: dict) -> str:
    value = error["evalue"].strip()
    return f"{error['ename']}: {value}" if value else error["ename"]


def error_line(cell: NotebookNode, error: dict) -> tuple[int | None, str]:
    """The line of `cell` the error happened on (its outermost frame) and that line's code."""
    traceback = _ANSI.sub("", "\n".join(error.get("traceback") or []))
    found = _CELL_LINE.search(traceback)
    lines = cell.get("metadata", {}).get(WRITTEN_SOURCE, cell.source).splitlines()  # as the instructor wrote it
    if found and 0 < int(found[1]) <= len(lines):
        return int(found[1]), lines[int(found[1]) - 1].strip()
    return None, next((line.strip() for line in lines if line.strip()), "")


def report_from_execution(exercise: str, label: str, execution: Execution) -> GradeReport:
    """Read the verdict of every check, and the errors of the student's own cells, from an execution."""
    report = GradeReport(exercise, label, execution.status, execution.message, seconds=execution.seconds)
    number = 0
    for index, cell in enumerate(execution.notebook.cells):
        if cell.cell_type != "code":
            continue
        error = cell_error(cell)
        ran = execution.finished or (execution.stopped_at is not None and index < execution.stopped_at)
        if GRADER_TAG in cell_tags(cell):
            number += 1
            name, hidden = check_name(cell, number), HIDDEN_CHECKS in cell_tags(cell)
            if not ran:
                report.checks.append(CheckResult(name, hidden, False, f"not run: {execution.message}"))
            elif error is None:
                report.checks.append(CheckResult(name, hidden, True, "ok"))
            else:
                report.checks.append(CheckResult(name, hidden, False, _error_text(error), error_line(cell, error)[1]))
        elif error is not None:
            unfinished = error["ename"] == STUB_EXCEPTION and STUB_PREFIX in error["evalue"]
            line, source_line = error_line(cell, error)
            problem = CellError(index, line, source_line, _error_text(error), unfinished)
            report.cell_errors.append(problem)
            report.problems.append(problem.describe())
    return report


def read_student(student_path: str | Path) -> NotebookNode:
    """The student's notebook, validated; raises (any exception) when it is not a readable notebook."""
    student = nbformat.read(Path(student_path), as_version=4)
    nbformat.validate(student)
    return student


def unreadable_report(exercise: str, label: str, solution: NotebookNode, exc: BaseException) -> GradeReport:
    """The report of a notebook that does not even parse: every check failed, score zero."""
    report = GradeReport(
        exercise,
        label,
        "unreadable",
        f"the notebook does not parse: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}",
    )
    for number, (_, check) in enumerate(solution_checks(solution), start=1):
        hidden = HIDDEN_CHECKS in cell_tags(check)
        name = check_name(check, number)
        report.checks.append(CheckResult(name, hidden, False, "not run: the notebook does not parse"))
    return report


def grade_notebook(
    student_path: str | Path,
    exercise: str,
    solution: NotebookNode,
    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
) -> GradeReport:
    """Grade the notebook at `student_path` in its own folder; a notebook that does not even parse scores zero."""
    student_path = Path(student_path)
    try:
        student = read_student(student_path)
    except Exception as exc:  # unreadable JSON, not a notebook, a missing file: all a report
        return unreadable_report(exercise, str(student_path), solution, exc)
    return grade(
        student, exercise, solution, student_path.resolve().parent, str(student_path), cell_timeout, total_timeout
    )


def grade(
    student: NotebookNode,
    exercise: str,
    solution: NotebookNode,
    cwd: str | Path,
    label: str = "notebook",
    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
    prelude: str | None = None,
) -> GradeReport:
    """Grade an in-memory notebook, its kernel working in `cwd`, after running `prelude` (the confinement)."""
    execution = run_notebook(assemble(student, solution), cwd, cell_timeout, total_timeout, prelude=prelude)
    return report_from_execution(exercise, label, execution)


def report_json(report: GradeReport) -> str:
    return json.dumps(report.to_dict(), indent=2)
