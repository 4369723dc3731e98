"""Exercises: templates built from solutions, the sync check, and grading of student notebooks.

Kernel runs are the cost here: `check` runs every solution and every template once (one session
fixture), and grading runs a handful of students of exercise 03 (pandas only, no torch).
"""

from __future__ import annotations

import copy
import json
import shutil

import nbformat
import psutil
import pytest

from labline.cli import main
from labline.exercises.catalog import ExerciseError, discover, infer_name
from labline.exercises.checking import template_problems
from labline.exercises.execution import Execution
from labline.exercises.grading import (
    GRADER_TAG,
    WRITTEN_SOURCE,
    CheckResult,
    GradeReport,
    assemble,
    grade,
    grade_notebook,
)
from labline.exercises.template import SolutionFormatError, build_template, strip_solutions
from tests.fixtures import ROOT
from tests.fixtures.cli import run_cli

EXERCISES = ["01_torch_inference", "02_torch_module", "03_data_checks", "04_slices_and_bias"]
GRADED = "03_data_checks"  # 4 parts, each with one visible and one hidden check: 8 checks


def cli(capsys, *args):
    """`labline ARGS` in this process (the subprocess path is tested by the kernel tests): (code, out, err)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def code(source, cell_id, tags=None):
    cell = nbformat.v4.new_code_cell(source)
    cell.id = cell_id
    if tags:
        cell.metadata["tags"] = tags
    return cell


def tiny_solution():
    cells = [
        code(
            "def area(w, h):\n    # BEGIN SOLUTION hint: multiply the sides\n    result = w * h\n    return result\n"
            "    # END SOLUTION\n\nscale = 2 * 3  # SOLUTION hint: two times three",
            "work",
        ),
        code("# Check: area works\nassert area(2, 3) == 6", "visible", ["checks"]),
        code("# Check: the scale\nassert scale == 6", "hidden", ["hidden-checks"]),
    ]
    cells[0].outputs = [nbformat.v4.new_output("stream", text="noise")]
    cells[0].execution_count = 7
    return nbformat.v4.new_notebook(
        cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "P", "language": "python"}}
    )


# ---- building: no kernels -------------------------------------------------------------------------------------


def test_template_replaces_regions_and_expressions_and_drops_hidden_checks():
    template = build_template(tiny_solution(), "00_tiny")
    sources = [c.source for c in template.notebook.cells]
    assert sources[0] == (
        "def area(w, h):\n    raise NotImplementedError('Exercise: multiply the sides')\n\n"  # noqa
        "scale = ...  # hint: two times three"
    )
    assert [c.id for c in template.notebook.cells] == ["work", "visible"]  # hidden check gone, ids kept
    assert template.notebook.cells[0].outputs == [] and template.notebook.cells[0].execution_count is None
    assert template.notebook.metadata["labline"]["exercise"] == "00_tiny"
    assert template.stub_cells == ["work"] and template.expression_cells == ["work"] and template.stub_count == 2
    compile(sources[0], "template", "exec")  # the stubbed code still parses


def test_build_is_deterministic_and_matches_the_committed_templates(tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        status, _, err = cli(capsys, "exercises", "build", "--exercises", str(out))
        assert status == 0, err
    for name in EXERCISES:
        built = (first / f"{name}.ipynb").read_bytes()
        assert built == (second / f"{name}.ipynb").read_bytes()
        assert built == (ROOT / "exercises" / f"{name}.ipynb").read_bytes(), f"{name}: committed template is stale"
        notebook = nbformat.reads(built.decode(), as_version=4)
        assert not any("hidden-checks" in c.metadata.get("tags", []) for c in notebook.cells)
        assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")
        assert "# BEGIN SOLUTION" not in built.decode() and "# END SOLUTION" not in built.decode()


@pytest.mark.parametrize(
    "source, expected",
    [
        ("# BEGIN SOLUTION\nx = 1\n", "line 1: BEGIN SOLUTION has no END SOLUTION"),
        ("x = 1\n# END SOLUTION\n", "line 2: END SOLUTION without a BEGIN SOLUTION"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "line 2: BEGIN SOLUTION inside the region"),
        ("print(1)  # SOLUTION\n", "line 1: a '# SOLUTION' line must be an assignment or a return"),
        ("x = (1 +  # SOLUTION\n 2)\n", "line 1: a '# SOLUTION' line must be one complete statement"),
    ],
)
def test_bad_markers_are_refused_with_their_line(source, expected):
    with pytest.raises(SolutionFormatError, match=expected.replace("(", r"\(").replace("'", "'")):
        strip_solutions(source, "00_x, cell 0")


def test_stale_template_fails_check_with_a_diff(tmp_path, capsys):
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    shutil.copy(ROOT / "solutions" / f"{GRADED}.ipynb", solutions)
    exercises.mkdir()
    stale = (ROOT / "exercises" / f"{GRADED}.ipynb").read_text().replace("def check_ranges", "def check_range")
    (exercises / f"{GRADED}.ipynb").write_text(stale)
    folders = ("--solutions", str(solutions), "--exercises", str(exercises))
    status, out, _ = cli(capsys, "exercises", "check", "--no-run", *folders)
    assert status == 1
    assert "is stale" in out and '-    "def check_range(' in out, out
    assert cli(capsys, "exercises", "build", *folders)[0] == 0
    status, out, _ = cli(capsys, "exercises", "check", "--no-run", *folders)
    assert status == 0 and f"ok   {GRADED}" in out, out
    (exercises / "09_renamed.ipynb").write_text("{}")
    status, out, _ = cli(capsys, "exercises", "check", "--no-run", *folders)
    assert status == 1 and "09_renamed.ipynb: a template without a solution" in out, out
    status, out, _ = cli(capsys, "exercises", "list", "--exercises", str(exercises))
    title = "Exercise 03: the checks that stop a corrupted batch"
    assert status == 0 and out.splitlines()[0].split("\t") == [GRADED, title, str(exercises / f"{GRADED}.ipynb")]
    assert "solutions" not in out, "a student's listing names no solution"


def _executed(cells):
    notebook = nbformat.v4.new_notebook(cells=cells)
    return Execution(notebook, "completed", "every cell ran", None, 0.1)


def _error(cell, ename, evalue):
    cell.outputs = [nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[])]
    return cell


def test_template_rules_catch_an_early_failure_and_an_exercise_with_nothing_to_do():
    template = build_template(tiny_solution(), "00_tiny")
    broken = _executed(
        [
            _error(code("import nothing", "setup"), "ModuleNotFoundError", "No module named 'nothing'"),
            _error(code("raise X", "work"), "NotImplementedError", "Exercise: multiply the sides"),
        ]
    )
    failing = GradeReport("00_tiny", "t", "completed", "", [CheckResult("c", False, False, "AssertionError")])
    problems = template_problems(template, failing, broken.notebook)
    assert len(problems) == 1 and "fails at cell 0 (setup) before reaching a stub: ModuleNotFoundError" in problems[0]
    at_stub = _executed(
        [code("x = 1", "setup"), _error(code("raise X", "work"), "NotImplementedError", "Exercise: multiply the sides")]
    )
    assert template_problems(template, failing, at_stub.notebook) == []
    passing = GradeReport("00_tiny", "t", "completed", "", [CheckResult("c", False, True, "ok")])
    assert "passes all 1 checks untouched" in template_problems(template, passing, at_stub.notebook)[0]


def test_checks_are_put_back_after_the_cell_they_followed():
    solution = tiny_solution()
    student = build_template(solution, "00_tiny").notebook
    student.cells.insert(1, code("helper = 1", "mine"))
    student.cells[2].source = "# Check: area works\npass  # the student disarmed it"
    assembled = assemble(student, solution)
    assert [c.id for c in assembled.cells] == ["work", "visible", "hidden", "mine"]
    # the solution's check, not the student's: kept as written, run rewritten to say expected and found
    assert "assert area(2, 3) == 6" in assembled.cells[1].metadata[WRITTEN_SOURCE]
    assert "explained.compare(area(2, 3), '==', 6)" in assembled.cells[1].source
    assert all(GRADER_TAG in c.metadata["tags"] for c in assembled.cells[1:3])
    student.cells[0].id = "renamed"  # anchors lost: the checks go last
    assert [c.id for c in assemble(student, solution).cells] == ["renamed", "mine", "visible", "hidden"]


def test_exercise_is_inferred_from_metadata_or_file_name(tmp_path):
    stamped = tmp_path / "homework.ipynb"
    shutil.copy(ROOT / "exercises" / f"{GRADED}.ipynb", stamped)
    assert infer_name(stamped, EXERCISES) == GRADED
    named = tmp_path / "02_torch_module-alice.ipynb"
    named.write_text("{not json")
    assert infer_name(named, EXERCISES) == "02_torch_module"
    with pytest.raises(ExerciseError, match="pass --exercise"):
        infer_name(tmp_path / "unknown.ipynb", EXERCISES)


def test_grade_usage_errors(tmp_path, capsys):
    status, _, err = cli(capsys, "exercises", "grade", str(tmp_path / "nope.ipynb"))
    assert status == 2 and "does not exist" in err
    shutil.copy(ROOT / "exercises" / f"{GRADED}.ipynb", tmp_path / "x.ipynb")
    status, _, err = cli(capsys, "exercises", "grade", str(tmp_path / "x.ipynb"), "--exercise", "99_nothing")
    assert status == 2 and "unknown exercise 99_nothing" in err
    status, _, err = cli(capsys, "exercises", "grade", str(tmp_path / "x.ipynb"), "--timeout", "0")
    assert status == 2 and "--timeout must be a positive number of seconds" in err


def test_unparseable_notebook_gets_a_zero_score_not_a_crash(tmp_path, capsys):
    broken = tmp_path / f"{GRADED}-bob.ipynb"
    broken.write_text('{"cells": [')
    status, out, err = cli(capsys, "exercises", "grade", str(broken), "--json")
    assert status == 1, err
    report = json.loads(out)
    assert (report["status"], report["score"], report["total"]) == ("unreadable", 0, 8)
    assert "does not parse" in report["message"]


# ---- kernels: the sync check over every exercise, and grading -------------------------------------------------


@pytest.fixture(scope="session")
def check_all():
    return run_cli("exercises", "check", "--cell-timeout", "300", "--timeout", "900", timeout=1800)


@pytest.mark.timeout(1800)  # eight notebook runs: on a crowded machine they outlast the default 600 s
def test_every_exercise_pair_is_in_order(check_all):
    assert check_all.returncode == 0, check_all.stdout + check_all.stderr
    for name in EXERCISES:
        assert f"ok   {name}" in check_all.stdout
    assert discover()[0].name == EXERCISES[0] and len(discover()) >= 4


@pytest.fixture(scope="session")
def pair():
    solution = nbformat.read(ROOT / "solutions" / f"{GRADED}.ipynb", as_version=4)
    template = nbformat.read(ROOT / "exercises" / f"{GRADED}.ipynb", as_version=4)
    return solution, template


def student(pair, answers: dict[str, str] | None = None, solved: tuple[str, ...] = ()):
    """The template with the solution's cell pasted into `solved` cells and `answers` written into others."""
    solution, template = pair
    notebook = copy.deepcopy(template)
    by_id = {c.id: c for c in solution.cells}
    for cell in notebook.cells:
        if cell.id in solved:
            cell.source = by_id[cell.id].source
        if answers and cell.id in answers:
            cell.source = answers[cell.id]
    return notebook


