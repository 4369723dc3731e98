"""Run a whole pipeline: plan, reuse what is cached, execute the rest as their needs finish.

Independent steps run at the same time (as many as the executor has workers). A step whose
fingerprint matches an earlier succeeded run is not executed: the manifest says "cached" and
from which run, and its scraps (paths into that run) feed the steps downstream. A failed step's
downstream steps are skipped; the others carry on. Retries, notebook timeouts, dead kernels and
Ctrl-C all end up in the manifest; no kernel outlives the run.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.cache import RunHistory, explain, fingerprint, requirements_sha256
from runner.errors import UsageError
from runner.executors import StepExecutor, make_executor
from runner.plan import declared_parameters, resolve_references, step_parameters
from runner.records import RunRecord
from runner.spec import PipelineSpec

Event = Callable[[str, str, dict[str, Any]], None]  # (step, state, details)
FAILED_STATES = ("failed", "timeout", "dead_kernel", "interrupted")
_active_runs = 0
_active_lock = threading.Lock()


@dataclass
class StepTask:
    """Everything a worker needs to execute one step; picklable for Dask."""

    step: str
    notebook: str
    output_notebook: str
    parameters: dict[str, Any]
    cwd: str
    kernel_name: str | None
    cell_timeout: float | None
    timeout: float | None = None

    def __call__(self, on_cell=None):
        from runner.execute import execute_step

        Path(self.parameters["output_dir"]).mkdir(parents=True, exist_ok=True)
        return execute_step(self.notebook, self.output_notebook, self.parameters, self.cwd,
                            self.kernel_name, self.cell_timeout, self.timeout, on_cell)


def _run_task(task: StepTask, on_cell=None):
    return task(on_cell)


def select_steps(spec: PipelineSpec, only: list[str] | None) -> list[str]:
    """The steps to consider, in dependency order: all, or `only` and what they need."""
    order = spec.order()
    if not only:
        return order
    unknown = [s for s in only if s not in spec.steps]
    if unknown:
        raise UsageError(f"unknown step(s) {unknown}; steps are {list(spec.steps)}")
    wanted = set(only).union(*(spec.upstream(s) for s in only))
    return [s for s in order if s in wanted]


def forced_steps(spec: PipelineSpec, force: bool | list[str] | None) -> set[str]:
    if force is True:
        return set(spec.steps)
    unknown = [s for s in force or [] if s not in spec.steps]
    if unknown:
        raise UsageError(f"--force: unknown step(s) {unknown}; steps are {list(spec.steps)}")
    return set(force or [])


def run_pipeline(
    spec: PipelineSpec,
    runs_root: str | Path,
    overrides: list[str] | dict[str, Any] | None = None,
    workers: int | None = None,
    metadata: dict[str, Any] | None = None,
    kernel_name: str | None = None,
    cell_timeout: float | None = None,
    on_event: Event | None = None,
    run_id: str | None = None,
    only: list[str] | None = None,
    force: bool | list[str] | None = None,
    timeout: float | None = None,
    executor: str | StepExecutor = "local",
    cache: bool = True,
) -> RunRecord:
    """Execute `spec` into a new run folder under `runs_root` and return its record.

    Parameters are checked against every notebook before anything runs (ParameterError).
    `only` restricts the run to these steps and what they need; `force` (True or step names)
    executes steps even when cached; `timeout` bounds each notebook (overrides `timeout:`);
    `executor` is 'local', 'dask', 'dask://HOST:PORT' or a StepExecutor shared between runs.
    Ctrl-C stops every kernel, marks the run interrupted and re-raises KeyboardInterrupt.
    """
    global _active_runs
    declared = declared_parameters(spec)
    params = step_parameters(spec, overrides, declared)  # raises before any folder or kernel exists
    order = select_steps(spec, only)
    forced = forced_steps(spec, force)
    if timeout is not None and timeout <= 0:
        raise UsageError(f"timeout must be a positive number of seconds, got {timeout}")
    notify = on_event or (lambda *_: None)
    history = RunHistory(runs_root) if cache else None
    requirements = requirements_sha256(spec.root)
    owned = not isinstance(executor, StepExecutor)
    steps_executor = make_executor(executor, workers) if owned else executor
    record = RunRecord.create(runs_root, spec.name, metadata, run_id)
    for name in order:
        record.manifest["steps"][name] = {
            "status": "pending", "notebook": str(spec.steps[name].notebook), "needs": spec.steps[name].needs,
        }
    record.save()
    with _active_lock:
        _active_runs += 1

    scraps: dict[str, dict[str, Any]] = {}
    digests: dict[str, str] = {}
    pending = list(order)
    running: dict[Future, tuple[str, StepTask, int]] = {}
    failed: set[str] = set()
    try:
        while pending or running:
            for name in list(pending):
                step = spec.steps[name]
                if any(need in failed for need in step.needs):
                    pending.remove(name)
                    failed.add(name)
                    blocked = [n for n in step.needs if n in failed]
                    record.update_step(name, status="skipped", reason=f"upstream step(s) {blocked} did not succeed")
                    notify(name, "skipped", {"needs": blocked})
                elif all(need in scraps for need in step.needs):
                    pending.remove(name)
                    if "run_id" in declared[name]:
                        params[name]["run_id"] = record.run_id
                    task = _prepare(spec, record, name, params[name], scraps, digests, requirements,
                                    kernel_name, cell_timeout, timeout)
                    reused = None if (history is None or name in forced) else history.reusable(name, digests[name])
                    if reused:
                        source_run, body = reused
                        scraps[name] = body.get("scraps") or {}
                        entry = {k: body.get(k) for k in ("scraps", "output_notebook", "parameters")}
                        record.update_step(name, status="cached", cached_from=source_run,
                                           original_seconds=body.get("seconds", body.get("original_seconds")),
                                           seconds=0.0, **entry)
                        notify(name, "cached", {"cached_from": source_run})
                        continue
                    record.update_step(name, status="running", attempts=[], started=time.time())
                    notify(name, "running", {"parameters": task.parameters})
                    running[_submit(steps_executor, task, notify)] = (name, task, 1)
            _prestart(spec, steps_executor, pending, running, scraps, kernel_name)
            if not running:
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                name, task, attempt = running.pop(future)
                outcome = future.result()
                result = outcome.to_dict()
                attempts = record.manifest["steps"][name].get("attempts", [])
                attempts.append({"attempt": attempt, "status": outcome.status, "seconds": outcome.seconds,
                                 "output_notebook": outcome.output_notebook,
                                 "error": {k: v for k, v in (outcome.error or {}).items() if k != "traceback"} or None})
                retries = spec.steps[name].retries
                if outcome.status != "succeeded" and outcome.status != "interrupted" and attempt <= retries:
                    kept = _keep_attempt(Path(outcome.output_notebook), attempt)
                    attempts[-1]["output_notebook"] = kept
                    record.update_step(name, status="retrying", attempts=attempts)
                    notify(name, "retrying", {"attempt": attempt + 1, "error": outcome.error})
                    running[_submit(steps_executor, task, notify)] = (name, task, attempt + 1)
                    continue
                record.update_step(name, **result, attempts=attempts)
                notify(name, outcome.status, result)
                if outcome.status == "succeeded":
                    scraps[name] = outcome.scraps
                else:
                    failed.add(name)
    except BaseException:
        _stop_kernels(steps_executor)
        for future, (name, _, _) in running.items():
            future.cancel()
            record.update_step(name, status="interrupted")
            notify(name, "interrupted", {})
        for name in pending:
            record.update_step(name, status="skipped", reason="the run was interrupted")
        record.finish("interrupted")
        raise
    finally:
        with _active_lock:
            _active_runs -= 1
            last = _active_runs == 0
        if owned:
            steps_executor.close(wait=False)
        if last:
            _stop_spare_kernels()
    record.finish("failed" if failed else "succeeded")
    return record


def _prepare(spec, record, name, params, scraps, digests, requirements, kernel_name, cell_timeout, timeout) -> StepTask:
    """Resolve references, fingerprint the step and build its task."""
    step = spec.steps[name]
    step_dir = record.step_dir(name)
    resolved = resolve_references(params, scraps)
    upstream = {need: digests[need] for need in step.needs}
    fp = fingerprint(step.notebook, params, resolved, spec.root, upstream, requirements)
    digests[name] = fp["digest"]
    resolved["output_dir"] = str(step_dir / "artifacts")
    record.update_step(name, parameters=resolved, fingerprint=fp)
    return StepTask(step=name, notebook=str(step.notebook), output_notebook=str(step_dir / step.notebook.name),
                    parameters=resolved, cwd=str(spec.root), kernel_name=kernel_name,
                    cell_timeout=cell_timeout, timeout=timeout or step.timeout)


def _submit(steps_executor: StepExecutor, task: StepTask, notify: Event) -> Future:
    if steps_executor.remote:
        return steps_executor.executor.submit(_run_task, task)

    def on_cell(done: int, total: int) -> None:
        notify(task.step, "cell", {"done": done, "total": total})

    return steps_executor.executor.submit(_run_task, task, on_cell)


def _keep_attempt(notebook: Path, attempt: int) -> str:
    """Keep a failed attempt's notebook beside the next one: <name>.attempt1.ipynb."""
    kept = notebook.with_name(f"{notebook.stem}.attempt{attempt}{notebook.suffix}")
    if notebook.exists():
        os.replace(notebook, kept)
    return str(kept)


