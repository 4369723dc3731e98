"""Build templates and check that every exercise pair is in order.

`check_exercise` fails an exercise, with a message a person can act on, when its committed
template is not what `build` writes (a diff), when its solution does not run green under
papermill with its hidden checks, when a check asserts without a message (the student would read
a bare AssertionError), or when its untouched template fails anywhere but at a stub or passes
its own checks (nothing left to do).
"""

from __future__ import annotations

import ast
import difflib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from labline.exercises.catalog import Exercise
from labline.exercises.execution import DEFAULT_CELL_TIMEOUT, DEFAULT_TOTAL_TIMEOUT, cell_error, run_notebook
from labline.exercises.grading import GRADER_TAG, GradeReport, assemble, report_from_execution, solution_checks
from labline.exercises.template import (
    STUB_EXCEPTION,
    STUB_PREFIX,
    SolutionFormatError,
    Template,
    build_template,
    cell_tags,
    is_check,
    render,
)
from runner.execute import execute_step

MAX_DIFF_LINES = 60


@dataclass
class CheckOutcome:
    exercise: str
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def load_template(exercise: Exercise) -> Template:
    """Read a solution and build its template (raises SolutionFormatError naming the bad marker)."""
    solution = nbformat.read(exercise.solution, as_version=4)
    return build_template(solution, exercise.name)


def build(exercise: Exercise, out_dir: Path | None = None) -> tuple[Path, bool]:
    """Write the template; returns its path and whether its bytes changed."""
    text = render(load_template(exercise).notebook)
    target = (Path(out_dir) / exercise.template.name) if out_dir else exercise.template
    target.parent.mkdir(parents=True, exist_ok=True)
    changed = not target.exists() or target.read_text(encoding="utf-8") != text
    if changed:
        target.write_text(text, encoding="utf-8")
    return target, changed


def bare_asserts(exercise: str, solution) -> list[str]:
    """One problem per `assert` in a check cell without a message: the student would read a bare AssertionError."""
    problems = []
    for index, cell in enumerate(solution.cells):
        if cell.cell_type != "code" or not is_check(cell):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue  # the solution's run reports it, with its line
        lines = cell.source.splitlines()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assert) and node.msg is None:
                problems.append(
                    f"{exercise}, cell {index} ({cell.get('id')}), line {node.lineno}: an assert without a message "
                    f"({lines[node.lineno - 1].strip()}); add one that says what was expected and what was found"
                )
    return problems


def stale_diff(exercise: Exercise, expected: str) -> str | None:
    """None when the committed template is what build writes; else a unified diff (shortened)."""
    if not exercise.template.exists():
        return f"template {exercise.template} is missing; run `labline exercises build`"
    committed = exercise.template.read_text(encoding="utf-8")
    if committed == expected:
        return None
    diff = list(
        difflib.unified_diff(
            committed.splitlines(),
            expected.splitlines(),
            f"committed {exercise.template}",
            f"built from {exercise.solution}",
            lineterm="",
            n=1,
        )
    )
    if len(diff) > MAX_DIFF_LINES:
        diff = diff[:MAX_DIFF_LINES] + [f"... ({len(diff) - MAX_DIFF_LINES} more diff lines)"]
    return (
        f"template {exercise.template} is stale (not what `labline exercises build` writes from "
        f"{exercise.solution}); run `labline exercises build`:\n" + "\n".join(diff)
    )


def run_solution(exercise: Exercise, cell_timeout: float) -> str | None:
    """Run the solution, hidden checks included, top to bottom under papermill; None when green."""
    for attempt in (1, 2):
        with tempfile.TemporaryDirectory(prefix=f"labline-{exercise.name}-") as tmp:
            outcome = execute_step(
                exercise.solution,
                Path(tmp) / exercise.solution.name,
                {},
                cwd=exercise.solution.parent,
                cell_timeout=cell_timeout,
            )
        if outcome.status == "succeeded":
            return None
        error = outcome.error or {}
        # A failure outside every cell is the kernel's plumbing (a start or message timeout on an
        # overloaded machine), not the solution: it gets one more try.
        if error.get("cell") is not None or attempt == 2:
            break
    line = f": {error['source_line']}" if error.get("source_line") else ""
    where = f"cell {error['cell']}{line}" if error.get("cell") is not None else "no cell (kernel or messaging)"
    detail = (
        ""
        if error.get("cell") is not None
        else "\n  " + "\n  ".join(str(error.get("traceback", "")).strip().splitlines()[-6:])
    )
    return (
        f"solution {exercise.solution} {outcome.status} at {where}\n"
        f"  {error.get('ename', 'Error')}: {error.get('evalue', '')}{detail}"
    )


def template_problems(template: Template, report: GradeReport, notebook) -> list[str]:
    """What is wrong with how the untouched template ran: an error before any stub, or nothing to do."""
    problems = []
    if report.status != "completed":
        problems.append(f"template stopped early: {report.message}")
    for index, cell in enumerate(notebook.cells):
        error = cell_error(cell) if cell.cell_type == "code" else None
        if error is None:
            continue
        at_stub = error["ename"] == STUB_EXCEPTION and STUB_PREFIX in error["evalue"]
        allowed = at_stub or GRADER_TAG in cell_tags(cell) or cell.get("id") in template.expression_cells
        if not allowed:
            problems.append(
                f"template fails at cell {index} ({cell.get('id')}) before reaching a stub: "
                f"{error['ename']}: {error['evalue']}"
            )
        break  # only the first failure says something: later cells miss what the stub did not define
    if report.passed:
        problems.append(f"template passes all {report.total} checks untouched: the exercise leaves nothing to do")
    return problems


def check_exercise(
    exercise: Exercise,
    run: bool = True,
    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
) -> CheckOutcome:
    """Every check of one exercise pair; problems are collected, never raised."""
    outcome = CheckOutcome(exercise.name)
    try:
        solution = nbformat.read(exercise.solution, as_version=4)
        template = build_template(solution, exercise.name)
    except (SolutionFormatError, ValueError, OSError) as exc:
        outcome.problems.append(f"solution {exercise.solution} cannot be built: {exc}")
        return outcome
    if any(c.cell_type == "code" and (c.outputs or c.execution_count) for c in solution.cells):
        outcome.problems.append(f"solution {exercise.solution} has outputs; commit it with outputs cleared")
    if template.stub_count == 0:
        outcome.problems.append(f"solution {exercise.solution} has no solution region: nothing for the student")
    if not solution_checks(solution):
        outcome.problems.append(f"solution {exercise.solution} has no cell tagged checks or hidden-checks")
    outcome.problems.extend(bare_asserts(exercise.name, solution))
    stale = stale_diff(exercise, render(template.notebook))
    if stale:
        outcome.problems.append(stale)
    if not run:
        return outcome
    failure = run_solution(exercise, cell_timeout)
    if failure:
        outcome.problems.append(failure)
    execution = run_notebook(
        assemble(template.notebook, solution), exercise.template.parent, cell_timeout, total_timeout
    )
    report = report_from_execution(exercise.name, str(exercise.template), execution)
    outcome.problems.extend(template_problems(template, report, execution.notebook))
    return outcome