def write(notebook, path):
    nbformat.write(notebook, path)
    return path


def passed(report):
    return {c.name for c in report.checks if c.passed}


def test_fully_correct_student_gets_full_marks(pair, tmp_path):
    path = write(student(pair, solved=("part1", "part2", "part3", "part4")), tmp_path / "alice.ipynb")
    result = run_cli("exercises", "grade", str(path), "--json", "--cell-timeout", "300", "--timeout", "600")
    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (report["exercise"], report["score"], report["total"], report["status"]) == (GRADED, 8, 8, "completed")
    assert sum(c["hidden"] for c in report["checks"]) == 4 and report["problems"] == []


def test_partly_correct_student_gets_the_checks_of_the_parts_done(pair, tmp_path, capsys):
    path = write(student(pair, solved=("part1", "part2")), tmp_path / "bob.ipynb")
    status, out, err = cli(capsys, "exercises", "grade", str(path), "--cell-timeout", "300", "--timeout", "600")
    assert status == 1 and "score: 4/8" in out, out + err
    assert "PASS  check_ranges counts the values out of range, per column, and allows the bounds (hidden)" in out
    assert "FAIL  check_shift passes the clean batch" in out
    assert "is not done yet: NotImplementedError: Exercise: for each column in iris.FEATURES" in out  # noqa


