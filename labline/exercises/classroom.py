"""Grade a whole class: every notebook under the folders given is a submission, graded in parallel,
each in a private copy under its own confinement (`isolation`), into a gradebook, one feedback page
each and a class summary.

The student is the first folder under the one given (`submitted/alice/03_data_checks.ipynb`), or
for a notebook lying directly in it, its file name without the exercise's name
(`03_data_checks-alice.ipynb`). A submission whose notebook and checks did not change since the
last grading into the same folder is not run again: its row is read back (`force` re-grades).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from labline.exercises.catalog import Exercise, ExerciseError, infer_name, select
from labline.exercises.execution import PRELUDE_CELL, prestart, run_notebook
from labline.exercises.feedback import render_feedback
from labline.exercises.gradebook import Row, Status, status_of
from labline.exercises.grading import (
    GradeReport,
    assemble,
    read_student,
    report_from_execution,
    solution_checks,
    unreadable_report,
)
from labline.exercises.isolation import Confinement, prelude_source, sweep

GRADER_VERSION = "2"  # part of every digest: a grader that grades differently re-grades everything
SKIPPED_PARTS = (".ipynb_checkpoints",)


@dataclass(frozen=True)
class Limits:
    cell_timeout: float
    total_timeout: float
    memory_bytes: int | None
    confine_writes: bool  # Landlock available (else the caller warned)


@dataclass(frozen=True)
class Submission:
    path: Path
    student: str
    exercise: Exercise | None
    folder: Path | None  # the student's own folder, copied with the notebook; None: the notebook alone
    problem: str = ""  # why its exercise is not known

    @property
    def slug(self) -> str:
        name = self.exercise.name if self.exercise else "unknown"
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.student}--{name}")


Progress = Callable[[int, int, str, Row | None], None]  # (done, total, student now started or done, its row)


def _student_name(notebook: Path, exercise: str | None, folder: Path | None) -> str:
    """The student's folder's name; for a notebook on its own, its file name without the exercise's name."""
    if folder is not None:
        return folder.name
    stem = notebook.stem
    if exercise and stem.startswith(exercise):
        stem = stem[len(exercise) :].strip("-_ .")
    return stem or notebook.parent.name


def _notebooks(root: Path, skip: Path | None) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.ipynb")):
        relative = path.relative_to(root).parts
        if any(part in SKIPPED_PARTS or part.startswith(".") for part in relative):
            continue
        if skip is not None and skip.resolve() in path.resolve().parents:
            continue
        found.append(path)
    return found


def find_submissions(
    paths: list[Path], exercises: list[Exercise], forced: str | None = None, skip: Path | None = None
) -> list[Submission]:
    """Every submission under `paths` (folders or notebooks), the exercise of each found as for one notebook."""
    known = [e.name for e in exercises]
    found = []
    for given in paths:
        if not given.exists():
            raise FileNotFoundError(f"{given} does not exist (expected a notebook or a folder of submissions)")
        for notebook in _notebooks(given, skip) if given.is_dir() else [given]:
            inside = notebook.relative_to(given).parts if given.is_dir() else ()
            folder = given / inside[0] if len(inside) > 1 else None
            try:
                exercise = select(exercises, [forced or infer_name(notebook, known)])[0]
                problem = ""
            except ExerciseError as exc:
                exercise, problem = None, str(exc)
            student = _student_name(notebook, exercise and exercise.name, folder)
            found.append(Submission(notebook, student, exercise, folder, problem))
    return _unique(found)


def _unique(submissions: list[Submission]) -> list[Submission]:
    """Two notebooks of one student for one exercise keep their paths as names, so no row hides another."""
    keys = [s.slug for s in submissions]
    return [
        Submission(s.path, str(s.path.with_suffix("")), s.exercise, s.folder, s.problem)
        if keys.count(s.slug) > 1
        else s
        for s in submissions
    ]


