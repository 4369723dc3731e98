"""The `labline` command. Each group of subcommands lives in its own module under
`labline.commands` and exposes `register(subparsers)`; this file only assembles them.

Exit codes: 0 success, 1 a step or check failed, 2 usage or spec error, 3 timeout,
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

from runner.lazy_imports import defer_slow_imports

defer_slow_imports()  # before any command module imports nbformat: saves ~2 s on every command's start

from labline import __version__  # noqa: E402
from labline.commands import data, exercises, monitor, pipeline, registry, report, retrain, serve  # noqa: E402
from labline.commands.common import EXIT_USAGE, CommandError  # noqa: E402
from runner.errors import RunnerError  # noqa: E402

# The command groups, in the order `labline --help` lists their commands.
COMMAND_MODULES = (data, exercises, monitor, pipeline, report, registry, retrain, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labline", description="Notebook-driven ML pipelines, from classroom to production."
    )
    parser.add_argument("--version", action="version", version=f"labline {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args) or 0)
    except (CommandError, RunnerError) as exc:
        print(f"labline {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"labline {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