def _prestart(spec, steps_executor, pending, running, scraps, kernel_name) -> None:
    """Start kernels for the steps that can start as soon as the running ones finish."""
    if steps_executor.remote or not running:
        return
    in_flight = {name for name, _, _ in running.values()}
    upcoming = [n for n in pending if all(need in scraps or need in in_flight for need in spec.steps[n].needs)]
    if not upcoming:
        return
    from runner.execute import DEFAULT_KERNEL
    from runner.kernels import KernelLoop
    from runner.notebook import imported_modules, read_json

    counts: dict[tuple, int] = {}
    for name in upcoming[: steps_executor.workers]:
        nb = read_json(spec.steps[name].notebook)
        nb_kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name")
        key = (kernel_name or nb_kernel or DEFAULT_KERNEL, tuple(imported_modules(nb)))
        counts[key] = counts.get(key, 0) + 1
    loop = KernelLoop.get()
    for (name, modules), count in counts.items():
        loop.call(loop.pool.prestart, name, str(spec.root), modules, count)


def _stop_kernels(steps_executor: StepExecutor) -> None:
    from runner.kernels import KernelLoop

    loop = KernelLoop.running()
    if loop is not None:
        loop.pool.kill_now()


def _stop_spare_kernels() -> None:
    from runner.kernels import KernelLoop

    loop = KernelLoop.running()
    if loop is not None:
        try:
            loop.run(loop.pool.stop_all(), timeout=15)
        except Exception:
            loop.pool.kill_now()


