"""`labline register | models | model show | promote | alias | decisions | reproduce`: the model registry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from labline.commands.common import add_db_option, add_format_option, add_runs_option, resolve_runs
from labline.glue import TrainedModelGlue
from runner.contracts import RunStatus
from runner.exit_codes import ExitCode

if TYPE_CHECKING:  # SQLAlchemy loads when a registry command runs, so the CLI starts fast
    from labline.registry import Decision, Registry

SHOWN_METRICS = ["test_accuracy", "macro_f1", "cv_score", "test_mae", "test_r2"]


def register(subparsers) -> None:
    reg = subparsers.add_parser("register", help="register every trained model of a succeeded run")
    reg.add_argument("run", help="run id, unique prefix, or 'latest'")
    add_runs_option(reg)
    add_db_option(reg)
    reg.set_defaults(handler=cmd_register)

    models = subparsers.add_parser("models", help="list registered model versions")
    add_format_option(models)
    add_db_option(models)
    models.set_defaults(handler=cmd_models)

    model = subparsers.add_parser("model", help="one model version: `labline model show VERSION`")
    model_sub = model.add_subparsers(dest="model_command", metavar="MODEL_COMMAND")
    model.set_defaults(handler=lambda args: model.print_help() or 2)
    show = model_sub.add_parser("show", help="print a version with its lineage")
    show.add_argument("version", help="version number or alias (champion, challenger, ...)")
    show.add_argument("--json", action="store_true", help="print the whole record as JSON")
    add_db_option(show)
    show.set_defaults(handler=cmd_model_show)

    _promote_parser(subparsers)

    alias = subparsers.add_parser("alias", help="list aliases, or point one at a version without the gate")
    alias.add_argument("name", nargs="?", help="alias name")
    alias.add_argument("version", nargs="?", type=int, help="version number")
    alias.add_argument("--remove", action="store_true", help="remove the alias NAME")
    alias.add_argument(
        "--force", action="store_true", help="allow setting 'champion' without the gate (needs --reason)"
    )
    alias.add_argument("--reason", default=None, help="why the alias moves, recorded in the decisions")
    alias.add_argument(
        "--dataset",
        default=None,
        metavar="NAME",
        help="the data set of the alias to show or remove (or name it DATASET@ALIAS)",
    )
    add_db_option(alias)
    alias.set_defaults(handler=cmd_alias)

    decisions = subparsers.add_parser("decisions", help="promotion decisions, newest first, with their reasons")
    decisions.add_argument("--limit", type=int, default=20)
    add_db_option(decisions)
    decisions.set_defaults(handler=cmd_decisions)

    repro = subparsers.add_parser("reproduce", help="re-run a run with its recorded parameters and compare metrics")
    repro.add_argument("run", help="run id, unique prefix, or 'latest'")
    add_runs_option(repro)
    repro.add_argument("--pipeline", type=Path, default=None, help="pipeline file (default: ./pipeline.yaml)")
    repro.add_argument("--workers", type=int, default=None)
    repro.set_defaults(handler=cmd_reproduce)


def _promote_parser(subparsers) -> None:
    promote = subparsers.add_parser("promote", help="give an alias to the best version that passes the gate")
    promote.add_argument("--alias", default="champion", help="alias to move (default: champion)")
    promote.add_argument("--version", type=int, default=None, help="promote this version (default: the best eligible)")
    promote.add_argument(
        "--metric",
        default=None,
        help="metric to compare (default: macro_f1 for classification, test_mae for regression)",
    )
    promote.add_argument(
        "--margin",
        type=float,
        default=0.0,
        help="the metric must beat the current holder's by at least this much (default 0)",
    )
    promote.add_argument(
        "--slice-tolerance",
        type=float,
        default=0.05,
        help="how much worse than the holder's any slice may be (default 0.05)",
    )
    promote.add_argument("--dry-run", action="store_true", help="show the decision without acting or recording it")
    promote.add_argument(
        "--accept",
        default=None,
        metavar="REASON",
        help="promote even though the gate refuses, accepting the risk for this REASON (recorded with who and "
        "when; a tampered artifact is never accepted)",
    )
    promote.add_argument(
        "--dataset",
        default=None,
        metavar="NAME",
        help="the data set whose alias moves, candidates from it alone "
        "(default: --version's, or the registry's only data set)",
    )
    add_db_option(promote)
    promote.set_defaults(handler=cmd_promote)


def _open(args: argparse.Namespace) -> Registry:
    from labline.commands.common import CommandError
    from labline.registry import Registry, RegistryError

    try:
        return Registry(args.db)
    except RegistryError as exc:
        raise CommandError(str(exc)) from None
    except Exception as exc:  # a URL whose driver is missing, a folder that cannot be written
        raise CommandError(f"cannot open registry {args.db or '(default)'}: {exc}") from None


def _guard(func):
    """Turn a RegistryError into the CLI's clear one-line error (ExitCode.FAILED)."""

    def wrapped(args: argparse.Namespace) -> int:
        from labline.commands.common import CommandError
        from labline.registry import RegistryError

        try:
            return func(args)
        except RegistryError as exc:
            raise CommandError(str(exc), ExitCode.FAILED) from None

    return wrapped


