"""What every command shares: the usage error they raise and the options several of them take.

Defined once here, so `--db` means the same thing with the same help everywhere, and command
modules never import `labline.cli` (which imports them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from labline.paths import runs_root
from runner.exit_codes import ExitCode

FORMATS = ["table", "csv", "json", "markdown"]
# What a comparison (labline run, compare, report) shows for each trained model: classification, then regression.
COMPARE_METRICS = ["test_accuracy", "macro_f1", "cv_score", "test_mae", "test_r2", "fit_seconds"]


class CommandError(Exception):
    """A problem found by a command: message to stderr, no traceback; ExitCode.USAGE unless given."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.USAGE):
        super().__init__(message)
        self.exit_code = exit_code


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help="model registry, any SQLAlchemy URL (default: $LABLINE_DB or .labline/labline.db)",
    )


def add_runs_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=Path, default=None, help="runs folder (default: $LABLINE_RUNS or runs/)")


def add_param_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="[STEP.]PARAM=VALUE",
        help="set a parameter for one step, or for every step that declares it (repeatable)",
    )


def add_only_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only",
        action="append",
        default=None,
        metavar="STEP",
        help="run only this step and what it needs (repeatable)",
    )


def add_format_option(parser: argparse.ArgumentParser, formats: list[str] = FORMATS, default: str = "table") -> None:
    """One --format for every command: how the result is printed or written (argparse fills in the default)."""
    parser.add_argument("--format", choices=formats, default=default, help="the result's format (default: %(default)s)")


def resolve_runs(args: argparse.Namespace) -> Path:
    """`--runs` when given, else `$LABLINE_RUNS` or runs/ under the project root."""
    return Path(args.runs) if getattr(args, "runs", None) else runs_root()
