"""`labline run | status | sweep | runs | show | compare | params`: run the pipeline, incrementally
and in parallel, and look at what runs recorded.

Exit codes: 0 success, 1 a step failed, 2 usage or spec error, 3 a step timed out, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from labline.commands.common import (
    COMPARE_METRICS,
    add_db_option,
    add_format_option,
    add_only_option,
    add_param_option,
    add_runs_option,
    resolve_runs,
)
from labline.commands.progress import ProgressDisplay, progress_printer
from labline.data.cleaning import cleaning_lines
from labline.env import run_metadata
from labline.glue import ModelGlue
from labline.paths import project_root
from runner.compare import comparison_rows, lower_is_better, render, sort_rows
from runner.contracts import OK_STATES, RunManifest, RunStatus, StepError, StepRecord, StepStatus
from runner.exit_codes import ExitCode
from runner.params import read_parameters
from runner.pipeline import plan_status, run_pipeline
from runner.records import find_run, list_runs
from runner.scraps import FRAME_KEY
from runner.spec import load_pipeline


def default_pipeline() -> Path:
    return project_root() / "pipeline.yaml"


def add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    """--pipeline and --allow-outside: which pipeline file, and whether its notebooks may lie outside its folder."""
    parser.add_argument("--pipeline", type=Path, default=None, help="pipeline file (default: ./pipeline.yaml)")
    parser.add_argument(
        "--allow-outside",
        action="store_true",
        help="run notebooks that lie outside the pipeline's folder (refused by default)",
    )


def pipeline_spec(args: argparse.Namespace):
    """The pipeline file the command names (or the project's), loaded and checked."""
    return load_pipeline(args.pipeline or default_pipeline(), allow_outside=args.allow_outside)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that starts runs."""
    add_pipeline_options(parser)
    parser.add_argument("--dataset", help="built-in data set name (iris, ...) or a CSV/Parquet path")
    parser.add_argument("--target", help="label column, when --dataset is a file")
    add_param_option(parser)
    parser.add_argument("--workers", type=int, default=None, help="steps run at once (default: number of cores)")
    add_runs_option(parser)
    parser.add_argument(
        "--executor",
        default="local",
        metavar="local|dask|dask://HOST:PORT",
        help="where steps execute: local kernels, a Dask LocalCluster, or a Dask scheduler",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="limit for each whole notebook (overrides the steps' timeout:)",
    )


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="run the pipeline and print the comparison table")
    add_run_options(run)
    add_only_option(run)
    add_force_option(run)
    add_format_option(run)
    add_db_option(run)
    run.add_argument("--no-register", action="store_true", help="do not register the trained models in the registry")
    run.add_argument("--report", action="store_true", help="write the run's HTML page (labline report), print its path")
    run.set_defaults(handler=cmd_run)

    status = subparsers.add_parser("status", help="say, step by step, what `labline run` would execute and why")
    add_pipeline_options(status)
    add_param_option(status)
    add_runs_option(status)
    add_only_option(status)
    add_force_option(status)
    add_format_option(status)
    status.set_defaults(handler=cmd_status)

    sweep = subparsers.add_parser("sweep", help="run one step for every combination of parameter values")
    sweep.add_argument("step", help="the step to sweep (what it needs comes from the cache)")
    sweep.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="PARAM=V1,V2,...",
        help="values to sweep; commas split at top level: -p hidden_sizes=[8],[16]",
    )
    sweep.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[STEP.]PARAM=VALUE",
        help="a fixed parameter for every run of the sweep",
    )
    sweep.add_argument("--metric", default=None, help="metric to sort by, best first (default: the first one glued)")
    add_pipeline_options(sweep)
    add_runs_option(sweep)
    sweep.add_argument("--workers", type=int, default=None)
    sweep.add_argument("--executor", default="local", metavar="local|dask|dask://HOST:PORT")
    sweep.add_argument("--timeout", type=float, default=None, metavar="SECONDS")
    add_format_option(sweep)
    sweep.set_defaults(handler=cmd_sweep)

    runs = subparsers.add_parser("runs", help="list runs")
    add_runs_option(runs)
    add_format_option(runs)
    runs.set_defaults(handler=cmd_runs)

    show = subparsers.add_parser("show", help="print one run's steps, parameters and scraps")
    show.add_argument("run", help="run id, unique prefix, or 'latest'")
    add_runs_option(show)
    show.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    show.set_defaults(handler=cmd_show)

    compare = subparsers.add_parser("compare", help="put the models of several runs side by side")
    compare.add_argument("run", nargs="*", help="run ids (default: all runs)")
    add_runs_option(compare)
    add_format_option(compare)
    compare.add_argument("--sort", default=None, help="metric to sort by, best first")
    compare.set_defaults(handler=cmd_compare)

    params = subparsers.add_parser("params", help="print the typed parameters a notebook declares")
    params.add_argument("notebook", type=Path)
    params.set_defaults(handler=cmd_params)


def add_force_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--force",
        nargs="?",
        action="append",
        const=True,
        default=None,
        metavar="STEP",
        help="execute even when cached: every step, or (repeatable) this step",
    )


def force_value(args: argparse.Namespace) -> bool | list[str] | None:
    values = getattr(args, "force", None) or []
    if True in values:
        return True
    return [v for v in values if isinstance(v, str)] or None


def dataset_overrides(args: argparse.Namespace) -> list[str]:
    """Check --dataset/--target now (exit 2 before any run folder exists) and turn them into overrides."""
    from labline.commands.common import CommandError
    from labline.data.datasets import DatasetError, check_dataset  # pandas and scikit-learn: only when asked

    if not args.dataset:
        if args.target:
            raise CommandError("--target needs --dataset FILE")
        return []
    try:
        check_dataset(args.dataset, args.target)
    except DatasetError as exc:
        raise CommandError(str(exc)) from None
    source = args.dataset
    if Path(source).exists():
        source = str(Path(source).resolve())
    return [f"dataset={source}"] + ([f"target={args.target}"] if args.target else [])


def pipeline_for_task(spec, overrides: list[str]):
    """The pipeline with the trainers' parameters of its data set's task (labline.task_defaults)."""
    from labline.commands.common import CommandError
    from labline.data.datasets import DatasetError
    from labline.task_defaults import for_dataset

    try:
        return for_dataset(spec, overrides)
    except (DatasetError, ValueError) as exc:
        raise CommandError(str(exc)) from None


def checked_run_dataset(spec, overrides: list[str], given: list[str], only: list[str] | None = None) -> str | None:
    """The data set the run's steps will read (what the run records); a data set given with -p that
    cannot be read is refused here, before any run folder or kernel exists."""
    from labline.commands.common import CommandError
    from labline.data.datasets import DatasetError
    from labline.run_dataset import check_given_datasets, run_dataset

    try:
        check_given_datasets(spec, given, only)
    except DatasetError as exc:
        raise CommandError(f"-p: {exc}") from None
    return run_dataset(spec, overrides, only)


def failure_message(name: str, step: StepRecord) -> str:
    error = step.failure or StepError()
    line = f", line {error.line}" if error.line else ""
    source = f": {error.source_line}" if error.source_line else ""
    return (
        f"step {name!r} {step.status} at {error.where}{line}{source}\n"
        f"  {error.ename}: {error.evalue}\n"
        f"  partly executed notebook: {step.output_notebook}"
    )


def exit_code(manifest: dict[str, Any]) -> ExitCode:
    """OK when the run succeeded, TIMEOUT when a step timed out, INTERRUPTED, else FAILED."""
    run = RunManifest.from_dict(manifest)
    if run.status == RunStatus.SUCCEEDED:
        return ExitCode.OK
    if run.status == RunStatus.INTERRUPTED:
        return ExitCode.INTERRUPTED
    return ExitCode.TIMEOUT if any(s.status == StepStatus.TIMEOUT for s in run.steps.values()) else ExitCode.FAILED


def cmd_run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    overrides = dataset_overrides(args) + list(args.param)
    spec = pipeline_for_task(pipeline_spec(args), overrides)
    metadata = {"dataset": checked_run_dataset(spec, overrides, list(args.param), args.only), **run_metadata(spec.root)}
    with ProgressDisplay(console, spec.order()) as progress:
        record = run_pipeline(
            spec,
            resolve_runs(args),
            overrides=overrides,
            workers=args.workers,
            metadata=metadata,
            on_event=progress.on_event,
            only=args.only,
            force=force_value(args),
            timeout=args.timeout,
            executor=args.executor,
        )
    run = record.contract
    for name, step in run.steps.items():
        if not (step.status.ok or step.status == StepStatus.SKIPPED):
            console.print(f"[red]{escape(failure_message(name, step))}[/]", highlight=False, soft_wrap=True)
    for line in cleaning_lines(run):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    rows = comparison_rows([record.manifest], COMPARE_METRICS, label="model_name")
    print(render(_drop_empty(rows), args.format, title=f"run {record.run_id}"))
    console.print(f"run {record.run_id}: {run.status} ({record.path})", soft_wrap=True)
    if args.report:
        from labline.report import write_report

        report = write_report([(record.path, record.manifest)], record.path / "report.html")
        console.print(f"report: {report}", soft_wrap=True, highlight=False)
    if run.status == RunStatus.SUCCEEDED and not args.no_register and _trained_fresh(run):
        return register_models(record.manifest, args.db, console) or exit_code(record.manifest)
    return exit_code(record.manifest)


def _trained_fresh(run: RunManifest) -> bool:
    """Whether a step of this run trained a model (a cached step's model is registered already)."""
    return any(step.status == StepStatus.SUCCEEDED and ModelGlue.complete_in(step) for step in run.steps.values())


def register_models(manifest: dict[str, Any], db: str | None, console: Console) -> int:
    """Register every trained model of a succeeded run; 0, or 1 with the reason when the registry refuses."""
    from labline.registry import Registry, RegistryError

    try:
        versions = Registry(db).register_run(manifest)
    except RegistryError as exc:
        console.print(f"[red]registering the models of run {manifest['run_id']} failed: {escape(str(exc))}[/]")
        return 1
    for version in versions:
        console.print(f"registered {version.name} as version {version.version} (step {version.step})", highlight=False)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    spec = pipeline_for_task(pipeline_spec(args), list(args.param))
    checked_run_dataset(spec, list(args.param), list(args.param), args.only)
    rows = plan_status(spec, resolve_runs(args), overrides=list(args.param), only=args.only, force=force_value(args))
    table = [
        {"step": r["step"], "action": r["action"], "run": r["from_run"] or "-", "why": "; ".join(r["reasons"])}
        for r in rows
    ]
    print(render(table, args.format, title="what `labline run` would do"))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from labline.run_dataset import run_dataset
    from runner.sweep import parse_grid, sweep, sweep_rows

    console = Console(stderr=True)
    spec = pipeline_for_task(pipeline_spec(args), list(args.set))
    grid = parse_grid(spec, args.step, list(args.param))
    checked_run_dataset(spec, list(args.set), list(args.set), [args.step])
    records = sweep(
        spec,
        resolve_runs(args),
        args.step,
        grid,
        overrides=list(args.set),
        executor=args.executor,
        workers=args.workers,
        metadata=run_metadata(spec.root),
        run_fields=lambda overrides, only: {"dataset": run_dataset(spec, overrides, only)},
        timeout=args.timeout,
        on_event=progress_printer(console),
    )
    rows = sweep_rows(records, args.step, grid)
    metric = args.metric or next((m for m in COMPARE_METRICS if any(m in r for r in rows)), None)
    if metric:
        rows = sort_rows(rows, metric, descending=not lower_is_better(metric))
    print(render(rows, args.format, title=f"sweep of {args.step}" + (f", best {metric} first" if metric else "")))
    codes = [exit_code(r.manifest) for r in records]
    return max(codes) if codes else 0


def _drop_empty(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Leave out metric columns no row has (regression columns in a classification run)."""
    keep = {k for row in rows for k, v in row.items() if v is not None}
    return [{k: v for k, v in row.items() if k in keep} for row in rows]


def cmd_runs(args: argparse.Namespace) -> int:
    rows = []
    for m in list_runs(resolve_runs(args)):
        steps = m.get("steps", {})
        done = sum(1 for s in steps.values() if s.get("status") in OK_STATES)
        rows.append(
            {
                "run_id": m["run_id"],
                "created": m.get("created"),
                "status": _seen_status(m),
                "dataset": m.get("dataset"),
                "steps": f"{done}/{len(steps)}",
            }
        )
    print(render(rows, args.format) if rows else "no runs yet: `labline run` makes one")
    return 0


def _short(value: Any) -> str:
    if isinstance(value, dict) and FRAME_KEY in value:
        frame = value[FRAME_KEY]
        return f"<table {len(frame['index'])}x{len(frame['columns'])}>"
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 100 else text[:97] + "..."


def _seen_status(manifest: dict[str, Any]) -> str | None:
    """The run's status as a reader should report it: `died` for a `running` run whose process is gone."""
    return _as_seen(manifest).get("status")


def _as_seen(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with the run's and its steps' statuses as a reader should report them."""
    try:
        run = RunManifest.from_dict(manifest)
    except (ValueError, TypeError, AttributeError):
        return manifest
    steps = {name: body | {"status": run.seen_step_status(name).value} for name, body in manifest["steps"].items()}
    return manifest | {"status": run.seen_status.value, "steps": steps}


def cmd_show(args: argparse.Namespace) -> int:
    record = find_run(resolve_runs(args), args.run)
    m = record.manifest
    if args.json:
        print(json.dumps(_as_seen(m), indent=2, default=str))
        return 0
    console = Console()
    console.print(
        f"[bold]run {m['run_id']}[/] {_seen_status(m)}  created {m.get('created')}  dataset {m.get('dataset')}"
    )
    console.print(
        f"git {m.get('git', {}).get('sha')} (dirty: {m.get('git', {}).get('dirty')})  device {m.get('device')}"
    )
    run = record.contract
    for name, step in run.steps.items():
        seconds, notebook = ("" if v is None else v for v in (step.seconds, step.output_notebook))
        console.print(f"\n[bold]{name}[/] {run.seen_step_status(name)} {seconds}s  {notebook}")
        for key, value in (step.parameters or {}).items():
            console.print(f"  param {key} = {_short(value)}", markup=False)
        for key, value in step.glued.items():
            console.print(f"  scrap {key} = {_short(value)}", markup=False)
        if step.error:
            console.print(failure_message(name, step), markup=False)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    root = resolve_runs(args)
    manifests = [find_run(root, r).manifest for r in args.run] if args.run else list_runs(root)
    shown = COMPARE_METRICS + ([args.sort] if args.sort and args.sort not in COMPARE_METRICS else [])
    rows = _drop_empty(comparison_rows(manifests, shown, label="model_name"))
    if args.sort:
        rows = sort_rows(rows, args.sort, descending=not lower_is_better(args.sort))
    print(render(rows, args.format) if rows else "no trained models in these runs")
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    declared = read_parameters(args.notebook)
    if not declared:
        print(f"{args.notebook}: no parameters cell", file=sys.stderr)
        return 2
    for parameter in declared.values():
        print(parameter.describe())
    return 0
