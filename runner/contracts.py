"""The run contract: what manifest.json holds, defined once and read and written through these types.

A run's manifest is JSON other programs read (labline's registry, report and monitor, a user's
script), so its words are a contract: the step statuses are a `StrEnum` (its members are the very
strings the JSON holds), a step's entry is a `StepRecord`, a step's error an `StepError`, the
whole manifest a `RunManifest`. `runner.records.RunRecord` is the only writer; it refuses a field
or a status word this module does not declare, so a typo fails where it is made, not in a reader.
"""

from __future__ import annotations

import builtins
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from runner.owner import ProcessOwner


class StepStatus(StrEnum):
    """Where a step is; the last five are endings that did not succeed."""

    PENDING = "pending"  # planned, waiting for what it needs
    RUNNING = "running"
    RETRYING = "retrying"  # an attempt failed; `retries:` allows another
    SUCCEEDED = "succeeded"
    CACHED = "cached"  # not executed: an earlier run's identical step is reused (`cached_from`)
    SKIPPED = "skipped"  # not executed: a step it needs did not succeed, or the run was interrupted
    FAILED = "failed"  # a cell raised (or the kernel was missing)
    TIMEOUT = "timeout"  # a cell or the whole notebook ran past its limit
    DEAD_KERNEL = "dead_kernel"  # the kernel process exited
    INTERRUPTED = "interrupted"  # Ctrl-C

    @property
    def ok(self) -> bool:
        """The step's outputs (scraps, artifacts) can be used: it succeeded now or in the run it reuses."""
        return self in OK_STATES

    @property
    def broke(self) -> bool:
        """The notebook ran and did not finish well."""
        return self in BROKE_STATES

    @classmethod
    def of(cls, value: Any) -> StepStatus:
        """The status a manifest's word stands for; a clear error for a word the contract lacks."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"step status {value!r} is not one of {[s.value for s in cls]}") from None


OK_STATES = frozenset({StepStatus.SUCCEEDED, StepStatus.CACHED})
BROKE_STATES = frozenset({StepStatus.FAILED, StepStatus.TIMEOUT, StepStatus.DEAD_KERNEL, StepStatus.INTERRUPTED})


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every step succeeded or was cached
    FAILED = "failed"  # some step did not succeed (see each step's status)
    INTERRUPTED = "interrupted"
    # Never written: what a reader reports for a manifest still `running` whose writing process is
    # gone (SIGKILL, out of memory, power loss); `RunManifest.seen_status` decides.
    DIED = "died"


@dataclass
class StepError:
    """Why a step stopped, as the manifest records it: papermill's fields plus where in the source.

    `ename` is the name of the exception class raised in the kernel (the class itself stays in
    the kernel's process); `raised` compares it with real classes, so callers match by type.
    """

    ename: str = "Error"
    evalue: str = ""
    cell: int | None = None  # the execution count, In [n] (None when the kernel died before answering)
    cell_index: int | None = None
    cell_id: str | None = None  # nbformat's cell id: names the cell even when it has no execution count
    line: int | None = None
    source_line: str | None = None
    traceback: str | None = None
    kernel_log: str | None = None  # the tail of the kernel's stdout/stderr (the whole is the step's kernel.log)
    kernel_exit: int | None = None  # a dead kernel's exit code (negative: killed by that signal)
    source: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> StepError | None:
        if not data:
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def where(self) -> str:
        """The cell in words: `cell 4` (In [4]), else `cell #3 (id b3dd0b75)`, else `the notebook`."""
        if self.cell is not None:
            return f"cell {self.cell}"
        if self.cell_index is not None:
            return f"cell #{self.cell_index}" + (f" (id {self.cell_id})" if self.cell_id else "")
        return "the notebook"

    def raised(self, *types: type[BaseException]) -> bool:
        """Whether the kernel raised one of `types` or a subclass of one (as loaded in this process).

        The kernel reports only the class name, so the name is looked up among the given classes,
        their subclasses and Python's built-in exceptions, and the class found is checked with
        issubclass: `raised(ValueError)` is true for a `SourceError(ValueError)` from the notebook.
        """
        for kind in types:
            if _named(kind, self.ename) is not None:
                return True
        builtin = getattr(builtins, self.ename, None)
        return isinstance(builtin, type) and issubclass(builtin, types)


def _named(kind: type, name: str) -> type | None:
    """`kind` or the subclass of it called `name`, if one is loaded."""
    if kind.__name__ == name:
        return kind
    for sub in kind.__subclasses__():
        found = _named(sub, name)
        if found is not None:
            return found
    return None


@dataclass
class StepRecord:
    """One step's entry in manifest.json. Fields a step has not reached yet are left out of the JSON."""

    status: StepStatus = StepStatus.PENDING
    notebook: str | None = None
    needs: list[str] | None = None
    parameters: dict[str, Any] | None = None
    fingerprint: dict[str, Any] | None = None
    output_notebook: str | None = None
    scraps: dict[str, Any] | None = None
    error: dict[str, Any] | None = None  # a StepError's fields (`failure` gives the typed object)
    reason: str | None = None  # why a step was skipped
    cached_from: str | None = None  # the run whose identical step a cached step reuses
    started: float | None = None
    finished: float | None = None
    seconds: float | None = None
    original_seconds: float | None = None  # a cached step: what the reused execution took
    cells_done: int | None = None
    cells_total: int | None = None
    attempts: list[dict[str, Any]] | None = None

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))

    @classmethod
    def check(cls, values: dict[str, Any]) -> dict[str, Any]:
        """`values` with the status word checked; an error naming any field the contract does not declare."""
        unknown = sorted(set(values) - cls.field_names())
        if unknown:
            raise ValueError(
                f"step field(s) {unknown} are not part of the run contract; "
                f"runner.contracts.StepRecord declares {sorted(cls.field_names())}"
            )
        if "status" in values:
            values = {**values, "status": StepStatus.of(values["status"]).value}
        return values

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        """A manifest's step entry (fields of newer manifests this version does not know are ignored)."""
        known = cls.field_names()
        body = {k: v for k, v in data.items() if k in known}
        body["status"] = StepStatus.of(data.get("status", StepStatus.PENDING))
        return cls(**body)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None} | {"status": self.status.value}

    @property
    def glued(self) -> dict[str, Any]:
        """What the step's notebook glued (for a cached step: what the reused execution glued)."""
        return self.scraps if isinstance(self.scraps, dict) else {}

    @property
    def failure(self) -> StepError | None:
        return StepError.from_dict(self.error)


