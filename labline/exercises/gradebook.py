"""The gradebook: one row per student and exercise, written as CSV (a spreadsheet) or JSON.

A row's `Status` says whether the submission was graded and, if its score was cut short, why;
only the three statuses of `NOT_GRADED` make `labline exercises grade FOLDER` exit 1.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from labline.exercises.grading import GradeReport

FORMATS = ("csv", "json")


class Status(StrEnum):
    GRADED = "graded"  # every cell ran: the score is the checks passed
    NOT_DONE = "not done"  # every cell ran, but an exercise stub still raises
    CRASHED = "crashed"  # the kernel died (os._exit, a segfault): checks after it not run
    TIMED_OUT = "timed out"  # a cell or the whole notebook ran past its limit
    OVER_MEMORY = "over memory"  # an allocation hit the memory cap (MemoryError)
    UNREADABLE = "unreadable"  # not a notebook: no score
    NO_EXERCISE = "no exercise"  # which exercise it answers cannot be told: no score
    GRADER_ERROR = "grader error"  # the grader failed (no kernel, confinement failed): no score

    @property
    def graded(self) -> bool:
        return self not in NOT_GRADED


NOT_GRADED = (Status.UNREADABLE, Status.NO_EXERCISE, Status.GRADER_ERROR)


def status_of(report: GradeReport) -> Status:
    """The gradebook's status of a report: what stopped the notebook, else what its errors say."""
    errors = [c.message for c in report.checks if not c.passed] + [e.error for e in report.cell_errors]
    if any(e.startswith("MemoryError") for e in errors):
        return Status.OVER_MEMORY
    by_run = {"unreadable": Status.UNREADABLE, "error": Status.GRADER_ERROR, "timeout": Status.TIMED_OUT}
    if report.status in by_run:
        return by_run[report.status]
    if report.status == "dead_kernel":
        return Status.CRASHED
    if any(e.unfinished for e in report.cell_errors):
        return Status.NOT_DONE
    return Status.GRADED


@dataclass
class Row:
    """One submission's line in the gradebook, with the report it came from."""

    student: str
    notebook: str
    report: GradeReport
    status: Status
    digest: str  # of the submission and the checks it was graded with (regrading skips an unchanged one)
    feedback: str = ""  # the feedback page, relative to the gradebook's folder
    reused: bool = False  # taken from the previous grading: nothing changed

    @property
    def exercise(self) -> str:
        return self.report.exercise

    def to_dict(self) -> dict:
        return {
            "student": self.student,
            "exercise": self.exercise,
            "status": self.status.value,
            "score": self.report.score,
            "total": self.report.total,
            "seconds": self.report.seconds,
            "checks": {check.name: int(check.passed) for check in self.report.checks},
            "message": self.report.message,
            "problems": self.report.problems,
            "notebook": self.notebook,
            "feedback": self.feedback,
        }


def check_columns(rows: list[Row]) -> list[tuple[str, str, str]]:
    """(exercise, check name, column header) of every check, in order; headers carry the exercise when
    the gradebook holds more than one."""
    seen: dict[tuple[str, str], None] = {}
    for row in rows:
        for check in row.report.checks:
            seen.setdefault((row.exercise, check.name), None)
    several = len({exercise for exercise, _ in seen}) > 1
    return [(exercise, name, f"{exercise}: {name}" if several else name) for exercise, name in seen]


def write_csv(rows: list[Row], path: Path) -> None:
    columns = check_columns(rows)
    head = ["student", "exercise", "status", "score", "total", "seconds"]
    tail = ["message", "notebook", "feedback"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(head + [header for _, _, header in columns] + tail)
        for row in rows:
            data = row.to_dict()
            passed = {(row.exercise, c.name): int(c.passed) for c in row.report.checks}
            marks = [passed.get((exercise, name), "") for exercise, name, _ in columns]
            writer.writerow([data[k] for k in head] + marks + [data[k] for k in tail])


def write_json(rows: list[Row], path: Path) -> None:
    path.write_text(json.dumps([row.to_dict() for row in rows], indent=2) + "\n", encoding="utf-8")


def write_gradebook(rows: list[Row], folder: Path, fmt: str = "csv") -> Path:
    """`gradebook.csv` or `gradebook.json` in `folder`; its path."""
    if fmt not in FORMATS:
        raise ValueError(f"gradebook format {fmt!r}: expected one of {', '.join(FORMATS)}")
    path = folder / f"gradebook.{fmt}"
    (write_csv if fmt == "csv" else write_json)(rows, path)
    return path