def checks_digest(exercise: str, solution: NotebookNode) -> str:
    """What grading depends on besides the notebook: the exercise, each check and where it goes."""
    parts = [GRADER_VERSION, exercise] + [f"{anchor}\n{cell.source}" for anchor, cell in solution_checks(solution)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def submission_digest(submission: Submission, checks: str, limits: Limits) -> str:
    digest = hashlib.sha256(checks.encode())
    digest.update(
        repr((limits.cell_timeout, limits.total_timeout, limits.memory_bytes, limits.confine_writes)).encode()
    )
    digest.update(submission.path.read_bytes())
    return digest.hexdigest()


@dataclass
class _Prepared:
    """A submission ready to run: its private folder made and its kernel starting."""

    submission: Submission
    scratch: Path | None = None  # the temporary folder holding its private copy
    notebook: NotebookNode | None = None  # the assembled notebook (None: unreadable)
    confinement: Confinement | None = None
    unreadable: Exception | None = None


class ClassGrader:
    """Grades submissions in parallel into `out`: reports/, feedback/ (the gradebook is the caller's)."""

    def __init__(self, out: Path, limits: Limits, workers: int, force: bool = False, progress: Progress | None = None):
        self.out, self.limits, self.workers, self.force = out, limits, max(1, workers), force
        self.progress = progress or (lambda *_: None)
        self._solutions: dict[str, NotebookNode] = {}
        self._prepared: dict[int, _Prepared] = {}
        self._lock = threading.RLock()
        self._done = 0

    def solution(self, exercise: Exercise) -> NotebookNode:
        with self._lock:
            if exercise.name not in self._solutions:
                self._solutions[exercise.name] = nbformat.read(exercise.solution, as_version=4)
            return self._solutions[exercise.name]

    def _digest(self, submission: Submission) -> str:
        if submission.exercise is None:
            return ""
        return submission_digest(
            submission, checks_digest(submission.exercise.name, self.solution(submission.exercise)), self.limits
        )

    def _previous(self, submission: Submission, digest: str) -> Row | None:
        """The row of the last grading of this very submission with these checks, if there was one."""
        path = self.out / "reports" / f"{submission.slug}.json"
        if self.force or not digest or not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            stale = data["digest"] != digest or Status(data["status"]) is Status.GRADER_ERROR
            if stale or not (self.out / data["feedback"]).exists():
                return None
            report = GradeReport.from_dict(data["report"])
            return Row(
                data["student"], data["notebook"], report, Status(data["status"]), digest, data["feedback"], True
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def grade(self, submissions: list[Submission]) -> list[Row]:
        """Every submission's row, in the order given."""
        rows: list[Row | None] = [None] * len(submissions)
        todo = []
        for index, submission in enumerate(submissions):
            digest = self._digest(submission)
            previous = self._previous(submission, digest)
            if previous is not None:
                rows[index] = previous
                self._finished(len(submissions), previous)
            else:
                todo.append((index, submission, digest))
        order = [index for index, _, _ in todo]
        with ThreadPoolExecutor(self.workers, thread_name_prefix="grade") as pool:
            futures = [
                pool.submit(self._grade_one, position, order, submissions, digest, len(submissions))
                for position, (_, submission, digest) in enumerate(todo)
            ]
            for (index, _, _), future in zip(todo, futures, strict=True):
                rows[index] = future.result()
        return [row for row in rows if row is not None]

    def _finished(self, total: int, row: Row) -> None:
        with self._lock:
            self._done += 1
            done = self._done
        self.progress(done, total, row.student, row)

    def _prepare(self, submission: Submission) -> _Prepared:
        prepared = _Prepared(submission)
        if submission.exercise is None:
            return prepared
        try:
            student = read_student(submission.path)
        except Exception as exc:  # not a notebook: reported, never run
            prepared.unreadable = exc
            return prepared
        prepared.scratch = Path(tempfile.mkdtemp(prefix="labline-submission-"))
        private = prepared.scratch / submission.student.replace("/", "_")
        if submission.folder is not None:
            shutil.copytree(submission.folder, private, ignore=shutil.ignore_patterns(*SKIPPED_PARTS), symlinks=True)
        else:
            private.mkdir()
            shutil.copy2(submission.path, private / submission.path.name)
        confinement = Confinement(private, self.limits.memory_bytes, uuid.uuid4().hex, self.limits.confine_writes)
        prepared.notebook = assemble(student, self.solution(submission.exercise))
        prepared.confinement = confinement
        prestart(prepared.notebook, private, prelude_source(confinement))
        return prepared

    def _take(self, position: int, order: list[int], submissions: list[Submission]) -> _Prepared:
        """This submission prepared (now, unless done ahead), and the one a worker takes next started ahead."""
        with self._lock:
            for ahead in (position, position + self.workers):
                if ahead < len(order) and ahead not in self._prepared:
                    self._prepared[ahead] = self._prepare(submissions[order[ahead]])
            return self._prepared.pop(position)

    def _grade_one(
        self, position: int, order: list[int], submissions: list[Submission], digest: str, total: int
    ) -> Row:
        submission = submissions[order[position]]
        self.progress(self._done, total, submission.student, None)
        prepared = self._take(position, order, submissions)
        for attempt in (1, 2):  # a kernel not ready in time is the machine's fault: one more, fresh kernel
            try:
                report, ran = self._report(prepared)
            except Exception as exc:  # a bug or a broken environment costs this row, not the class
                name = submission.exercise.name if submission.exercise else ""
                report, ran = GradeReport(name, str(submission.path), "error", f"the grader failed: {exc!r}"), True
            finally:
                self._clean(prepared)
            if ran or attempt == 2:
                break
            with self._lock:
                prepared = self._prepare(submission)
        row = Row(submission.student, str(submission.path), report, status_of(report), digest)
        if submission.exercise is None:
            row.status = Status.NO_EXERCISE
        self._write(submission, row)
        self._finished(total, row)
        return row

    @staticmethod
    def _clean(prepared: _Prepared) -> None:
        """Kill what the submission started, remove its private copy."""
        if prepared.confinement is not None:
            sweep(prepared.confinement.token)
        if prepared.scratch is not None:
            shutil.rmtree(prepared.scratch, ignore_errors=True)

    def _report(self, prepared: _Prepared) -> tuple[GradeReport, bool]:
        """The submission's report, and whether its notebook ran at all (False: the kernel was not ready)."""
        submission = prepared.submission
        label = str(submission.path)
        if submission.exercise is None:
            return GradeReport("", label, "error", submission.problem), True
        solution = self.solution(submission.exercise)
        if prepared.unreadable is not None:
            return unreadable_report(submission.exercise.name, label, solution, prepared.unreadable), True
        confinement = prepared.confinement
        execution = run_notebook(
            prepared.notebook,
            confinement.folder,
            self.limits.cell_timeout,
            self.limits.total_timeout,
            prelude=prelude_source(confinement),
        )
        report = report_from_execution(submission.exercise.name, label, execution)
        return report, execution.stopped_at != PRELUDE_CELL

    def _write(self, submission: Submission, row: Row) -> None:
        """The feedback page and the report read back by the next grading."""
        row.feedback = f"feedback/{submission.slug}.html"
        (self.out / "feedback").mkdir(parents=True, exist_ok=True)
        (self.out / "reports").mkdir(parents=True, exist_ok=True)
        (self.out / row.feedback).write_text(render_feedback(row), encoding="utf-8")
        record = {
            "student": row.student,
            "notebook": row.notebook,
            "status": row.status.value,
            "digest": row.digest,
            "feedback": row.feedback,
            "report": row.report.to_dict(),
        }
        (self.out / "reports" / f"{submission.slug}.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
