"""What notebooks glue for other parts of labline: the names, the notebooks that glue them, one typed reader.

A notebook's scraps are a contract between the notebook and what reads its run: the registry
(a trained model, its data validation, its audit: the promotion gate's evidence) and `labline
monitor` (the monitor notebook's verdict). Each contract is a dataclass whose field names are the
glue names; fields without a default are required. `read` turns a step's scraps into that type or
raises `MissingGlue` naming the glue and the notebook that should glue it, so a notebook that
stops gluing `audit_passed` breaks loudly instead of the gate quietly finding "no audit".

A step provides a contract when its notebook is one the contract names (`NOTEBOOKS`) or it glued
one of the contract's `MARKERS`. tests/test_contracts.py checks that each named notebook glues
every required name.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Self

from runner.contracts import RunManifest, StepRecord
from runner.scraps import FRAME_KEY


class MissingGlue(LookupError):
    """A step that provides a contract did not glue a name the contract requires."""

    def __init__(self, contract: type[Glue], step: str, notebook: str | None, missing: list[str]):
        self.contract, self.step, self.notebook, self.missing = contract, step, notebook, missing
        expected = notebook or " or ".join(contract.NOTEBOOKS)
        super().__init__(
            f"step {step!r} ({expected}) glued no {', '.join(repr(m) for m in missing)}: "
            f"{contract.__name__} needs {list(contract.required())} (labline/glue.py); "
            f"add sb.glue({missing[0]!r}, ...) to {Path(expected).name}"
        )


class Glue:
    """Base of the contracts: subclasses are dataclasses whose fields are glue names."""

    NOTEBOOKS: ClassVar[tuple[str, ...]] = ()
    MARKERS: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    @classmethod
    def required(cls) -> tuple[str, ...]:
        return tuple(
            f.name
            for f in fields(cls)  # type: ignore[arg-type]
            if f.default is MISSING and f.default_factory is MISSING
        )

    @classmethod
    def provided_by(cls, step: StepRecord) -> bool:
        notebook = Path(step.notebook).name if step.notebook else ""
        return notebook in cls.NOTEBOOKS or bool(cls.MARKERS & set(step.glued))

    @classmethod
    def complete_in(cls, step: StepRecord) -> bool:
        """Whether the step glued every name this contract requires."""
        return set(cls.required()) <= set(step.glued)

    @classmethod
    def read(cls, name: str, step: StepRecord) -> Self:
        """The step's glue as this contract; MissingGlue names what it lacks."""
        scraps = step.glued
        missing = [n for n in cls.required() if n not in scraps]
        if missing:
            raise MissingGlue(cls, name, step.notebook, missing)
        return cls(**{n: scraps[n] for n in cls.names() if n in scraps})

    @classmethod
    def from_scraps(cls, scraps: dict[str, Any], step: str = "", notebook: str | None = None) -> Self:
        """`read` for scraps outside a manifest (an executed notebook read with runner.scraps)."""
        return cls.read(step, StepRecord(scraps=scraps, notebook=notebook))

    @classmethod
    def in_run(cls, manifest: RunManifest, ok_only: bool = True) -> dict[str, Self]:
        """Every step of the run that provides this contract (that succeeded or was cached, unless
        `ok_only` is False), read through it: MissingGlue when one of them glued too little."""
        return {
            name: cls.read(name, step)
            for name, step in manifest.steps.items()
            if (step.status.ok or not ok_only) and cls.provided_by(step)
        }


@dataclass(frozen=True)
class ModelGlue(Glue):
    """A trained model folder (what `labline monitor --reference RUN` watches)."""

    NOTEBOOKS: ClassVar[tuple[str, ...]] = ("train_sklearn.ipynb", "train_torch.ipynb", "train_torch_scale.ipynb")
    MARKERS: ClassVar[frozenset[str]] = frozenset({"model_dir", "artifact_sha256"})

    model_dir: str


@dataclass(frozen=True)
class TrainedModelGlue(ModelGlue):
    """What registering a trained model needs: its folder and the SHA-256 the run recorded for it."""

    artifact_sha256: str
    model_name: str | None = None
    task: str | None = None
    data_fingerprint: str | None = None


