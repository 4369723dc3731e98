"""Sweeps: one step run for every combination of some of its parameters, in parallel.

    sweep(spec, "runs", "train_torch", {"lr": ["0.01", "0.1"], "hidden_sizes": ["[8]", "[16]"]})

Every combination is an ordinary run (only the step and what it needs; upstream steps come from
the cache, executed once first when they are not cached), so `compare` sees sweep runs like any
other. All runs share one executor: `workers` steps at a time, locally or on Dask. `run_fields`
gives each run's manifest the fields that depend on what that run's steps get (labline records the
data set they read), since a swept parameter may be the data set itself.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from runner.errors import ParameterError, RunnerError, UsageError
from runner.executors import StepExecutor, make_executor
from runner.params import bind_parameters, parse_assignment, read_parameters
from runner.pipeline import plan_status, run_pipeline
from runner.records import RunRecord
from runner.spec import PipelineSpec

_OPEN, _CLOSE = "[({", "])}"
RunFields = Callable[[dict[str, Any], list[str]], dict[str, Any]]  # (a run's overrides, its --only) -> manifest fields


def split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets and quotes: `[8],[16,8]` -> ['[8]', '[16,8]']."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quote or depth:
        raise ParameterError(f"unbalanced brackets or quotes in {text!r}")
    parts.append("".join(current))
    return [p.strip() for p in parts]


def parse_grid(spec: PipelineSpec, step: str, assignments: list[str]) -> dict[str, list[Any]]:
    """`PARAM=V1,V2` (or `STEP.PARAM=...`) -> {PARAM: [typed values]}, checked against the notebook."""
    if step not in spec.steps:
        raise UsageError(f"unknown step {step!r}; steps are {list(spec.steps)}")
    declared = read_parameters(spec.steps[step].notebook)
    grid: dict[str, list[Any]] = {}
    for text in assignments:
        name, raw = parse_assignment(text)
        prefix, dot, rest = name.partition(".")
        if dot:
            if prefix != step:
                raise ParameterError(f"sweep parameter {name!r}: only parameters of {step!r} can be swept")
            name = rest
        values = [v for v in split_top_level(raw) if v != ""]
        if not values:
            raise ParameterError(f"sweep parameter {name!r}: expected one or more values, e.g. {name}=1,2")
        grid[name] = [bind_parameters(spec.steps[step].notebook, {name: v}, declared)[name] for v in values]
    if not grid:
        raise ParameterError("a sweep needs at least one -p PARAM=V1,V2,...")
    return grid


def combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


def sweep(
    spec: PipelineSpec,
    runs_root: str | Path,
    step: str,
    grid: dict[str, list[Any]],
    overrides: list[str] | None = None,
    executor: str | StepExecutor = "local",
    workers: int | None = None,
    metadata: dict[str, Any] | None = None,
    on_event=None,
    timeout: float | None = None,
    run_fields: RunFields | None = None,
) -> list[RunRecord]:
    """Run `step` once per combination of `grid`; returns the runs' records in grid order."""
    base = dict(parse_assignment(o) for o in overrides or [])

    def fields(values: dict[str, Any], only: list[str]) -> dict[str, Any]:
        return {**(metadata or {}), **(run_fields(values, only) if run_fields else {})}

    combos = combinations(grid)
    sweep_id = secrets.token_hex(4)
    owned = not isinstance(executor, StepExecutor)
    shared = make_executor(executor, workers) if owned else executor
    try:
        needs = spec.steps[step].needs
        if needs and any(row["action"] != "cached" for row in plan_status(spec, runs_root, base, only=needs)):
            first = run_pipeline(
                spec,
                runs_root,
                overrides=base,
                only=needs,
                executor=shared,
                metadata={**fields(base, needs), "sweep": {"id": sweep_id, "role": "upstream"}},
                on_event=on_event,
                timeout=timeout,
            )
            if first.manifest["status"] != "succeeded":
                raise RunnerError(
                    f"the steps {step!r} needs did not succeed (run {first.run_id}); `show {first.run_id}` says why"
                )

        def one(combo: dict[str, Any]) -> RunRecord:
            values = {**base, **{f"{step}.{k}": v for k, v in combo.items()}}
            labelled = (lambda s, state, d: on_event(s, state, {**d, "combo": combo})) if on_event else None
            return run_pipeline(
                spec,
                runs_root,
                overrides=values,
                only=[step],
                executor=shared,
                metadata={**fields(values, [step]), "sweep": {"id": sweep_id, "step": step, "parameters": combo}},
                on_event=labelled,
                timeout=timeout,
            )

        with ThreadPoolExecutor(max_workers=len(combos), thread_name_prefix="runner-sweep") as runs:
            return list(runs.map(one, combos))
    finally:
        if owned:
            shared.close()


def sweep_rows(records: list[RunRecord], step: str, grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """One row per run: run id, the swept values, status, and every number the step glued."""
    rows = []
    for record in records:
        body = record.manifest["steps"].get(step, {})
        combo = record.manifest.get("sweep", {}).get("parameters", {})
        row: dict[str, Any] = {"run_id": record.run_id}
        row.update({name: combo.get(name) for name in grid})
        row["status"] = body.get("status")
        for key, value in (body.get("scraps") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row[key] = value
        rows.append(row)
    return rows
