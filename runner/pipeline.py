"""Run a whole pipeline: plan, reuse what is cached, execute the rest as their needs finish.

Independent steps run at the same time (as many as the executor has workers). A step whose
fingerprint matches an earlier succeeded run is not executed: the manifest says "cached" and
from which run, and its scraps (paths into that run) feed the steps downstream. A failed step's
downstream steps are skipped; the others carry on. Retries, notebook timeouts, dead kernels and
Ctrl-C all end up in the manifest; no kernel outlives the run.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.cache import Fingerprints, RunHistory, explain
from runner.contracts import RunStatus, StepError, StepStatus
from runner.errors import InputError, UsageError
from runner.executors import StepExecutor, make_executor
from runner.params import shortened_values
from runner.plan import declared_parameters, resolve_references, step_parameters
from runner.records import RunRecord
from runner.spec import PipelineSpec

Event = Callable[[str, str, dict[str, Any]], None]  # (step, state, details)
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
        return execute_step(
            self.notebook,
            self.output_notebook,
            self.parameters,
            self.cwd,
            self.kernel_name,
            self.cell_timeout,
            self.timeout,
            on_cell,
        )


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


@dataclass
class Plan:
    """What a run (or `plan_status`) knows before executing: checked parameters, cache, forced steps."""

    spec: PipelineSpec
    declared: dict[str, dict[str, Any]]
    params: dict[str, dict[str, Any]]
    order: list[str]
    forced: set[str]
    history: RunHistory | None
    fingerprints: Fingerprints
    scraps: dict[str, dict[str, Any]] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)

    @classmethod
    def make(cls, spec, runs_root, overrides=None, only=None, force=None, cache=True) -> Plan:
        declared = declared_parameters(spec)
        params = step_parameters(spec, overrides, declared)  # raises before any folder or kernel exists
        order = select_steps(spec, only)
        fingerprints = Fingerprints(spec, runs_root, declared)
        fingerprints.check(order, params)  # inputs that cannot be found or hashed whole: refused now too
        return cls(
            spec,
            declared,
            params,
            order,
            forced_steps(spec, force),
            RunHistory(runs_root) if cache else None,
            fingerprints,
        )

    def fingerprint(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Resolve a ready step's references and fingerprint it: (resolved parameters, fingerprint)."""
        step = self.spec.steps[name]
        resolved = resolve_references(self.params[name], self.scraps)
        upstream = {need: self.digests[need] for need in step.needs}
        fp = self.fingerprints.step(name, self.params[name], resolved, upstream)
        self.digests[name] = fp["digest"]
        return resolved, fp

    def reusable(self, name: str) -> tuple[str, dict[str, Any]] | None:
        """(run id, entry) of an earlier run this fingerprinted step can reuse, unless forced."""
        if self.history is None or name in self.forced:
            return None
        return self.history.reusable(name, self.digests[name])


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
    `kernel_name` overrides the kernel every notebook declares.
    Ctrl-C stops every kernel, marks the run interrupted and re-raises KeyboardInterrupt.
    """
    plan = Plan.make(spec, runs_root, overrides, only, force, cache)
    if timeout is not None and timeout <= 0:
        raise UsageError(f"timeout must be a positive number of seconds, got {timeout}")
    record = RunRecord.create(runs_root, spec.name, metadata, run_id)  # an unwritable runs folder: nothing started
    owned = not isinstance(executor, StepExecutor)
    steps_executor = make_executor(executor, workers) if owned else executor
    for name in plan.order:
        step = spec.steps[name]
        record.add_step(name, str(step.notebook), step.needs)
    record.save()
    scheduler = Scheduler(
        plan, record, steps_executor, on_event or (lambda *_: None), TaskOptions(kernel_name, cell_timeout, timeout)
    )
    _enter_run()
    try:
        scheduler.run()
    except BaseException:
        scheduler.interrupt()
        raise
    finally:
        _leave_run(steps_executor if owned else None)
    record.finish(RunStatus.FAILED if scheduler.failed else RunStatus.SUCCEEDED)
    return record


def _enter_run() -> None:
    global _active_runs
    with _active_lock:
        _active_runs += 1


def _leave_run(owned_executor: StepExecutor | None) -> None:
    """Close what this run owns; the last run of the process also stops the spare kernels."""
    global _active_runs
    with _active_lock:
        _active_runs -= 1
        last = _active_runs == 0
    if owned_executor is not None:
        owned_executor.close(wait=False)
    if last:
        _stop_spare_kernels()


@dataclass
class TaskOptions:
    kernel_name: str | None
    cell_timeout: float | None
    timeout: float | None


class Scheduler:
    """Starts each step once what it needs has finished; records every outcome as it arrives."""

    def __init__(self, plan: Plan, record: RunRecord, executor: StepExecutor, notify: Event, options: TaskOptions):
        self.plan, self.record, self.executor, self.notify, self.options = plan, record, executor, notify, options
        self.pending = list(plan.order)
        self.running: dict[Future, tuple[str, StepTask, int]] = {}
        self.failed: set[str] = set()

    def run(self) -> None:
        while self.pending or self.running:
            self.start_ready()
            _prestart(
                self.plan.spec, self.executor, self.pending, self.running, self.plan.scraps, self.options.kernel_name
            )
            if self.running:
                done, _ = wait(list(self.running), return_when=FIRST_COMPLETED)
                for future in done:
                    self.finish(future)

    def start_ready(self) -> None:
        """Skip, reuse or submit every pending step whose needs are settled."""
        for name in list(self.pending):
            needs = self.plan.spec.steps[name].needs
            blocked = [n for n in needs if n in self.failed]
            if blocked:
                self.pending.remove(name)
                self.failed.add(name)
                self.record.update_step(
                    name, status=StepStatus.SKIPPED, reason=f"upstream step(s) {blocked} did not succeed"
                )
                self.notify(name, StepStatus.SKIPPED, {"needs": blocked})
            elif all(need in self.plan.scraps for need in needs):
                self.pending.remove(name)
                self.start(name)

    def start(self, name: str) -> None:
        if "run_id" in self.plan.declared[name]:
            self.plan.params[name]["run_id"] = self.record.run_id
        try:
            task = self.task(name)
        except InputError as exc:  # an upstream artifact that cannot be hashed whole: refused, not guessed
            self.refuse(name, exc)
            return
        reused = self.plan.reusable(name)
        if reused:
            self.reuse(name, *reused)
            return
        self.record.update_step(name, status=StepStatus.RUNNING, attempts=[], started=time.time())
        self.notify(name, StepStatus.RUNNING, {"parameters": shortened_values(task.parameters)})
        self.running[_submit(self.executor, task, self.notify)] = (name, task, 1)

    def refuse(self, name: str, exc: InputError) -> None:
        error = StepError(ename=type(exc).__name__, evalue=str(exc)).to_dict()
        self.failed.add(name)
        self.record.update_step(name, status=StepStatus.FAILED, error=error, seconds=0.0)
        self.notify(name, StepStatus.FAILED, {"error": error})

    def task(self, name: str) -> StepTask:
        """Fingerprint the step, record its parameters and build its task."""
        step = self.plan.spec.steps[name]
        step_dir = self.record.step_dir(name)
        resolved, fp = self.plan.fingerprint(name)
        resolved["output_dir"] = str(step_dir / "artifacts")
        recorded = {**fp, "parameters": shortened_values(fp["parameters"])}  # the digest counts the whole values
        self.record.update_step(name, parameters=shortened_values(resolved), fingerprint=recorded)
        return StepTask(
            step=name,
            notebook=str(step.notebook),
            output_notebook=str(step_dir / step.notebook.name),
            parameters=resolved,
            cwd=str(self.plan.spec.root),
            kernel_name=self.options.kernel_name,
            cell_timeout=self.options.cell_timeout,
            timeout=self.options.timeout or step.timeout,
        )

    def reuse(self, name: str, source_run: str, body: dict[str, Any]) -> None:
        self.plan.scraps[name] = body.get("scraps") or {}
        entry = {k: body.get(k) for k in ("scraps", "output_notebook", "parameters")}
        self.record.update_step(
            name,
            status=StepStatus.CACHED,
            cached_from=source_run,
            seconds=0.0,
            original_seconds=body.get("seconds", body.get("original_seconds")),
            **entry,
        )
        self.notify(name, StepStatus.CACHED, {"cached_from": source_run})

    def finish(self, future: Future) -> None:
        """Record an attempt's outcome; retry it when the step allows another attempt."""
        name, task, attempt = self.running.pop(future)
        outcome = future.result()
        attempts = self.record.manifest["steps"][name].get("attempts", [])
        error = {k: v for k, v in (outcome.error or {}).items() if k != "traceback"} or None
        attempts.append(
            {
                "attempt": attempt,
                "status": outcome.status,
                "seconds": outcome.seconds,
                "output_notebook": outcome.output_notebook,
                "error": error,
            }
        )
        if (
            outcome.status not in (StepStatus.SUCCEEDED, StepStatus.INTERRUPTED)
            and attempt <= self.plan.spec.steps[name].retries
        ):
            attempts[-1]["output_notebook"] = _keep_attempt(Path(outcome.output_notebook), attempt)
            self.record.update_step(name, status=StepStatus.RETRYING, attempts=attempts)
            self.notify(name, StepStatus.RETRYING, {"attempt": attempt + 1, "error": outcome.error})
            self.running[_submit(self.executor, task, self.notify)] = (name, task, attempt + 1)
            return
        result = outcome.to_dict()
        self.record.update_step(name, **result, attempts=attempts)
        self.notify(name, outcome.status, result)
        if outcome.status == StepStatus.SUCCEEDED:
            self.plan.scraps[name] = outcome.scraps
        else:
            self.failed.add(name)

    def interrupt(self) -> None:
        """Ctrl-C (or any crash of the scheduler): stop every kernel, mark what had not finished."""
        _stop_kernels()
        for future, (name, _, _) in self.running.items():
            future.cancel()
            self.record.update_step(name, status=StepStatus.INTERRUPTED)
            self.notify(name, StepStatus.INTERRUPTED, {})
        for name in self.pending:
            self.record.update_step(name, status=StepStatus.SKIPPED, reason="the run was interrupted")
        self.record.finish(RunStatus.INTERRUPTED)


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
    """Have the templates of spare kernels import what the steps still to run import (the running
    steps' kernels come from templates of their own), and start kernels for the steps that can start
    as soon as the running ones finish."""
    if steps_executor.remote or not (running or pending):
        return
    from runner.kernels import KernelLoop, declared_kernel
    from runner.notebook import imported_modules, read_json

    in_flight = [name for name, _, _ in running.values()]
    planned: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name in in_flight + list(pending):
        nb = read_json(spec.steps[name].notebook)
        planned[name] = (kernel_name or declared_kernel(nb), tuple(imported_modules(nb)))
    loop = KernelLoop.get()
    wanted: dict[str, list[str]] = {}
    for name in pending:
        kernel, modules = planned[name]
        wanted.setdefault(kernel, []).extend(modules)
    for kernel, modules in wanted.items():
        loop.call(loop.pool.preload, kernel, tuple(dict.fromkeys(modules)))
    if not running:
        return
    upcoming = [n for n in pending if all(need in scraps or need in in_flight for need in spec.steps[n].needs)]
    counts: dict[tuple, int] = {}
    for name in upcoming[: steps_executor.workers]:
        counts[planned[name]] = counts.get(planned[name], 0) + 1
    for (name, modules), count in counts.items():
        loop.call(loop.pool.prestart, name, str(spec.root), modules, count)


