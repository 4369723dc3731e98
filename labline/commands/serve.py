"""`labline serve | requests | replay | feedback | ab-report`: run the model service and
investigate what it answered."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from labline.commands.common import CommandError, add_db_option, add_format_option
from runner.exit_codes import ExitCode

FORMATS = ["table", "csv", "json", "jsonl"]
DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def _log_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log",
        default=None,
        metavar="PATH",
        help="request log (default: $LABLINE_REQUEST_LOG or .labline/requests.db)",
    )


def _log_path(args) -> str:
    from labline.serve.settings import default_request_log

    path = Path(args.log) if args.log else default_request_log()
    return str(path)


def register(subparsers) -> None:
    serve = subparsers.add_parser("serve", help="serve the champion model over HTTP (A/B, shadow, request log)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--alias", default="champion", help="registry alias or version to serve (default: champion)")
    serve.add_argument("--model-dir", default=None, help="serve this artifact folder instead of a registry alias")
    serve.add_argument(
        "--dataset",
        default=None,
        metavar="NAME",
        help="the data set whose aliases are served (default: the only one holding the alias)",
    )
    serve.add_argument("--challenger", default=None, metavar="ALIAS|VERSION", help="A/B: the challenger model")
    serve.add_argument("--split", type=float, default=0.1, help="share of client keys sent to the challenger")
    serve.add_argument(
        "--shadow", default=None, metavar="ALIAS|VERSION", help="score every request with this model too, logged only"
    )
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument(
        "--synchronous",
        default="NORMAL",
        choices=["NORMAL", "FULL"],
        help="request log durability: NORMAL survives a killed server, FULL also a power cut",
    )
    serve.add_argument("--max-body-bytes", type=int, default=8 * 1024 * 1024)
    serve.add_argument("--max-batch-records", type=int, default=50_000)
    _log_option(serve)
    add_db_option(serve)
    serve.set_defaults(handler=cmd_serve)

    requests = subparsers.add_parser("requests", help="list logged requests")
    requests.add_argument("--since", default=None, help="ISO time, or a duration back from now: 30s, 15m, 2h, 1d")
    requests.add_argument("--version", type=int, default=None, help="only requests answered by this model version")
    requests.add_argument("--shadow", action="store_true", help="include shadow answers")
    requests.add_argument("--limit", type=int, default=None)
    add_format_option(requests, FORMATS)
    _log_option(requests)
    requests.set_defaults(handler=cmd_requests)

    replay = subparsers.add_parser("replay", help="reproduce a logged answer with the exact model that gave it")
    replay.add_argument("request_id")
    replay.add_argument("--shadow", action="store_true", help="replay the shadow answer instead")
    replay.add_argument("--json", action="store_true")
    _log_option(replay)
    add_db_option(replay)
    replay.set_defaults(handler=cmd_replay)

    feedback = subparsers.add_parser(
        "feedback", help="import ground-truth labels keyed by request id (CSV or JSON lines)"
    )
    feedback.add_argument("file", type=Path, help="columns request_id and label")
    _log_option(feedback)
    feedback.set_defaults(handler=cmd_feedback)

    report = subparsers.add_parser("ab-report", help="compare the A/B arms: agreement, accuracy, z-test")
    report.add_argument(
        "--min-samples", type=int, default=100, help="labelled requests per arm before a winner is called"
    )
    report.add_argument("--alpha", type=float, default=0.05)
    report.add_argument("--since", default=None)
    report.add_argument("--json", action="store_true")
    _log_option(report)
    add_db_option(report)
    report.set_defaults(handler=cmd_ab_report)


def cmd_serve(args) -> int:
    if args.workers < 1:
        raise CommandError(f"--workers must be at least 1, got {args.workers}")
    from labline.serve.settings import ServeSettings

    try:
        settings = ServeSettings(
            alias=_scoped(args.alias, args.dataset),
            model_dir=args.model_dir,
            challenger=_scoped(args.challenger, args.dataset),
            split=args.split,
            shadow=_scoped(args.shadow, args.dataset),
            registry_url=args.db,
            request_log=_log_path(args),
            synchronous=args.synchronous,
            max_body_bytes=args.max_body_bytes,
            max_batch_records=args.max_batch_records,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    if args.workers > 1:
        # The parent loads no model: each worker does, and a worker that cannot stops the server.
        from labline.serve.workers import serve_workers

        print(
            f"labline serve: http://{args.host}:{args.port} serving {_served(settings)} (request log "
            f"{settings.request_log}, {args.workers} workers)",
            file=sys.stderr,
        )
        failure = serve_workers(settings, args.host, args.port, args.workers)
        if failure:
            raise CommandError(f"the workers could not start: {failure}", ExitCode.FAILED)
        return ExitCode.OK
    import uvicorn

    from labline.serve.app import create_app
    from labline.serve.deployments import DeploymentError

    try:
        app = create_app(settings)
    except DeploymentError as exc:
        raise CommandError(str(exc), ExitCode.FAILED) from exc
    print(
        f"labline serve: http://{args.host}:{args.port} serving {_served(settings)} "
        f"(request log {settings.request_log})",
        file=sys.stderr,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return ExitCode.OK


def _scoped(ref: str | None, dataset: str | None) -> str | None:
    """An alias of `dataset` as the registry names it (`iris@champion`); version numbers stay as they are."""
    if not ref or not dataset or "@" in ref or ref.lstrip("vV").isdigit():
        return ref
    return f"{dataset}@{ref}"


def _served(settings) -> str:
    """Which data set's model answers, for the start-up line: `the iris model (iris@champion, v3 torch-mlp)`."""
    if settings.model_dir:
        manifest = Path(settings.model_dir) / "manifest.json"
        try:
            name = json.loads(manifest.read_text())["spec"]["name"]
        except (OSError, ValueError, KeyError, TypeError):
            return f"the model in {settings.model_dir}"
        return f"the {name} model in {settings.model_dir}"
    from labline.registry import Registry, RegistryError

    try:
        version = Registry(settings.registry_url).resolve(settings.alias)
    except RegistryError:
        return str(settings.alias)
    return f"the {version.scope} model ({settings.alias}, {version.label})"


