"""Run a whole pipeline: plan, execute steps as their needs finish, record everything.

Independent steps run at the same time when the executor has more than one worker. A failed
step's downstream steps are marked skipped; the others carry on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import RunnerError
from runner.execute import StepOutcome, execute_step
from runner.executors import make_executor
from runner.plan import declared_parameters, resolve_references, step_parameters
from runner.records import RunRecord
from runner.spec import PipelineSpec

Event = Callable[[str, str, dict[str, Any]], None]  # (step, state, details)


@dataclass
class StepTask:
    """Everything a worker needs to execute one step; picklable for process pools."""

    step: str
    notebook: str
    output_notebook: str
    parameters: dict[str, Any]
    cwd: str
    kernel_name: str | None
    cell_timeout: float | None

    def __call__(self) -> StepOutcome:
        Path(self.parameters["output_dir"]).mkdir(parents=True, exist_ok=True)
        return execute_step(self.notebook, self.output_notebook, self.parameters, self.cwd,
                            self.kernel_name, self.cell_timeout)


def _run_task(task: StepTask) -> StepOutcome:
    return task()


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
) -> RunRecord:
    """Execute `spec` into a new run folder under `runs_root` and return its record.

    Parameters are checked against every notebook before anything runs (ParameterError).
    `only` restricts the run to these steps and what they need.
    """
    declared = declared_parameters(spec)
    params = step_parameters(spec, overrides, declared)  # raises before any folder or kernel exists
    order = spec.order()
    if only:
        unknown = [s for s in only if s not in spec.steps]
        if unknown:
            raise RunnerError(f"unknown step(s) {unknown}; steps are {list(spec.steps)}")
        wanted = set(only).union(*(spec.upstream(s) for s in only))
        order = [s for s in order if s in wanted]
    notify = on_event or (lambda *_: None)
    record = RunRecord.create(runs_root, spec.name, metadata, run_id)
    for name in order:
        record.manifest["steps"][name] = {
            "status": "pending", "notebook": str(spec.steps[name].notebook), "needs": spec.steps[name].needs,
        }
    record.save()

    scraps: dict[str, dict[str, Any]] = {}
    pending = list(order)
    running: dict[Future, str] = {}
    failed: set[str] = set()
    executor = make_executor("local", workers)
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
                    continue
                if all(need in scraps for need in step.needs):
                    pending.remove(name)
                    if "run_id" in declared[name]:
                        params[name]["run_id"] = record.run_id
                    running[_submit(executor, spec, record, name, params[name], scraps, kernel_name,
                                    cell_timeout, notify)] = name
            if not running:
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                outcome: StepOutcome = future.result()
                record.update_step(name, **outcome.to_dict())
                notify(name, outcome.status, outcome.to_dict())
                if outcome.status == "succeeded":
                    scraps[name] = outcome.scraps
                else:
                    failed.add(name)
    except BaseException:
        for future in running:
            future.cancel()
        for name in running.values():
            record.update_step(name, status="interrupted")
        record.finish("interrupted")
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    record.finish("failed" if failed else "succeeded")
    return record


def _submit(executor, spec, record, name, params, scraps, kernel_name, cell_timeout, notify) -> Future:
    step = spec.steps[name]
    step_dir = record.step_dir(name)
    resolved = resolve_references(params, scraps)
    resolved["output_dir"] = str(step_dir / "artifacts")
    task = StepTask(
        step=name,
        notebook=str(step.notebook),
        output_notebook=str(step_dir / step.notebook.name),
        parameters=resolved,
        cwd=str(spec.root),
        kernel_name=kernel_name,
        cell_timeout=cell_timeout,
    )
    record.update_step(name, status="running", parameters=resolved, started=time.time())
    notify(name, "running", {"parameters": resolved})
    return executor.submit(_run_task, task)