@dataclass(frozen=True)
class ValidationGlue(Glue):
    """The data validation a model's run passed or failed (the gate's `validation` rule)."""

    NOTEBOOKS: ClassVar[tuple[str, ...]] = ("explore.ipynb",)
    MARKERS: ClassVar[frozenset[str]] = frozenset({"checks_passed", "validation_report", "validation_failures"})

    checks_passed: bool
    fingerprint: str | None = None
    dataset: str | None = None


@dataclass(frozen=True)
class CleaningGlue(Glue):
    """What the data set's cleaning rules removed (labline.data.cleaning.Cleaning.to_glue), and the
    kept rows in the raw file's columns (for a built-in with rules: what a course's data tests read)."""

    NOTEBOOKS: ClassVar[tuple[str, ...]] = ("explore.ipynb",)
    MARKERS: ClassVar[frozenset[str]] = frozenset({"cleaning", "cleaned_path"})

    cleaning: list = field(hash=False)  # one RuleCount record per rule; empty for a data set without rules
    cleaned_path: str | None = None


@dataclass(frozen=True)
class SnapshotGlue(Glue):
    """The data snapshot a run trained on (the monitor's reference rows)."""

    NOTEBOOKS: ClassVar[tuple[str, ...]] = ("explore.ipynb",)
    MARKERS: ClassVar[frozenset[str]] = frozenset({"snapshot_path", "spec_path"})

    snapshot_path: str
    spec_path: str


@dataclass(frozen=True)
class AuditGlue(Glue):
    """What the audit of one model artifact found (the gate's audit, disparity and slice rules)."""

    NOTEBOOKS: ClassVar[tuple[str, ...]] = ("audit.ipynb",)
    MARKERS: ClassVar[frozenset[str]] = frozenset({"audit_passed", "audit_metrics", "audit_failures", "slice_metrics"})

    model_sha256: str  # which artifact was audited
    audit_passed: bool
    disparities: list = field(hash=False)
    slice_metrics: Any = field(hash=False)  # a glued DataFrame: feature, value, count, small, f1 | mae, ...
    slices_path: str | None = None
    model_card_path: str | None = None  # the card an accepted risk is written into

    def slice_rows(self) -> list[dict[str, Any]]:
        """The slice table as one dict per row."""
        if isinstance(self.slice_metrics, dict) and FRAME_KEY in self.slice_metrics:
            frame = self.slice_metrics[FRAME_KEY]
            return [dict(zip(frame["columns"], row)) for row in frame["data"]]
        return list(self.slice_metrics or [])


class MonitorStatus(StrEnum):
    HEALTHY = "healthy"
    ALERT = "alert"
    NOT_ENOUGH = "not enough data"


class Webhook(StrEnum):
    NOT_SENT = "not sent"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class MonitorGlue(Glue):
    """The monitor notebook's verdict, what `labline monitor` prints and exits on."""

    NOTEBOOKS: ClassVar[tuple[str, ...]] = ("monitor.ipynb",)
    MARKERS: ClassVar[frozenset[str]] = frozenset({"status", "report_path"})

    status: str
    alerts: list = field(hash=False)
    report_path: str
    drifted_features: list = field(hash=False)
    webhook: str
    webhook_error: str

    def __post_init__(self):
        MonitorStatus(self.status), Webhook(self.webhook)  # a word outside the contract fails here

    @classmethod
    def of(cls, outcome: Any) -> MonitorGlue:
        """The verdict of a `labline.monitor.run.MonitorOutcome`: what the notebook glues, computed once."""
        result, delivery = outcome.result, outcome.delivery
        if delivery is None:
            webhook = Webhook.NOT_SENT
        else:
            webhook = Webhook.DELIVERED if delivery.ok else Webhook.FAILED
        return cls(
            status=str(result.status),
            alerts=list(dict.fromkeys(a.kind for a in result.alerts)),  # each kind once; the rules are in the report
            report_path=str(Path(outcome.report_path).resolve()),
            drifted_features=[f.feature for f in result.drift.drifted],
            webhook=webhook.value,
            webhook_error="" if delivery is None else delivery.error,
        )
