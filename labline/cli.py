"""The `labline` command. Each group of subcommands lives in its own module under
`labline.commands` and exposes `register(subparsers)`; this file only assembles them.

Exit codes: `runner.exit_codes.ExitCode`, the same for every command (README's "Exit codes"):
0 ok, 1 a step, check, gate or alert said no, 2 usage, 3 timeout, 4 retrain kept the champion,
5 the tool itself crashed, 6 locked (try again later), 7 the file system refused (the path and the cause
in one line, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from runner.lazy_imports import defer_slow_imports

defer_slow_imports()  # before any command module imports nbformat: saves ~2 s on every command's start

from labline import __version__  # noqa: E402
from labline.commands.common import CommandError  # noqa: E402
from runner.errors import RunnerError  # noqa: E402
from runner.exit_codes import ExitCode  # noqa: E402

# The command groups (modules of labline.commands), in the order `labline --help` lists their commands.
COMMAND_MODULES = ("data", "exercises", "monitor", "pipeline", "report", "registry", "retrain", "serve")
# The order a command is looked for in, cheapest import first: `labline run` imports no exercise or
# report code (nbformat alone costs more than a rerun with nothing changed).
LOOKUP_ORDER = ("pipeline", "registry", "data", "retrain", "serve", "monitor", "report", "exercises")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command or, given `command`, of the first command group that has it."""
    parser = argparse.ArgumentParser(
        prog="labline", description="Notebook-driven ML pipelines, from classroom to production."
    )
    parser.add_argument("--version", action="version", version=f"labline {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    if command:
        for name in LOOKUP_ORDER:
            module = importlib.import_module(f"labline.commands.{name}")
            probe = argparse.ArgumentParser(add_help=False).add_subparsers()
            module.register(probe)
            if command in probe.choices:
                module.register(subparsers)
                return parser
    for name in COMMAND_MODULES:
        importlib.import_module(f"labline.commands.{name}").register(subparsers)
    return parser


def os_error_message(exc: OSError) -> str:
    """One line: the path(s) an OS error names (shortened) and its cause."""
    from runner.params import shortened

    paths = " -> ".join(shortened(str(p)) for p in (exc.filename, exc.filename2) if p is not None)
    cause = exc.strerror or str(exc)
    return f"{paths}: {cause}" if paths else shortened(cause)


def main(argv: list[str] | None = None) -> int:
    """Run one command; its ExitCode. argparse's own usage errors exit with 2 (ExitCode.USAGE) as well."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv and not argv[0].startswith("-") else None)
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return ExitCode.USAGE
    try:
        return ExitCode(args.handler(args) or ExitCode.OK)
    except (CommandError, RunnerError) as exc:
        print(f"labline {args.command}: {exc}", file=sys.stderr)
        return ExitCode(exc.exit_code)
    except KeyboardInterrupt:
        print(f"labline {args.command}: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except OSError as exc:  # the environment, not a bug: which path, and why
        print(f"labline {args.command}: {os_error_message(exc)}", file=sys.stderr)
        return ExitCode.ENVIRONMENT
    except Exception:  # a bug, not a verdict: the traceback for the report, and a code scripts can tell apart
        traceback.print_exc()
        print(f"labline {args.command}: crashed (the traceback above); exit {ExitCode.CRASHED:d}", file=sys.stderr)
        return ExitCode.CRASHED


if __name__ == "__main__":
    sys.exit(main())