def _row(version) -> dict:
    row = {
        "version": version.version,
        "name": version.name,
        "scope": version.scope,
        "aliases": ",".join(version.aliases),
        "run_id": version.run_id,
        "step": version.step,
        "dataset": version.dataset,
        "task": version.task,
    }
    row.update({m: version.metrics.get(m) for m in SHOWN_METRICS})
    row["created"] = version.created
    return row


@_guard
def cmd_register(args: argparse.Namespace) -> int:
    from runner.records import find_run

    record = find_run(resolve_runs(args), args.run)
    versions = _open(args).register_run(record.manifest)
    if not versions:
        glue = " and ".join(TrainedModelGlue.required())
        print(f"run {record.run_id} has no trained model (no succeeded step glued {glue})")
        return ExitCode.FAILED
    for v in versions:
        print(f"registered {v.label} from run {v.run_id} step {v.step} (artifact {v.artifact_sha256[:12]})")
    return ExitCode.OK


@_guard
def cmd_models(args: argparse.Namespace) -> int:
    from runner.compare import render

    rows = [_row(v) for v in _open(args).versions()]
    if not rows:
        print("no model versions yet: `labline register RUN` (or `labline run`) adds them")
        return ExitCode.OK
    keep = {k for row in rows for k, v in row.items() if v not in (None, "")} | {"aliases"}
    print(render([{k: v for k, v in row.items() if k in keep} for row in rows], args.format))
    return ExitCode.OK


@_guard
def cmd_model_show(args: argparse.Namespace) -> int:
    v = _open(args).resolve(args.version)
    if args.json:
        print(json.dumps(v.to_dict(), indent=2, default=str))
        return ExitCode.OK
    print(f"{v.label}  aliases: {', '.join(v.aliases) or '-'}")
    print(f"  task            {v.task}")
    print(f"  run             {v.run_id}  step {v.step}")
    print(f"  created         {v.created}  (registered {v.registered})")
    print(f"  dataset         {v.dataset}")
    print(f"  data fingerprint {v.data_fingerprint}")
    print(f"  git             {v.git_sha} (dirty: {v.git_dirty})")
    print(f"  artifact        {v.artifact_path}")
    print(f"  artifact sha256 {v.artifact_sha256}")
    for name, value in v.parameters.items():
        print(f"  param  {name} = {json.dumps(value, default=str)}")
    for name, value in v.metrics.items():
        print(f"  metric {name} = {value}")
    print("  packages        " + ", ".join(f"{k} {val}" for k, val in v.packages.items()))
    validation, audit = v.checks.get("validation"), v.checks.get("audit")
    print(
        f"  validation      {'passed' if validation and validation['passed'] else 'failed' if validation else 'none'}"
        + (f" (step {validation['step']})" if validation else "")
    )
    print(
        f"  audit           {'passed' if audit and audit['passed'] else 'failed' if audit else 'none'}"
        + (
            f" (step {audit['step']}, {len(audit.get('slices') or [])} slices, "
            f"{len(audit.get('disparities') or [])} disparities)"
            if audit
            else ""
        )
    )
    return ExitCode.OK


