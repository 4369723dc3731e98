"""`labline data synth iris --rows N --out FILE.parquet`: synthetic Iris at any size, in bounded memory."""

from __future__ import annotations

import time
from pathlib import Path

from labline.commands.common import CommandError
from runner.exit_codes import ExitCode

GENERATORS = {"iris": "labline.data.synth:write_synth_parquet"}  # imported when used: the CLI starts fast


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def register_data(subparsers) -> None:
    synth = subparsers.add_parser("synth", help="write synthetic rows (Iris-like) to Parquet, one row group at a time")
    synth.add_argument("name", help=f"what to synthesize: {', '.join(sorted(GENERATORS))}")
    synth.add_argument("--rows", type=_positive, required=True, help="number of rows (10_000_000 is fine)")
    synth.add_argument("--out", type=Path, required=True, help="the Parquet file to write")
    synth.add_argument("--seed", type=int, default=0, help="seed of the random draws (default 0)")
    synth.add_argument(
        "--row-group-rows",
        type=_positive,
        default=None,
        help="rows per Parquet row group, also the rows held in memory (default 262,144)",
    )
    synth.set_defaults(handler=cmd_synth)


def cmd_synth(args) -> int:
    if args.name not in GENERATORS:
        raise CommandError(f"cannot synthesize {args.name!r}; choose one of {sorted(GENERATORS)}")
    import importlib

    module, _, function = GENERATORS[args.name].partition(":")
    generate = getattr(importlib.import_module(module), function)
    sizing = {"row_group_rows": args.row_group_rows} if args.row_group_rows else {}
    started = time.perf_counter()
    try:
        path = generate(args.out, rows=args.rows, seed=args.seed, **sizing)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    print(f"wrote {args.rows} {args.name} rows to {path} in {time.perf_counter() - started:.1f} s")
    return ExitCode.OK
