"""A class of planted submissions, made from an exercise's solution, each with the row it must get.

Every way a submission can go wrong that a class grader must survive: correct, one check wrong, a
stub left, a syntax error, an infinite loop, `os._exit` (leaving a process behind in its own
session), a 20 GiB allocation, writes and deletes outside its folder, a renamed file. They are
written for `03_data_checks` (whose parts and checks the expectations name); `solved` makes a
correct submission of any exercise. The grading tests and `benchmarks/grade_class.py` grade them.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from labline.exercises.gradebook import Status
from labline.exercises.grading import check_name, solution_checks

EXERCISE = "03_data_checks"
PARTS = ("part1", "part2", "part3", "part4")
LEFT_BEHIND = "3141.5926"  # the argument of the `sleep` the crashing submission leaves running
ALL_CHECKS = ("check1", "hidden1", "check2", "hidden2", "check3", "hidden3", "check4", "hidden4")


@dataclass(frozen=True)
class Planted:
    """One submission and what grading it must give."""

    student: str
    kind: str
    path: Path
    exercise: str
    status: Status
    passed: tuple[str, ...]  # ids of the checks that must pass (the solution's check cells)


def solved(template: NotebookNode, solution: NotebookNode, answers: dict[str, str] | None = None) -> NotebookNode:
    """The template with every stubbed cell given its solution, then `answers` (cell id -> source) written."""
    by_id = {cell.id: cell for cell in solution.cells}
    notebook = copy.deepcopy(template)
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.id in by_id and not cell.get("metadata", {}).get("tags"):
            cell.source = by_id[cell.id].source
        if answers and cell.id in answers:
            cell.source = answers[cell.id]
    return notebook


def _solution_of(solution: NotebookNode, cell_id: str) -> str:
    return next(cell.source for cell in solution.cells if cell.id == cell_id)


def _kinds(
    solution: NotebookNode, template: NotebookNode, outside: Path
) -> dict[str, tuple[dict[str, str], Status, tuple[str, ...]]]:
    """kind -> (answers replacing cells of the correct notebook, status, checks that pass)."""
    part2 = _solution_of(solution, "part2")
    stub4 = _solution_of(template, "part4")  # the stub as handed out
    endless = "import time\n\nwhile True:\n    time.sleep(0.05)\n"
    crash = (
        f"import os, subprocess\n\nsubprocess.Popen(['sleep', '{LEFT_BEHIND}'], start_new_session=True)\nos._exit(3)\n"
    )
    escape = (
        f"import shutil\n\nfor _victim in ['../escaped.txt', {str(outside / 'escaped.txt')!r}]:\n"
        "    try:\n        open(_victim, 'w').write('escaped')\n    except OSError as _exc:\n        print(_exc)\n"
        f"shutil.rmtree({str(outside / 'keep')!r})\n"
    )
    first4, first2, first6 = ALL_CHECKS[:4], ALL_CHECKS[:2], ALL_CHECKS[:6]
    return {
        "correct": ({}, Status.GRADED, ALL_CHECKS),
        "one check wrong": (
            {"part2": part2.replace("< low) | (batch[column] > high", "<= low) | (batch[column] >= high")},
            Status.GRADED,
            tuple(c for c in ALL_CHECKS if c != "hidden2"),
        ),
        "stub left": ({"part4": stub4}, Status.NOT_DONE, first6),
        "syntax error": (
            {"part1": "def check_columns(batch):\n    return [c for c in batch.columns if\n"},
            Status.GRADED,
            ("check2", "hidden2", "check3", "hidden3"),
        ),
        "infinite loop": ({"part3": endless}, Status.TIMED_OUT, first4),
        "os._exit": ({"part2": crash}, Status.CRASHED, first2),
        "20 GiB allocation": (
            {"part2": "_hog = bytearray(20 * 2**30)\n" + part2},
            Status.OVER_MEMORY,
            ("check1", "hidden1", "check3", "hidden3"),
        ),
        "write outside": ({"part4": _solution_of(solution, "part4") + "\n\n" + escape}, Status.GRADED, ALL_CHECKS),
    }


def plant_class(
    folder: Path, outside: Path, solutions: Path, templates: Path, count: int | None = None
) -> list[Planted]:
    """Write the planted submissions of exercise 03 under `folder` (`folder/<student>/03_data_checks.ipynb`,
    the renamed one as `folder/final version (2).ipynb`); `outside` is the folder the misbehaving one attacks.
    With `count`, the kinds repeat (students `s001`...) until there are that many."""
    solution = nbformat.read(solutions / f"{EXERCISE}.ipynb", as_version=4)
    template = nbformat.read(templates / f"{EXERCISE}.ipynb", as_version=4)
    kinds = list(_kinds(solution, template, outside).items()) + [("renamed file", ({}, Status.GRADED, ALL_CHECKS))]
    planted = []
    for number in range(count or len(kinds)):
        kind, (answers, status, passed) = kinds[number % len(kinds)]
        student = f"s{number + 1:03d}" if count else re.sub(r"[^a-z0-9]+", "_", kind.lower()).strip("_")
        if kind == "renamed file":
            path = folder / (f"{student} final version.ipynb" if count else "final version (2).ipynb")
            student = path.stem
        else:
            path = folder / student / f"{EXERCISE}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(solved(template, solution, answers), path)
        planted.append(Planted(student, kind, path, EXERCISE, status, passed))
    return planted


def check_names(solution: NotebookNode) -> dict[str, str]:
    """Check cell id -> the check's name in reports and gradebooks."""
    return {cell.id: check_name(cell, n) for n, (_, cell) in enumerate(solution_checks(solution), start=1)}
