"""`labline exercises build | check | grade | list | start | release`: templates from solutions, kept in sync,
handed out without solutions, worked on in a student's copy, graded."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from labline.commands.common import add_format_option
from labline.exercises.catalog import (
    ExerciseError,
    default_dirs,
    discover,
    find_template,
    infer_name,
    orphans,
    select,
    templates,
    title,
)
from labline.exercises.execution import DEFAULT_CELL_TIMEOUT, DEFAULT_TOTAL_TIMEOUT
from labline.exercises.gradebook import FORMATS
from labline.exercises.template import SolutionFormatError
from runner.exit_codes import ExitCode


def _templates_folder(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exercises", type=Path, default=None, help="templates folder (default: exercises/)")


def _folders(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--solutions", type=Path, default=None, help="solutions folder (default: solutions/)")
    _templates_folder(parser)


def _work_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", type=Path, default=None, metavar="DIR", help="the working copies' folder (default: work/)"
    )


def _limits(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cell-timeout",
        type=float,
        default=DEFAULT_CELL_TIMEOUT,
        metavar="SECONDS",
        help=f"most seconds one cell may run (default {DEFAULT_CELL_TIMEOUT:g})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TOTAL_TIMEOUT,
        metavar="SECONDS",
        help=f"most seconds a whole notebook may run (default {DEFAULT_TOTAL_TIMEOUT:g})",
    )


def _grade_parser(sub) -> None:
    grade = sub.add_parser(
        "grade",
        help="grade a student's notebook, or every notebook under folders (a gradebook and feedback pages)",
        description="One notebook: print its report. Folders (or several notebooks, or --out): grade every "
        "notebook under them in parallel, each in a private copy under time and memory limits, into a gradebook, "
        "one feedback page per submission and a class summary.",
    )
    grade.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="a student's notebook, a folder of them, or NN_name: your working copy (see `start`)",
    )
    _work_dir(grade)
    grade.add_argument(
        "--exercise",
        default=None,
        metavar="NN_name",
        help="which exercise they answer (default: from each notebook's metadata or file name)",
    )
    grade.add_argument("--json", action="store_true", help="one notebook: print the report as JSON")
    grade.add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="where the gradebook goes (default: PATH-graded-DATE)"
    )
    add_format_option(grade, FORMATS, default="csv")  # the gradebook's file
    grade.add_argument(
        "--workers", type=int, default=None, help="submissions graded at once (default: the number of cores)"
    )
    grade.add_argument("--memory", default="4G", metavar="SIZE", help="memory cap of each kernel (default 4G; 0: none)")
    grade.add_argument("--force", action="store_true", help="re-grade submissions that did not change")
    _folders(grade)
    _limits(grade)
    grade.set_defaults(handler=cmd_grade)


def register(subparsers) -> None:
    group = subparsers.add_parser("exercises", help="exercise templates: build from solutions, check, grade")
    sub = group.add_subparsers(dest="exercises_command", metavar="EXERCISES_COMMAND")
    group.set_defaults(handler=lambda args: group.print_help() or 2)

    build = sub.add_parser("build", help="write exercises/NN_name.ipynb from each solution")
    build.add_argument("names", nargs="*", metavar="NAME", help="exercises to build (default: all)")
    _folders(build)
    build.set_defaults(handler=cmd_build)

    check = sub.add_parser("check", help="fail when a template is stale, a solution is red or a template is wrong")
    check.add_argument("names", nargs="*", metavar="NAME", help="exercises to check (default: all)")
    check.add_argument("--no-run", action="store_true", help="only check that templates are in sync (no kernels)")
    _folders(check)
    _limits(check)
    check.set_defaults(handler=cmd_check)

    _grade_parser(sub)

    listing = sub.add_parser("list", help="list the exercises: name, title, template")
    _templates_folder(listing)
    listing.set_defaults(handler=cmd_list)

    start = sub.add_parser(
        "start",
        help="copy an exercise's template into your working folder (default work/), to work on and grade there",
    )
    start.add_argument("names", nargs="+", metavar="NAME", help="the exercise (NN_name, or its number: 03)")
    _work_dir(start)
    start.add_argument("--force", action="store_true", help="replace an existing working copy (your work is lost)")
    _templates_folder(start)
    start.set_defaults(handler=cmd_start)

    release = sub.add_parser(
        "release",
        help="write what students get: templates, notebooks, data, environment; no solutions, no hidden checks",
    )
    release.add_argument("--out", type=Path, required=True, metavar="DIR", help="a new or empty folder")
    _folders(release)
    release.set_defaults(handler=cmd_release)


def _usage(exc: Exception):
    from labline.commands.common import CommandError

    return CommandError(str(exc))


def _positive(args: argparse.Namespace) -> None:
    for option in ("cell_timeout", "timeout"):
        if getattr(args, option) <= 0:
            raise _usage(
                ValueError(
                    f"--{option.replace('_', '-')} must be a positive number of seconds, got {getattr(args, option):g}"
                )
            )


def _selected(args: argparse.Namespace, names: list[str] | None):
    try:
        return select(discover(args.solutions, args.exercises), names)
    except ExerciseError as exc:
        raise _usage(exc) from None


def cmd_list(args: argparse.Namespace) -> int:
    """Name, title and template of each exercise; never a solution (`list` runs in a student's release too)."""
    for name, template in templates(args.exercises).items():
        print(f"{name}\t{title(template)}\t{_shown(template)}")
    return ExitCode.OK


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it is below it: what a student types."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def cmd_start(args: argparse.Namespace) -> int:
    from labline.exercises.workcopy import start

    try:
        copies = [start(find_template(name, args.exercises), args.dir, args.force) for name in args.names]
    except ExerciseError as exc:
        raise _usage(exc) from None
    gradable = default_dirs()[0].is_dir()  # a release has no solutions: the instructor grades
    for copy in copies:
        print(f"wrote {_shown(copy)}: open it in JupyterLab, fill in each stub, run the checks as you go")
        target = copy.stem if args.dir is None else _shown(copy)
        print(f"  grade it with: labline exercises grade {target}" if gradable else "  then hand it in to be graded")
    return ExitCode.OK


def cmd_release(args: argparse.Namespace) -> int:
    from labline.exercises.release import LeakError, release
    from labline.paths import project_root

    exercises = _selected(args, None)
    try:
        written = release(project_root(), args.out, exercises)
    except (LeakError, SolutionFormatError) as exc:
        print(f"labline exercises release: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    except ExerciseError as exc:  # where it was asked to write
        raise _usage(exc) from None
    print(f"wrote {len(written)} files to {args.out}: {len(exercises)} exercise templates, no solutions;")
    print("  every file scanned: no hidden check in it")
    return ExitCode.OK


def cmd_build(args: argparse.Namespace) -> int:
    from labline.exercises.checking import build

    exercises = _selected(args, args.names)
    if not exercises:
        raise _usage(ExerciseError("no solutions to build (expected solutions/NN_name.ipynb)"))
    for exercise in exercises:
        try:
            path, changed = build(exercise)
        except SolutionFormatError as exc:
            print(f"labline exercises build: {exc}", file=sys.stderr)
            return ExitCode.FAILED
        print(f"{'wrote' if changed else 'unchanged'} {path}")
    return ExitCode.OK


def cmd_check(args: argparse.Namespace) -> int:
    from labline.exercises.checking import check_exercise

    _positive(args)
    exercises = _selected(args, args.names)
    if not exercises:
        raise _usage(ExerciseError("no solutions to check (expected solutions/NN_name.ipynb)"))
    failed = 0
    for exercise in exercises:
        outcome = check_exercise(
            exercise, run=not args.no_run, cell_timeout=args.cell_timeout, total_timeout=args.timeout
        )
        print(f"{'ok  ' if outcome.ok else 'FAIL'} {exercise.name}", flush=True)
        for problem in outcome.problems:
            print("  " + problem.replace("\n", "\n  "))
        failed += not outcome.ok
    stray = [] if args.names else orphans(exercises, args.exercises)
    for orphan in stray:
        print(f"FAIL {orphan}: a template without a solution; remove it or restore its solution")
    extra = f"; {len(stray)} template(s) without a solution" if stray else ""
    print(f"{len(exercises) - failed}/{len(exercises)} exercises in order{extra}")
    return ExitCode.FAILED if failed or stray else ExitCode.OK


def _class_mode(args: argparse.Namespace) -> bool:
    return args.out is not None or len(args.paths) > 1 or any(path.is_dir() for path in args.paths)


def cmd_grade(args: argparse.Namespace) -> int:
    from labline.exercises.workcopy import resolve_submission

    _positive(args)
    try:
        args.paths = [resolve_submission(path, args.dir) for path in args.paths]
    except ExerciseError as exc:
        raise _usage(exc) from None
    missing = [str(path) for path in args.paths if not path.exists()]
    if missing:
        raise _usage(FileNotFoundError(f"{', '.join(missing)} does not exist (expected a notebook or a folder)"))
    if _class_mode(args):
        return _grade_class(args)
    return _grade_one(args, args.paths[0])


def _grade_one(args: argparse.Namespace, notebook: Path) -> int:
    from labline.exercises.grading import grade_notebook, report_json

    try:
        exercises = discover(args.solutions, args.exercises)
        name = args.exercise or infer_name(notebook, [e.name for e in exercises])
        exercise = select(exercises, [name])[0]
    except ExerciseError as exc:
        raise _usage(exc) from None
    solution = nbformat.read(exercise.solution, as_version=4)
    report = grade_notebook(notebook, exercise.name, solution, args.cell_timeout, args.timeout)
    print(report_json(report) if args.json else report.to_text())
    return ExitCode.OK if report.passed else ExitCode.FAILED


class _ClassProgress:
    """done/total and the student now graded: a bar on a terminal, one line per submission elsewhere."""

    def __init__(self, total: int, workers: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.bar = None
        self.start = f"grading {total} submission(s), {min(workers, total)} at once"
        if self.console.is_terminal:
            columns = (
                TextColumn("grading"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
            )
            self.bar = Progress(*columns, console=self.console, transient=True)
            self.task = self.bar.add_task("", total=total)

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
        else:  # said at once: the first submission may take a while
            self.console.print(f"{self.start}; a line as each one is done", markup=False, highlight=False)
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, done: int, total: int, student: str, row) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, description=student)
        elif row is not None:
            score = f"{row.report.score}/{row.report.total}"
            took = " (unchanged)" if row.reused else f" ({row.report.seconds:.1f} s)"
            line = f"[{done}/{total}] {row.student} {row.exercise}: {row.status.value} {score}{took}"
            self.console.print(line, markup=False, highlight=False)


def _default_out(path: Path) -> Path:
    import datetime

    path = path.resolve()
    return path.parent / f"{path.stem}-graded-{datetime.date.today().isoformat()}"


def _counts(rows) -> str:
    """What happened to the rows, each counted once: graded now, read back unchanged, or not gradable."""
    not_gradable = sum(not row.status.graded for row in rows)
    unchanged = sum(row.reused and row.status.graded for row in rows)
    return f"{len(rows) - unchanged - not_gradable} graded, {unchanged} unchanged, {not_gradable} not gradable"


def _grade_class(args: argparse.Namespace) -> int:
    import os

    from labline.exercises.classroom import ClassGrader, Limits, find_submissions
    from labline.exercises.gradebook import write_gradebook
    from labline.exercises.isolation import parse_size, write_confinement
    from labline.exercises.summary import class_summary

    try:
        memory = parse_size(args.memory)
    except ValueError as exc:
        raise _usage(ValueError(f"--memory: {exc}")) from None
    if args.workers is not None and args.workers < 1:
        raise _usage(ValueError(f"--workers must be 1 or more, got {args.workers}"))
    out = args.out or _default_out(args.paths[0])
    try:
        exercises = discover(args.solutions, args.exercises)
        if args.exercise:
            select(exercises, [args.exercise])
        submissions = find_submissions(args.paths, exercises, args.exercise, skip=out)
    except (ExerciseError, FileNotFoundError) as exc:
        raise _usage(exc) from None
    if not submissions:
        raise _usage(FileNotFoundError(f"no notebook under {', '.join(map(str, args.paths))}"))
    unconfined = write_confinement()
    if unconfined:
        print(
            f"labline exercises grade: warning: writes outside each submission's folder are NOT prevented here "
            f"({unconfined}); grade untrusted submissions in a container or a throw-away account",
            file=sys.stderr,
        )
    out.mkdir(parents=True, exist_ok=True)
    limits = Limits(args.cell_timeout, args.timeout, memory, unconfined is None)
    workers = args.workers or len(os.sched_getaffinity(0))
    with _ClassProgress(len(submissions), workers) as progress:
        rows = ClassGrader(out, limits, workers, args.force, progress).grade(submissions)
    gradebook = write_gradebook(rows, out, args.format)
    summary = class_summary(rows)
    (out / "summary.md").write_text(summary + "\n", encoding="utf-8")
    print(summary)
    print(f"gradebook: {gradebook}  feedback: {out / 'feedback'}  ({_counts(rows)})")
    return ExitCode.OK if all(row.status.graded for row in rows) else ExitCode.FAILED