def print_decision(decision: Decision) -> None:
    verb = "would promote" if decision.dry_run and decision.promoted else "promoted" if decision.promoted else "refused"
    who = decision.candidate.label if decision.candidate else "no candidate"
    held = decision.incumbent.label if decision.incumbent else "nobody"
    scope = f" of {decision.scope}" if decision.scope else ""
    print(
        f"{verb}: {who} as {decision.alias!r}{scope} (held by {held}; metric {decision.metric})"
        + ("  [dry run: nothing changed]" if decision.dry_run else "")
    )
    for check in decision.checks:
        print(f"  {'PASS' if check.passed else 'FAIL'} {check.rule:<12} {check.reason}")
    if decision.accepted:
        risk = decision.accepted
        print(f"  ACCEPTED RISK by {risk.who} at {risk.when} ({risk.failed_rules()} failed): {risk.reason}")
    for version, checks in decision.considered:
        if version is decision.candidate:
            continue
        failed = [c for c in checks if not c.passed]
        value = version.metrics.get(decision.metric)
        why = "; ".join(f"{c.rule}: {c.reason}" for c in failed) or "eligible, ranked lower"
        print(f"  also considered {version.label} ({decision.metric} {value:.4f}): {why}")


@_guard
def cmd_promote(args: argparse.Namespace) -> int:
    from labline.commands.common import CommandError

    if args.margin < 0 or args.slice_tolerance < 0:
        raise CommandError(f"--margin ({args.margin}) and --slice-tolerance ({args.slice_tolerance}) must be >= 0")
    if args.accept is not None:
        _reason(args.accept, "accepting a risk", "--accept")
    decision = _open(args).promote(
        alias=args.alias,
        metric=args.metric,
        version=args.version,
        margin=args.margin,
        slice_tolerance=args.slice_tolerance,
        dry_run=args.dry_run,
        scope=args.dataset,
        accept=args.accept,
    )
    print_decision(decision)
    if args.accept is not None and decision.passed:
        print("  nothing to accept: the gate passed")
    if decision.accepted and not decision.dry_run:
        _write_card(decision)
    return ExitCode.OK if decision.promoted else ExitCode.FAILED


def _write_card(decision: Decision) -> None:
    """The accepted risk goes into the candidate's model card, where the run's audit wrote it."""
    from labline.audit.model_card import record_accepted_risk

    card = (decision.candidate.checks.get("audit") or {}).get("card")
    if not card or not Path(card).is_file():
        print(f"  no model card to record the accepted risk in ({card or 'the audit wrote none'})")
        return
    record_accepted_risk(card, decision.accepted)
    print(f"  model card {card} records the accepted risk")


def _reason(text: str | None, what: str, option: str) -> str:
    """A reason given on the command line (the registry's rule); a missing or blank one is a usage error."""
    from labline.commands.common import CommandError
    from labline.registry import RegistryError
    from labline.registry.decisions import check_reason

    try:
        return check_reason(text, what, option)
    except RegistryError as exc:
        raise CommandError(str(exc)) from None


