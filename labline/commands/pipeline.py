"""`labline run | runs | show | compare | params`: run the pipeline and look at what runs recorded."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from labline.data.datasets import DatasetError, load_dataset
from labline.env import run_metadata
from labline.paths import project_root, runs_root
from runner.compare import comparison_rows, render
from runner.params import read_parameters
from runner.pipeline import run_pipeline
from runner.records import find_run, list_runs
from runner.scraps import FRAME_KEY
from runner.spec import load_pipeline

# What a comparison shows for each trained model: classification, then regression metrics.
COMPARE_METRICS = ["test_accuracy", "macro_f1", "cv_score", "test_mae", "test_r2", "fit_seconds"]
FORMATS = ["table", "csv", "json", "markdown"]


def default_pipeline() -> Path:
    return project_root() / "pipeline.yaml"


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that starts runs."""
    parser.add_argument("--pipeline", type=Path, default=None, help="pipeline file (default: ./pipeline.yaml)")
    parser.add_argument("--dataset", help="built-in data set name (iris, ...) or a CSV/Parquet path")
    parser.add_argument("--target", help="label column, when --dataset is a file")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="[STEP.]PARAM=VALUE",
                        help="set a parameter for one step, or for every step that declares it")
    parser.add_argument("--workers", type=int, default=None, help="steps run at once (default: number of cores)")
    parser.add_argument("--runs", type=Path, default=None, help="runs folder (default: runs/ or $LABLINE_RUNS)")


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="run the pipeline and print the comparison table")
    add_run_options(run)
    run.add_argument("--only", action="append", default=None, metavar="STEP", help="run only this step and what it needs")
    run.add_argument("--format", choices=FORMATS, default="table", help="format of the final table")
    run.set_defaults(handler=cmd_run)

    runs = subparsers.add_parser("runs", help="list runs")
    runs.add_argument("--runs", type=Path, default=None)
    runs.add_argument("--format", choices=FORMATS, default="table")
    runs.set_defaults(handler=cmd_runs)

    show = subparsers.add_parser("show", help="print one run's steps, parameters and scraps")
    show.add_argument("run", help="run id, unique prefix, or 'latest'")
    show.add_argument("--runs", type=Path, default=None)
    show.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    show.set_defaults(handler=cmd_show)

    compare = subparsers.add_parser("compare", help="put the models of several runs side by side")
    compare.add_argument("run", nargs="*", help="run ids (default: all runs)")
    compare.add_argument("--runs", type=Path, default=None)
    compare.add_argument("--format", choices=FORMATS, default="table")
    compare.add_argument("--sort", default=None, help="metric to sort by, best first")
    compare.set_defaults(handler=cmd_compare)

    params = subparsers.add_parser("params", help="print the typed parameters a notebook declares")
    params.add_argument("notebook", type=Path)
    params.set_defaults(handler=cmd_params)


def dataset_overrides(args: argparse.Namespace) -> list[str]:
    """Check --dataset/--target now (exit 2 before any run folder exists) and turn them into overrides."""
    from labline.cli import CommandError

    if not args.dataset:
        if args.target:
            raise CommandError("--target needs --dataset FILE")
        return []
    try:
        load_dataset(args.dataset, args.target)
    except DatasetError as exc:
        raise CommandError(str(exc)) from None
    source = args.dataset
    if Path(source).exists():
        source = str(Path(source).resolve())
    return [f"dataset={source}"] + ([f"target={args.target}"] if args.target else [])


def progress_printer(console: Console):
    marks = {"running": "[cyan]…[/]", "succeeded": "[green]✓[/]", "cached": "[green]=[/]", "skipped": "[yellow]-[/]"}

    def on_event(step: str, state: str, details: dict[str, Any]) -> None:
        mark = marks.get(state, "[red]✗[/]")
        extra = f" {details.get('seconds', 0):.1f}s" if "seconds" in details else ""
        console.print(f"{mark} {step:<16} {state}{extra}")

    return on_event