def test_syntax_error_costs_only_the_checks_that_need_the_broken_cell(pair, tmp_path):
    broken = {"part1": "def check_columns(batch):\n    return [c for c in batch.columns if\n"}
    notebook = student(pair, broken, solved=("part2", "part3", "part4"))
    report = grade_notebook(write(notebook, tmp_path / "carol.ipynb"), GRADED, pair[0], 300, 600)
    assert report.status == "completed" and (report.score, report.total) == (4, 8)
    assert all("check_ranges" in name or "check_shift" in name for name in passed(report))
    assert any("SyntaxError" in p for p in report.problems), report.problems
    failed = [c for c in report.checks if not c.passed]
    assert all("NameError" in c.message for c in failed), failed


def kernels_left() -> list[psutil.Process]:
    """This process's descendants but the kernel templates, which a long-lived grader keeps for the next submission."""
    from runner.kernels import KernelLoop

    templates = {t.process.pid for t in KernelLoop.get().pool.templates.all() if t.alive}
    return [p for p in psutil.Process().children(recursive=True) if p.pid not in templates]


def test_never_ending_and_kernel_killing_students_get_a_report(pair, tmp_path):
    # Sleeping, not spinning, so the endless cell leaves the shared CPU to the rest of the suite; the per-cell
    # limit leaves room for the setup cell's imports on a busy machine.
    endless = "import time\n\ndef check_ranges(batch):\n    return []\n\nwhile True:\n    time.sleep(0.05)\n"
    forever = student(pair, {"part2": endless}, solved=("part1",))
    report = grade(forever, GRADED, pair[0], tmp_path, "dave.ipynb", cell_timeout=12, total_timeout=120)
    assert report.status == "timeout" and "time limit" in report.message
    assert (report.score, report.total) == (2, 8)  # the columns checks ran before the endless cell
    assert all(c.message.startswith("not run: time limit") for c in report.checks if not c.passed)
    assert kernels_left() == [], "a kernel was left behind"

    killer = student(pair, {"setup": "import os\nos._exit(3)"})
    report = grade(killer, GRADED, pair[0], tmp_path, "eve.ipynb", cell_timeout=60, total_timeout=120)
    assert report.status == "dead_kernel" and (report.score, report.total) == (0, 8)
    assert "kernel died" in report.message and "kernel died" in report.to_text()
    assert kernels_left() == []