@_guard
def cmd_alias(args: argparse.Namespace) -> int:
    from labline.commands.common import CommandError

    reg = _open(args)
    if args.remove:
        if not args.name:
            raise CommandError("--remove needs an alias NAME")
        scope = reg.remove_alias(args.name, args.dataset, args.reason)
        print(f"removed alias {args.name!r} of {scope}")
        return ExitCode.OK
    if args.name is None:
        for row in reg.alias_table():
            print(f"{row['scope']}@{row['alias']} -> v{row['version']}")
        return ExitCode.OK
    if args.version is None:
        found = reg.resolve(args.name, args.dataset)
        print(f"{found.scope}@{args.name.rpartition('@')[2]} -> {found.label}")
        return ExitCode.OK
    if args.name == "champion" and not args.force:
        raise CommandError(
            "'champion' is moved by `labline promote` (the gate); add --force --reason \"WHY\" to set it by hand"
        )
    if args.force:
        _reason(args.reason, f"--force (moving {args.name!r} to v{args.version} without the gate)", "--reason")
    version = reg.set_alias(args.name, args.version, reason=args.reason, force=args.force)
    print(f"{version.scope}@{args.name} -> {version.label}")
    return ExitCode.OK


@_guard
def cmd_decisions(args: argparse.Namespace) -> int:
    found = _open(args).decisions(args.limit)
    if not found:
        print("no promotion decisions yet")
    for d in found:
        where = f"{d.scope}@" if d.scope else ""
        held = f"v{d.previous}" if d.previous else "nobody"
        metric = f"; metric {d.metric}" if d.metric else ""
        print(f"#{d.id} {d.created} {where}{d.alias}: {_verb(d)} (held by {held}{metric}) by {d.who or 'unknown'}")
        if d.why:
            print(f"    why: {d.why}")
        for check in d.checks:
            print(f"    {'PASS' if check.passed else 'FAIL'} {check.rule:<12} {check.reason}")
    return ExitCode.OK


def _verb(d) -> str:
    """What a decision did, in words: `d` is a registry DecisionRecord."""
    from labline.registry.decisions import DecisionKind

    if d.kind == DecisionKind.REMOVED:
        return "removed"
    what = {DecisionKind.ACCEPTED: "promoted, risk accepted", DecisionKind.FORCED: "forced", DecisionKind.MOVED: "set"}
    return f"{what.get(d.kind, 'promoted' if d.promoted else 'refused')} v{d.version}"


@_guard
def cmd_reproduce(args: argparse.Namespace) -> int:
    from rich.console import Console

    from labline.commands.pipeline import default_pipeline
    from labline.commands.progress import progress_printer
    from labline.env import run_metadata
    from labline.registry.reproduce import reproduce_run
    from runner.compare import render
    from runner.records import find_run
    from runner.spec import load_pipeline

    root = resolve_runs(args)
    old = find_run(root, args.run).manifest
    spec = load_pipeline(args.pipeline or default_pipeline())
    result = reproduce_run(
        old,
        spec,
        root,
        workers=args.workers,
        metadata=run_metadata(spec.root),
        on_event=progress_printer(Console(stderr=True)),
    )
    rows = [
        {
            "step": c.step,
            "metric": c.metric,
            "recorded": c.old,
            "reproduced": c.new,
            "identical": "yes" if c.identical else "NO",
        }
        for c in result.comparisons
    ]
    print(render(rows, "table", title=f"run {result.old_run_id} reproduced as {result.new_run_id}"))
    for artifact in result.artifacts:  # "identical artifact: <step> <sha256> in both runs", or how they differ
        print(artifact.line())
    if result.identical:
        print(
            f"identical: all {len(result.comparisons)} metrics of run {result.old_run_id} are the same "
            f"in run {result.new_run_id}"
        )
        return ExitCode.OK
    if result.status != RunStatus.SUCCEEDED:
        print(f"not reproduced: the new run {result.new_run_id} {result.status} ({result.new_run_path})")
    for c in result.differing:
        print(f"differs: {c.step} {c.metric}: recorded {c.old!r}, reproduced {c.new!r}")
    return ExitCode.FAILED