def failure_message(step: str, body: dict[str, Any]) -> str:
    error = body.get("error") or {}
    where = f"cell {error['cell']}" if error.get("cell") is not None else "the notebook"
    line = f", line {error['line']}" if error.get("line") else ""
    source = f": {error['source_line']}" if error.get("source_line") else ""
    return (f"step {step!r} {body.get('status')} at {where}{line}{source}\n"
            f"  {error.get('ename', 'Error')}: {error.get('evalue', '')}\n"
            f"  partly executed notebook: {body.get('output_notebook')}")


def resolve_runs(args: argparse.Namespace) -> Path:
    return Path(args.runs) if getattr(args, "runs", None) else runs_root()


def cmd_run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    spec = load_pipeline(args.pipeline or default_pipeline())
    overrides = dataset_overrides(args) + list(args.param)
    metadata = {"dataset": args.dataset or "iris", **run_metadata(spec.root)}
    record = run_pipeline(spec, resolve_runs(args), overrides=overrides, workers=args.workers,
                          metadata=metadata, on_event=progress_printer(console), only=args.only)
    for step, body in record.manifest["steps"].items():
        if body.get("status") not in ("succeeded", "cached", "skipped"):
            console.print(f"[red]{failure_message(step, body)}[/]")
    rows = comparison_rows([record.manifest], COMPARE_METRICS, label="model_name")
    print(render(_drop_empty(rows), args.format, title=f"run {record.run_id}"))
    console.print(f"run {record.run_id}: {record.manifest['status']} ({record.path})")
    return 0 if record.manifest["status"] == "succeeded" else 1


def _drop_empty(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Leave out metric columns no row has (regression columns in a classification run)."""
    keep = {k for row in rows for k, v in row.items() if v is not None}
    return [{k: v for k, v in row.items() if k in keep} for row in rows]


def cmd_runs(args: argparse.Namespace) -> int:
    rows = []
    for m in list_runs(resolve_runs(args)):
        steps = m.get("steps", {})
        done = sum(1 for s in steps.values() if s.get("status") in ("succeeded", "cached"))
        rows.append({"run_id": m["run_id"], "created": m.get("created"), "status": m.get("status"),
                     "dataset": m.get("dataset"), "steps": f"{done}/{len(steps)}"})
    print(render(rows, args.format) if rows else "no runs yet: `labline run` makes one")
    return 0


def _short(value: Any) -> str:
    if isinstance(value, dict) and FRAME_KEY in value:
        frame = value[FRAME_KEY]
        return f"<table {len(frame['index'])}x{len(frame['columns'])}>"
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 100 else text[:97] + "..."


def cmd_show(args: argparse.Namespace) -> int:
    record = find_run(resolve_runs(args), args.run)
    m = record.manifest
    if args.json:
        print(json.dumps(m, indent=2, default=str))
        return 0
    console = Console()
    console.print(f"[bold]run {m['run_id']}[/] {m.get('status')}  created {m.get('created')}  dataset {m.get('dataset')}")
    console.print(f"git {m.get('git', {}).get('sha')} (dirty: {m.get('git', {}).get('dirty')})  device {m.get('device')}")
    for step, body in m["steps"].items():
        console.print(f"\n[bold]{step}[/] {body.get('status')} {body.get('seconds', '')}s  {body.get('output_notebook', '')}")
        for key, value in (body.get("parameters") or {}).items():
            console.print(f"  param {key} = {_short(value)}", markup=False)
        for key, value in (body.get("scraps") or {}).items():
            console.print(f"  scrap {key} = {_short(value)}", markup=False)
        if body.get("error"):
            console.print(failure_message(step, body), markup=False)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    root = resolve_runs(args)
    manifests = [find_run(root, r).manifest for r in args.run] if args.run else list_runs(root)
    rows = _drop_empty(comparison_rows(manifests, COMPARE_METRICS, label="model_name"))
    if args.sort:
        from runner.compare import sort_rows

        rows = sort_rows(rows, args.sort, descending=not args.sort.endswith(("mae", "rmse", "seconds")))
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
