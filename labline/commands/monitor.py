"""`labline monitor`: compare production input with the serving model's training data.

Exit codes (runner.exit_codes): 0 healthy (or not enough data to judge), 1 alerts raised, 2 usage
error (no such source, run or model), 5 the monitor itself crashed (its notebook failed for another
reason, its kernel died): not a verdict on the data. Cron-friendly: one command, the report folder
printed on stdout.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from labline.commands.common import CommandError, add_db_option, add_runs_option, resolve_runs
from labline.glue import MissingGlue, MonitorGlue, MonitorStatus, Webhook
from runner.contracts import StepError, StepStatus
from runner.exit_codes import ExitCode


def usage_errors() -> tuple[type[Exception], ...]:
    """What the monitor raises for input it cannot use (a missing source, run, model, data set)."""
    from labline.data.datasets import DatasetError
    from labline.models.artifact import ArtifactError
    from labline.monitor.sources import SourceError
    from labline.registry import RegistryError

    return (SourceError, FileNotFoundError, ArtifactError, RegistryError, DatasetError, ValueError)


def register(subparsers) -> None:
    parser = subparsers.add_parser("monitor", help="check production input for drift; exit 1 when it alerts")
    parser.add_argument(
        "--source",
        default="requests",
        help="requests (the request log, default), heldout (the reference's held-out rows), or a batch file",
    )
    parser.add_argument(
        "--reference",
        default="",
        help="the model to watch: a run id or folder, or registry:ALIAS (default: the registry's champion)",
    )
    parser.add_argument(
        "--window", default="7d", help="how far back to read requests: 30m, 12h, 7d, 2w or all (default 7d)"
    )
    parser.add_argument("--webhook", default="", metavar="URL", help="POST the alerts as JSON to this URL")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default runs/monitor/<time>)")
    add_db_option(parser)
    parser.add_argument(
        "--request-log", default=None, help="request log (default $LABLINE_REQUEST_LOG or .labline/requests.db)"
    )
    add_runs_option(parser)
    parser.add_argument("--min-rows", type=int, default=50, help="fewer rows per feature: not enough data (default 50)")
    parser.add_argument(
        "--drift-share",
        type=float,
        default=0.25,
        help="dataset drift when this share of features drifted (default 0.25)",
    )
    parser.add_argument(
        "--no-notebook",
        action="store_true",
        help="assess in-process (same checks and report, no executed notebook): faster for cron",
    )
    parser.set_defaults(handler=run_monitor)


def _parameters(args, out: Path) -> dict:
    source = args.source
    if source not in ("requests", "heldout"):
        if not Path(source).exists():
            raise CommandError(f"--source {source!r}: no such file; expected requests, heldout or a batch file")
        source = str(Path(source).resolve())
    return {
        "source": source,
        "reference": args.reference,
        "model_dir": "",
        "window": args.window,
        "webhook": args.webhook,
        "registry_url": args.db or "",
        "request_log": args.request_log or "",
        "runs_root": str(args.runs.resolve()) if args.runs else "",
        "alert_log": "",
        "min_rows": args.min_rows,
        "drift_share": args.drift_share,
        "output_dir": str(out.resolve()),
    }


def _in_process(params: dict) -> MonitorGlue:
    from labline.monitor.drift import DriftConfig
    from labline.monitor.health import MonitorConfig
    from labline.monitor.run import monitor_once

    config = MonitorConfig(drift=DriftConfig(min_rows=params["min_rows"], drift_share=params["drift_share"]))
    try:
        outcome = monitor_once(
            params["source"],
            params["reference"],
            params["window"],
            params["output_dir"],
            params["webhook"],
            params["registry_url"] or None,
            params["runs_root"] or None,
            params["request_log"] or None,
            None,
            config,
        )
    except usage_errors() as exc:
        raise CommandError(str(exc)) from exc
    return MonitorGlue.of(outcome)


def _with_notebook(params: dict, out: Path) -> MonitorGlue:
    """The monitor notebook through the runner's one executor (papermill on labline's engine)."""
    from labline.paths import project_root
    from runner.execute import execute_step
    from runner.params import bind_parameters

    notebook = project_root() / "notebooks" / "monitor.ipynb"
    executed = out / "monitor.ipynb"
    outcome = execute_step(notebook, executed, bind_parameters(notebook, params), cwd=project_root())
    error = StepError.from_dict(outcome.error)
    if error is not None:
        if outcome.status == StepStatus.FAILED and error.raised(*usage_errors()):
            raise CommandError(f"{error.ename}: {error.evalue} (executed notebook: {executed})")
        raise CommandError(
            f"the monitor notebook {outcome.status}: {error.ename}: {error.evalue} (see {executed})", ExitCode.CRASHED
        )
    try:
        return MonitorGlue.from_scraps(outcome.scraps, "monitor", str(notebook))
    except MissingGlue as exc:
        raise CommandError(f"the monitor notebook broke its contract: {exc}", ExitCode.CRASHED) from exc


def fired_rules(result_json: Path) -> list[str]:
    """One line per alert: the rule that fired and the features (or the message) behind it."""
    import json

    from labline.monitor.alerts import Alert

    if not result_json.exists():
        return []
    alerts = [Alert(**a) for a in json.loads(result_json.read_text()).get("alerts", [])]
    return [f"rule {a.rule or a.kind}: {', '.join(a.details.get('features', [])) or a.message}" for a in alerts]


def run_monitor(args) -> int:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = args.out or resolve_runs(args) / "monitor" / stamp
    out.mkdir(parents=True, exist_ok=True)
    params = _parameters(args, out)
    verdict = _in_process(params) if args.no_notebook else _with_notebook(params, out)
    print(f"monitor: {verdict.status}" + (f" ({', '.join(verdict.alerts)})" if verdict.alerts else ""))
    for line in fired_rules(Path(verdict.report_path).with_name("result.json")):
        print(line)
    if verdict.drifted_features:
        print(f"drifted features: {', '.join(verdict.drifted_features)}")
    print(f"report: {verdict.report_path}")
    if verdict.webhook == Webhook.DELIVERED:
        print(f"alerts sent to {args.webhook}")
    elif verdict.webhook == Webhook.FAILED:
        print(f"webhook {args.webhook} not delivered: {verdict.webhook_error}", file=sys.stderr)
    return ExitCode.FAILED if verdict.status == MonitorStatus.ALERT else ExitCode.OK
