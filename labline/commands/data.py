"""`labline data ...`: the data subcommands. Each lives in a module `labline/commands/data_*.py`
exposing `register_data(subparsers)`; a new one is added to DATA_MODULES."""

from __future__ import annotations

from labline.commands import data_batches, data_spec, data_synth

DATA_MODULES = (data_batches, data_spec, data_synth)


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="data set tools: spec, validate, batches, perturb, synth")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data.set_defaults(handler=lambda args: data.print_help() or 2)
    for module in DATA_MODULES:
        module.register_data(data_sub)