def _stop_kernels() -> None:
    from runner.kernels import KernelLoop

    loop = KernelLoop.running()
    if loop is not None:
        loop.pool.kill_now()


def _stop_spare_kernels() -> None:
    if "runner.kernels" not in sys.modules:  # no kernel started in this process (every step cached)
        return
    from runner.kernels import KernelLoop

    loop = KernelLoop.running()
    if loop is not None:
        try:
            loop.run(loop.pool.stop_all(), timeout=15)
        except Exception:
            loop.pool.kill_now()


def plan_status(
    spec: PipelineSpec, runs_root: str | Path, overrides=None, only=None, force=None
) -> list[dict[str, Any]]:
    """What `run_pipeline` would do, step by step, without executing anything.

    Each row: step, action ('cached' | 'run'), from_run, reasons.
    """
    plan = Plan.make(spec, runs_root, overrides, only, force)
    return [_status_row(plan, name) for name in plan.order]


def _status_row(plan: Plan, name: str) -> dict[str, Any]:
    waiting = [n for n in plan.spec.steps[name].needs if n not in plan.scraps]
    if waiting:
        return {
            "step": name,
            "action": "run",
            "from_run": None,
            "reasons": [f"upstream step {n} will run" for n in waiting],
        }
    _, fp = plan.fingerprint(name)
    reused = plan.reusable(name)
    if reused:
        plan.scraps[name] = reused[1].get("scraps") or {}
        return {"step": name, "action": StepStatus.CACHED.value, "from_run": reused[0], "reasons": ["nothing changed"]}
    latest = plan.history.latest(name)
    reasons = ["forced"] if name in plan.forced else explain(fp, (latest[1].get("fingerprint") if latest else None))
    return {"step": name, "action": "run", "from_run": latest[0] if latest else None, "reasons": reasons}