@dataclass
class RunManifest:
    """manifest.json of one run. `metadata` is what the caller recorded beside the runner's own
    fields (labline: dataset, git, packages, python, platform, device, sweep, retrain)."""

    run_id: str
    pipeline: str
    created: str
    status: RunStatus = RunStatus.RUNNING
    finished: str | None = None
    steps: dict[str, StepRecord] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    process: ProcessOwner | None = None  # the `labline run` writing it (None in manifests older than this field)

    RUNNER_FIELDS = ("run_id", "pipeline", "created", "finished", "status", "process", "steps")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunManifest:
        missing = [k for k in ("run_id", "steps") if k not in data]
        if missing:
            raise ValueError(f"not a run manifest: no {missing} field(s); expected {list(cls.RUNNER_FIELDS)}")
        return cls(
            run_id=data["run_id"],
            pipeline=data.get("pipeline", ""),
            created=data.get("created", ""),
            status=RunStatus(data.get("status", RunStatus.RUNNING)),
            finished=data.get("finished"),
            steps={name: StepRecord.from_dict(body) for name, body in data["steps"].items()},
            metadata={k: v for k, v in data.items() if k not in cls.RUNNER_FIELDS},
            process=ProcessOwner.from_dict(data.get("process")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, keys in the order manifest.json has always had them."""
        head = {"run_id": self.run_id, "pipeline": self.pipeline, "created": self.created}
        head |= {"finished": self.finished, "status": self.status.value}
        head |= {"process": self.process.to_dict()} if self.process else {}
        head |= self.metadata
        return {**head, "steps": {name: step.to_dict() for name, step in self.steps.items()}}

    @property
    def seen_status(self) -> RunStatus:
        """The status to report: `died` for a run still `running` whose process is certainly gone
        (the manifest is not rewritten: another reader may know better, e.g. on the run's own host)."""
        if self.status == RunStatus.RUNNING and self.process is not None and self.process.gone():
            return RunStatus.DIED
        return self.status

    def seen_step_status(self, name: str) -> StepStatus:
        """A step's status to report: in a run that died, a step it was running is `interrupted` and
        one still waiting `skipped`, as Ctrl-C would have written them."""
        status = self.steps[name].status
        if self.seen_status != RunStatus.DIED:
            return status
        if status in (StepStatus.RUNNING, StepStatus.RETRYING):
            return StepStatus.INTERRUPTED
        return StepStatus.SKIPPED if status == StepStatus.PENDING else status

    def ok_steps(self) -> dict[str, StepRecord]:
        """The steps whose outputs can be used (succeeded or cached)."""
        return {name: step for name, step in self.steps.items() if step.status.ok}
