"""`labline data synth iris --rows N --out FILE.parquet`: synthetic Iris at any size, in bounded memory."""

from __future__ import annotations

import time
from pathlib import Path

from labline.cli import CommandError
from labline.data.synth import DEFAULT_ROW_GROUP_ROWS, write_synth_parquet

GENERATORS = {"iris": write_synth_parquet}


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
    synth.add_argument("--row-group-rows", type=_positive, default=DEFAULT_ROW_GROUP_ROWS,
                       help=f"rows per Parquet row group, also the rows held in memory (default {DEFAULT_ROW_GROUP_ROWS})")
    synth.set_defaults(handler=cmd_synth)


def cmd_synth(args) -> int:
    if args.name not in GENERATORS:
        raise CommandError(f"cannot synthesize {args.name!r}; choose one of {sorted(GENERATORS)}")
    started = time.perf_counter()
    try:
        path = GENERATORS[args.name](args.out, rows=args.rows, seed=args.seed, row_group_rows=args.row_group_rows)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    print(f"wrote {args.rows} {args.name} rows to {path} in {time.perf_counter() - started:.1f} s")
    return 0