def plan_status(spec: PipelineSpec, runs_root: str | Path, overrides=None, only=None, force=None) -> list[dict[str, Any]]:
    """What `run_pipeline` would do, step by step, without executing anything.

    Each row: step, action ('cached' | 'run' | 'run after upstream'), from_run, reasons.
    """
    declared = declared_parameters(spec)
    params = step_parameters(spec, overrides, declared)
    forced = forced_steps(spec, force)
    history = RunHistory(runs_root)
    requirements = requirements_sha256(spec.root)
    scraps: dict[str, dict[str, Any]] = {}
    digests: dict[str, str] = {}
    rows = []
    for name in select_steps(spec, only):
        step = spec.steps[name]
        waiting = [n for n in step.needs if n not in scraps]
        if waiting:
            rows.append({"step": name, "action": "run", "from_run": None,
                         "reasons": [f"upstream step {n} will run" for n in waiting]})
            continue
        resolved = resolve_references(params[name], scraps)
        fp = fingerprint(step.notebook, params[name], resolved, spec.root,
                         {n: digests[n] for n in step.needs}, requirements)
        digests[name] = fp["digest"]
        reused = history.reusable(name, fp["digest"])
        if reused and name not in forced:
            scraps[name] = reused[1].get("scraps") or {}
            rows.append({"step": name, "action": "cached", "from_run": reused[0], "reasons": ["nothing changed"]})
            continue
        latest = history.latest(name)
        reasons = ["forced"] if name in forced else explain(fp, (latest[1].get("fingerprint") if latest else None))
        rows.append({"step": name, "action": "run", "from_run": latest[0] if latest else None, "reasons": reasons})
    return rows