def parse_since(text: str | None):
    if text is None:
        return None
    match = DURATION.match(text.strip())
    if match:
        seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        return datetime.now(UTC) - timedelta(seconds=seconds)
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"--since: {text!r} is neither an ISO time nor a duration like 15m, 2h, 1d") from exc


def cmd_requests(args) -> int:
    import pandas as pd

    from labline.serve.request_log import read_requests

    try:
        frame = read_requests(
            _log_path(args),
            since=parse_since(args.since),
            version=args.version,
            include_shadow=args.shadow,
            limit=args.limit,
        )
    except FileNotFoundError as exc:
        raise CommandError(str(exc), ExitCode.FAILED) from exc
    frame = frame.assign(time=frame["time"].map(lambda t: t.isoformat()))
    # json.dumps keeps every float's full precision (pandas' to_json rounds to 10 digits)
    records = [
        {k: (None if v is None or v is pd.NA else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict(orient="records")
    ]
    if args.format == "json":
        print(json.dumps(records, indent=2, default=str))
    elif args.format == "jsonl":
        for record in records:
            print(json.dumps(record, default=str))
    elif args.format == "csv":
        for column in ("payload", "prediction", "probabilities"):
            frame[column] = [json.dumps(v) for v in frame[column]]
        print(frame.to_csv(index=False), end="")
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(frame)} requests")
        for column in ("request_id", "time", "arm", "model_version", "prediction", "latency_ms", "client_key"):
            table.add_column(column)
        for row in frame.itertuples():
            table.add_row(
                row.request_id,
                row.time,
                row.arm,
                str(row.model_version),
                json.dumps(row.prediction),
                f"{row.latency_ms:.2f}",
                row.client_key,
            )
        Console(width=200).print(table)
    return ExitCode.OK


def cmd_replay(args) -> int:
    from labline.serve.replay import ReplayError, replay

    try:
        result = replay(args.request_id, _log_path(args), registry_url=args.db, shadow=args.shadow)
    except (ReplayError, FileNotFoundError) as exc:
        raise CommandError(str(exc), ExitCode.FAILED) from exc
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        deployed = result.deployment
        print(f"request     {result.request_id} at {result.time}, arm {result.arm}")
        print(f"payload     {json.dumps(result.payload)}")
        print(f"model       version {result.model_version}, artifact {result.artifact_sha256}")
        if deployed:
            lineage = deployed["lineage"]
            print(f"deployed    {deployed['deployed_at']} from {deployed['artifact_path']}")
            print(
                f"lineage     run {lineage.get('run_id')}, git {lineage.get('git_sha')}, "
                f"data {lineage.get('data_fingerprint')}"
            )
        print(f"answered    {json.dumps(result.answered)}")
        if result.replayed is not None:
            print(f"replayed    {json.dumps(result.replayed)}")
        print("identical   bit for bit" if result.identical else "identical   NO")
        if result.reason:
            print(f"note        {result.reason}")
    return ExitCode.OK if result.identical else ExitCode.FAILED


def cmd_feedback(args) -> int:
    import pandas as pd

    from labline.serve.request_log import write_feedback

    if not args.file.exists():
        raise CommandError(f"{args.file}: no such file")
    try:
        if args.file.suffix in (".jsonl", ".json"):
            frame = pd.read_json(args.file, lines=args.file.suffix == ".jsonl", dtype=False)
        else:
            frame = pd.read_csv(args.file, dtype=str)
    except ValueError as exc:
        raise CommandError(f"{args.file}: cannot read it: {exc}") from exc
    missing = [c for c in ("request_id", "label") if c not in frame.columns]
    if missing:
        raise CommandError(
            f"{args.file}: missing columns {missing}; expected request_id and label, found {list(frame.columns)}"
        )
    frame = frame.dropna(subset=["request_id", "label"])
    labels = dict(zip(frame["request_id"].astype(str), frame["label"].astype(str)))
    try:
        stored, unknown = write_feedback(_log_path(args), labels)
    except FileNotFoundError as exc:
        raise CommandError(str(exc), ExitCode.FAILED) from exc
    print(f"stored {stored} labels; {len(unknown)} request ids not in the log")
    if unknown:
        print(
            "unknown request ids: " + ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else ""), file=sys.stderr
        )
    return ExitCode.OK if stored else ExitCode.FAILED


def cmd_ab_report(args) -> int:
    from labline.serve.abtest import ab_report

    try:
        report = ab_report(
            _log_path(args),
            min_samples=args.min_samples,
            alpha=args.alpha,
            since=parse_since(args.since),
            registry_url=args.db,
        )
    except FileNotFoundError as exc:
        raise CommandError(str(exc), ExitCode.FAILED) from exc
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return ExitCode.OK
    print(f"{'arm':<11} {'versions':<20} {'requests':>9} {'agreement':>10} {'labelled':>9} {'accuracy':>9}")
    for stats in report.arms.values():
        agreement = f"{stats.agreement:.3f}" if stats.agreement is not None else "-"
        accuracy = f"{stats.accuracy:.3f}" if stats.accuracy is not None else "-"
        print(
            f"{stats.arm:<11} {','.join(stats.model_versions) or '-':<20} {stats.requests:>9} {agreement:>10} "
            f"{stats.labelled:>9} {accuracy:>9}"
        )
    print(f"two-proportion z = {report.z:.3f}, p = {report.p_value:.4g}")
    print(report.verdict)
    for note in report.notes:
        print(f"note: {note}")
    return ExitCode.OK
