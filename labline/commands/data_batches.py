"""`labline data batches` and `labline data perturb`: dated batches and drifted copies for drills."""

from __future__ import annotations

from pathlib import Path

from labline.commands.common import CommandError
from labline.data.datasets import DatasetError, read_table
from runner.exit_codes import ExitCode

# The batch and perturbation modules need pandas: they load when their command runs, so the CLI starts fast.
PERIOD_NAMES = ("day", "week", "month")  # the keys of labline.data.batches.PERIODS


def register_data(subparsers) -> None:
    batches = subparsers.add_parser("batches", help="split a data file into dated batches (one CSV per period)")
    batches.add_argument("file", help="CSV/Parquet file of raw rows")
    batches.add_argument("--by", choices=PERIOD_NAMES, default="week", help="period of one batch (default: week)")
    batches.add_argument(
        "--date-column",
        default="last_review",
        help="the column that dates a row (default: last_review, the Airbnb data's only date)",
    )
    batches.add_argument(
        "--since", default=None, help="rows dated before this day go into one history batch before-DATE.csv"
    )
    batches.add_argument("--out", required=True, help="folder for the batch files")
    batches.set_defaults(handler=run_batches)

    shift = subparsers.add_parser("perturb", help="write a drifted or corrupted copy of a batch")
    shift.add_argument("file", help="CSV/Parquet file of raw rows")
    shift.add_argument(
        "--shift",
        action="append",
        required=True,
        metavar="COLUMN=CHANGE",
        help="e.g. price=+20%%, latitude=+0.5sd, longitude=set:-75.1@0.2, "
        "room_type=mix:Shared room:0.5, reviews_per_month=missing:0.4, name=drop (repeatable)",
    )
    shift.add_argument("--seed", type=int, default=0)
    shift.add_argument("--out", required=True, help="the CSV file to write")
    shift.set_defaults(handler=run_perturb)


def _read(path: str):
    try:
        return read_table(path)
    except DatasetError as exc:
        raise CommandError(str(exc)) from exc


def run_batches(args) -> int:
    frame = _read(args.file)
    try:
        from labline.data.batches import write_batches

        paths = write_batches(frame, args.out, args.date_column, args.by, args.since)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    for path in paths:
        print(f"{path}")
    print(f"{len(paths)} batches by {args.by} from {len(frame)} rows of {args.file}")
    return ExitCode.OK


def run_perturb(args) -> int:
    from labline.data.perturb import PerturbError, perturb

    frame = _read(args.file)
    try:
        changed = perturb(frame, args.shift, seed=args.seed)
    except PerturbError as exc:
        raise CommandError(str(exc)) from exc
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    changed.to_csv(out, index=False)
    print(f"wrote {out}: {len(changed)} rows, shifts {args.shift}")
    return ExitCode.OK
