"""`labline data ...`: the data subcommands. Each lives in a module `labline/commands/data_*.py`
exposing `register_data(subparsers)`, so data tools are added without editing this file."""

from __future__ import annotations

import importlib
import pkgutil

import labline.commands


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="data set tools: spec, validate, batches, perturb, synth")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data.set_defaults(handler=lambda args: data.print_help() or 2)
    for info in sorted(pkgutil.iter_modules(labline.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("data_"):
            module = importlib.import_module(f"labline.commands.{info.name}")
            module.register_data(data_sub)
