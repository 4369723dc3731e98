"""The `labline` command. Each group of subcommands lives in its own module under
`labline.commands` and exposes `register(subparsers)`; this file only assembles them.

Exit codes: 0 success, 1 a step or check failed, 2 usage or spec error, 3 timeout,
130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import labline.commands
from labline import __version__
from runner.errors import RunnerError

EXIT_USAGE = 2


class CommandError(Exception):
    """A usage problem found by a command: message to stderr, exit code 2 unless given."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE):
        super().__init__(message)
        self.exit_code = exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labline", description="Notebook-driven ML pipelines, from classroom to production.")
    parser.add_argument("--version", action="version", version=f"labline {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(labline.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"labline.commands.{info.name}")
        if hasattr(module, "register"):
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
    except CommandError as exc:
        print(f"labline {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except RunnerError as exc:
        print(f"labline {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"labline {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # Under `python -m labline.cli` this file runs as __main__; go through the imported module so
    # the CommandError that subcommands raise is the class main() catches.
    from labline.cli import main as _main

    sys.exit(_main())
