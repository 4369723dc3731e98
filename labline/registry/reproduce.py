"""Re-run a recorded run with the same parameters and say whether every metric came out identical.

The manifest holds each step's parameters as they were executed, with upstream references
already resolved to files of the old run. So the pipeline is re-run from its spec (references
resolve to the new run's files) with the old run's other parameters as overrides. Before any
model trains, the new run's data fingerprint is compared with the recorded one: different data
cannot reproduce anything, so the run is stopped there with a message that says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labline.registry.db import RegistryError
from runner.contracts import OK_STATES, RunStatus, StepStatus
from runner.spec import RESERVED, PipelineSpec, references

# Scraps that measure the machine, not the model: they differ between two runs of the same code.
MEASUREMENTS = ("seconds", "per_second", "memory", "_mb", "_bytes", "latency", "throughput")


class DataChanged(RegistryError):
    """The data set no longer has the fingerprint the run recorded."""


@dataclass
class MetricComparison:
    step: str
    metric: str
    old: float | None
    new: float | None

    @property
    def identical(self) -> bool:
        return (
            self.old is not None
            and self.new is not None
            and (self.old == self.new or (math.isnan(self.old) and math.isnan(self.new)))
        )


@dataclass
class ArtifactComparison:
    """A trainer step's model artifact hash in the recorded run and in its reproduction."""

    step: str
    old: str | None
    new: str | None

    @property
    def identical(self) -> bool:
        return self.old is not None and self.old == self.new

    def line(self) -> str:
        if self.identical:
            return f"identical artifact: {self.step} {self.old} in both runs"
        return f"different artifact: {self.step} recorded {self.old}, reproduced {self.new}"


def compare_artifacts(old: dict[str, Any], new: dict[str, Any]) -> list[ArtifactComparison]:
    """Every artifact hash `old`'s steps glued (TrainedModelGlue), beside the same step's in `new`."""
    from labline.glue import TrainedModelGlue
    from runner.contracts import RunManifest

    def hashes(manifest: dict[str, Any]) -> dict[str, str]:
        steps = RunManifest.from_dict(manifest).steps.items()
        complete = [(n, s) for n, s in steps if s.status.ok and TrainedModelGlue.complete_in(s)]
        return {name: TrainedModelGlue.read(name, step).artifact_sha256 for name, step in complete}

    recorded, reproduced = hashes(old), hashes(new)
    return [ArtifactComparison(step, sha, reproduced.get(step)) for step, sha in recorded.items()]


@dataclass
class Reproduction:
    old_run_id: str
    new_run_id: str
    new_run_path: str
    status: str
    comparisons: list[MetricComparison] = field(default_factory=list)
    artifacts: list[ArtifactComparison] = field(default_factory=list)

    @property
    def differing(self) -> list[MetricComparison]:
        return [c for c in self.comparisons if not c.identical]

    @property
    def identical(self) -> bool:
        return self.status == RunStatus.SUCCEEDED and bool(self.comparisons) and not self.differing


def recorded_metrics(manifest: dict[str, Any]) -> dict[tuple[str, str], float]:
    """Every number a succeeded step glued (one level into dicts such as audit_metrics); timings, speeds
    and memory use excluded."""
    found: dict[tuple[str, str], float] = {}

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    for step, body in manifest.get("steps", {}).items():
        if body.get("status") not in OK_STATES:
            continue
        for name, value in (body.get("scraps") or {}).items():
            if number(value):
                found[(step, name)] = float(value)
            elif isinstance(value, dict) and value and all(number(v) for v in value.values()):
                found.update({(step, f"{name}.{k}"): float(v) for k, v in value.items()})
    return {key: value for key, value in found.items() if not any(word in key[1] for word in MEASUREMENTS)}


def reproduction_overrides(manifest: dict[str, Any], spec: PipelineSpec) -> dict[str, Any]:
    """`step.param` -> recorded value, for every parameter the pipeline does not wire from upstream."""
    overrides: dict[str, Any] = {}
    for step, body in manifest.get("steps", {}).items():
        if step not in spec.steps:
            raise RegistryError(
                f"run {manifest['run_id']} has a step {step!r} that pipeline {spec.path} no longer "
                f"has (steps: {list(spec.steps)}); it cannot be reproduced with this pipeline"
            )
        wired = spec.steps[step].parameters
        for name, value in (body.get("parameters") or {}).items():
            if name in RESERVED or references(wired.get(name)):
                continue
            overrides[f"{step}.{name}"] = value
    return overrides


def reproduce_run(
    manifest: dict[str, Any],
    spec: PipelineSpec,
    runs_root: str | Path,
    workers: int | None = None,
    metadata: dict[str, Any] | None = None,
    on_event=None,
) -> Reproduction:
    """Run `spec` again with `manifest`'s parameters into a new run; compare every recorded metric.

    Raises DataChanged (after stopping the new run before training) when the data fingerprint
    differs from the recorded one.
    """
    from runner.pipeline import run_pipeline

    if manifest.get("status") != RunStatus.SUCCEEDED:
        raise RegistryError(
            f"run {manifest.get('run_id')} has status {manifest.get('status')!r}; only a succeeded "
            "run has metrics to reproduce"
        )
    if manifest.get("pipeline") and manifest["pipeline"] != spec.name:
        raise RegistryError(
            f"run {manifest['run_id']} was made by pipeline {manifest['pipeline']!r}, not {spec.name!r} ({spec.path})"
        )
    fingerprints = {
        step: body["scraps"]["fingerprint"]
        for step, body in manifest["steps"].items()
        if "fingerprint" in (body.get("scraps") or {})
    }
    if not fingerprints:
        raise RegistryError(
            f"run {manifest['run_id']} recorded no data fingerprint (no step glued 'fingerprint'), "
            "so there is no way to tell whether its data is still the same"
        )
    overrides = reproduction_overrides(manifest, spec)
    only = list(manifest["steps"]) if set(manifest["steps"]) != set(spec.steps) else None
    notify = on_event or (lambda *_: None)
    started: dict[str, str] = {}

    def check_fingerprint(step: str, state: str, details: dict[str, Any]) -> None:
        notify(step, state, details)
        if state == StepStatus.SUCCEEDED and step in fingerprints:
            now = (details.get("scraps") or {}).get("fingerprint")
            if now != fingerprints[step]:
                raise DataChanged(
                    f"cannot reproduce run {manifest['run_id']}: the data changed. Step {step!r} recorded data "
                    f"fingerprint {fingerprints[step]}, the data now has {now}. The new run "
                    f"{started.get('run_id', '')} was stopped before training."
                )

    extra = {"dataset": manifest.get("dataset"), **(metadata or {}), "reproduces": manifest["run_id"]}
    from runner.records import new_run_id

    started["run_id"] = new_run_id()
    # cache=False: a step reused from an earlier run would "reproduce" trivially; every step executes.
    record = run_pipeline(
        spec,
        runs_root,
        overrides=overrides,
        workers=workers,
        metadata=extra,
        on_event=check_fingerprint,
        run_id=started["run_id"],
        only=only,
        cache=False,
    )
    return Reproduction(
        manifest["run_id"],
        record.run_id,
        str(record.path),
        record.manifest["status"],
        compare_metrics(manifest, record.manifest),
        compare_artifacts(manifest, record.manifest),
    )


def compare_metrics(old: dict[str, Any], new: dict[str, Any]) -> list[MetricComparison]:
    """Every metric `old` recorded, next to the same step's value in `new` (None when absent)."""
    found = recorded_metrics(new)
    return [
        MetricComparison(step, name, value, found.get((step, name)))
        for (step, name), value in recorded_metrics(old).items()
    ]
