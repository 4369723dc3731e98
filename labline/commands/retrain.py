"""`labline retrain --data FILE`: validate a new batch, retrain on the accumulated data, promote
the challenger only when it beats the champion on the same held-out rows.

Exit codes (cron-friendly, runner.exit_codes): 0 the challenger was promoted, 4 the champion was
kept, 1 stopped (the batch failed validation, or the pipeline failed), 2 usage error, 6 another
retrain is running (nothing done: try again later).
"""

from __future__ import annotations

from pathlib import Path

from labline.commands.common import CommandError, add_db_option, add_only_option, add_param_option, add_runs_option
from runner.exit_codes import ExitCode

# RetrainOutcome.status -> what the command exits with.
OUTCOME_CODES = {
    "promoted": ExitCode.OK,
    "kept": ExitCode.KEPT_CHAMPION,
    "invalid": ExitCode.FAILED,  # the batch failed validation
    "failed": ExitCode.FAILED,  # the pipeline failed
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("retrain", help="retrain on a new batch; promote only a better challenger")
    parser.add_argument("--data", required=True, help="the new batch: a raw CSV/Parquet file")
    parser.add_argument(
        "--dataset", default="airbnb", help="the declared data set the batch belongs to (default airbnb)"
    )
    parser.add_argument(
        "--pipeline",
        type=Path,
        default=Path("pipeline_airbnb.yaml"),
        help="the pipeline to run (default pipeline_airbnb.yaml)",
    )
    add_param_option(parser)
    add_only_option(parser)
    add_db_option(parser)
    add_runs_option(parser)
    parser.add_argument(
        "--state",
        type=Path,
        default=None,
        help="lock, accumulated data and decisions (default $LABLINE_RETRAIN_STATE or .labline/retrain)",
    )
    parser.add_argument("--workers", type=int, default=None, help="pipeline steps run at once")
    parser.add_argument("--margin", type=float, default=0.0, help="improvement the challenger needs (default 0)")
    parser.set_defaults(handler=run_retrain)


def run_retrain(args) -> int:
    from labline.data.datasets import DatasetError
    from labline.retrain import RetrainError, RetrainLocked, retrain

    if not Path(args.data).exists():
        raise CommandError(f"--data {args.data!r}: no such file; expected a CSV or Parquet batch of raw rows")
    try:
        outcome = retrain(
            args.data,
            args.dataset,
            pipeline=args.pipeline,
            registry_url=args.db,
            runs_root=args.runs,
            state_dir=args.state,
            overrides=args.param,
            only=args.only,
            workers=args.workers,
            margin=args.margin,
        )
    except RetrainLocked as exc:
        raise CommandError(str(exc), ExitCode.LOCKED) from exc
    except (RetrainError, DatasetError) as exc:
        raise CommandError(str(exc)) from exc
    print(outcome.summary())
    print(f"recorded: {outcome.folder}/decision.json")
    if outcome.status not in OUTCOME_CODES:
        raise CommandError(
            f"retrain ended with status {outcome.status!r}, not one of {list(OUTCOME_CODES)}", ExitCode.CRASHED
        )
    return OUTCOME_CODES[outcome.status]
