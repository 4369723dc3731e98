"""`labline exercises build | check | grade | list`: exercise templates from solutions, kept in sync, graded."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from labline.exercises.catalog import ExerciseError, discover, infer_name, orphans, select
from labline.exercises.execution import DEFAULT_CELL_TIMEOUT, DEFAULT_TOTAL_TIMEOUT
from labline.exercises.template import SolutionFormatError


def _folders(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--solutions", type=Path, default=None, help="solutions folder (default: solutions/)")
    parser.add_argument("--exercises", type=Path, default=None, help="templates folder (default: exercises/)")


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

    grade = sub.add_parser("grade", help="run a student's notebook with the hidden checks and print a score")
    grade.add_argument("notebook", type=Path, help="the student's notebook")
    grade.add_argument(
        "--exercise",
        default=None,
        metavar="NN_name",
        help="which exercise it answers (default: from its metadata or file name)",
    )
    grade.add_argument("--json", action="store_true", help="print the report as JSON")
    _folders(grade)
    _limits(grade)
    grade.set_defaults(handler=cmd_grade)

    listing = sub.add_parser("list", help="list the exercises")
    _folders(listing)
    listing.set_defaults(handler=cmd_list)


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
    for exercise in _selected(args, None):
        state = "template present" if exercise.template.exists() else "template missing"
        print(f"{exercise.name}\t{exercise.solution}\t{state}")
    return 0


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
            return 1
        print(f"{'wrote' if changed else 'unchanged'} {path}")
    return 0


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
    return 1 if failed or stray else 0


def cmd_grade(args: argparse.Namespace) -> int:
    from labline.exercises.grading import grade_notebook, report_json

    _positive(args)
    if not args.notebook.is_file():
        raise _usage(FileNotFoundError(f"student notebook {args.notebook} does not exist"))
    try:
        exercises = discover(args.solutions, args.exercises)
        name = args.exercise or infer_name(args.notebook, [e.name for e in exercises])
        exercise = select(exercises, [name])[0]
    except ExerciseError as exc:
        raise _usage(exc) from None
    solution = nbformat.read(exercise.solution, as_version=4)
    report = grade_notebook(args.notebook, exercise.name, solution, args.cell_timeout, args.timeout)
    print(report_json(report) if args.json else report.to_text())
    return 0 if report.passed else 1
