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


def outcome_code(status: str) -> ExitCode:
    """What the command exits with for how the retrain ended (a labline.retrain.RetrainStatus)."""
    from labline.retrain import RetrainStatus  # pandas: only when a retrain runs

    codes = {
        RetrainStatus.PROMOTED: ExitCode.OK,
        RetrainStatus.KEPT: ExitCode.KEPT_CHAMPION,
        RetrainStatus.INVALID: ExitCode.FAILED,  # the batch failed validation
        RetrainStatus.FAILED: ExitCode.FAILED,  # the pipeline failed
    }
    if status not in codes:
        raise CommandError(
            f"retrain ended with status {status!r}, not one of {[s.value for s in codes]}", ExitCode.CRASHED
        )
    return codes[status]


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
    return outcome_code(outcome.status)
