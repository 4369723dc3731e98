"""The promotion gate: the rules a version must pass to take an alias, each with its reason.

Rules, in order: the run's data validation passed; the model's own audit passed; every
disparity is within bounds (when the data set has sensitive attributes); no slice is worse than
the current holder's same slice by more than a tolerance; the metric beats the current holder
by at least a margin. Every rule is evaluated and reported, so a refusal lists all its causes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from labline.glue import AuditGlue, ValidationGlue
from labline.registry.db import RegistryError
from labline.registry.model_version import ModelVersion
from runner.compare import lower_is_better

if TYPE_CHECKING:
    from labline.registry.decisions import AcceptedRisk

DEFAULT_METRIC = {"classification": "macro_f1", "regression": "test_mae"}
EPSILON = 1e-12  # float noise is not an improvement
ARTIFACT_RULE = "artifact"  # the artifact's files are the registered ones (registry/integrity.py)
CANDIDATE_RULE = "candidate"  # there is a version to promote, other than the holder


def higher_is_better(metric: str) -> bool:
    """Accuracy, F1, R² go up; MAE, RMSE, losses and timings go down (runner.compare.lower_is_better)."""
    return not lower_is_better(metric)


def default_metric(task: str | None) -> str:
    return DEFAULT_METRIC.get(task or "classification", "macro_f1")


@dataclass
class GatePolicy:
    """What the gate compares and how strictly."""

    metric: str
    margin: float = 0.0  # the metric must improve on the holder's by more than 0 and at least this
    slice_tolerance: float = 0.05  # how much worse than the holder's any (large enough) slice may be

    def __post_init__(self):
        for name, value in (("margin", self.margin), ("slice tolerance", self.slice_tolerance)):
            if not value >= 0:  # NaN too
                raise RegistryError(f"{name} must be a number >= 0, got {value}")


@dataclass
class Check:
    rule: str
    passed: bool
    reason: str


@dataclass
class Decision:
    """The outcome of one promotion request; `promoted` is what was (or, dry run, would be) done."""

    alias: str
    metric: str
    candidate: ModelVersion | None
    incumbent: ModelVersion | None
    checks: list[Check]
    dry_run: bool = False
    considered: list[tuple[ModelVersion, list[Check]]] = field(default_factory=list)
    scope: str | None = None  # the data set whose alias was decided on
    accepted: AcceptedRisk | None = None  # the gate refused and a person accepted the risk

    @property
    def passed(self) -> bool:
        """The gate's own verdict: a candidate, and every check passed."""
        return self.candidate is not None and all(c.passed for c in self.checks)

    @property
    def promoted(self) -> bool:
        return self.passed or self.accepted is not None


def _fmt(value: float) -> str:
    return f"{value:.4f}"


def _validation(candidate: ModelVersion) -> Check:
    found = candidate.checks.get("validation")
    if not found:
        return Check(
            "validation",
            False,
            f"run {candidate.run_id} recorded no data validation "
            f"(no step glued {', '.join(ValidationGlue.required())}, as {', '.join(ValidationGlue.NOTEBOOKS)} does)",
        )
    if not found["passed"]:
        return Check("validation", False, f"data validation failed in step {found['step']!r} of run {candidate.run_id}")
    return Check("validation", True, f"data validation passed in step {found['step']!r}")


def _audit(candidate: ModelVersion) -> Check:
    audit = candidate.checks.get("audit")
    if not audit:
        return Check(
            "audit",
            False,
            f"run {candidate.run_id} has no audit step for this model (no {', '.join(AuditGlue.NOTEBOOKS)} "
            f"step glued model_sha256 = {candidate.artifact_sha256[:12]}...), "
            "so it cannot pass the audit",
        )
    if not audit["passed"]:
        return Check("audit", False, f"audit step {audit['step']!r} did not pass (status {audit.get('status')})")
    return Check("audit", True, f"audit step {audit['step']!r} passed")


def _disparities(candidate: ModelVersion) -> Check:
    audit = candidate.checks.get("audit")
    if not audit:
        return Check("disparities", False, "not audited: disparities unknown")
    found, sensitive = audit.get("disparities") or [], audit.get("sensitive") or []
    if not found:
        if sensitive:
            return Check(
                "disparities",
                False,
                f"the data set has sensitive attributes {sensitive} but audit step "
                f"{audit['step']!r} recorded no disparities",
            )
        return Check("disparities", True, "the data set has no sensitive attributes")
    # Groups too small to judge (the audit marks them judged=False) are reported, not held against the model.
    judged = [d for d in found if d.get("judged", True)]
    failing = [d for d in judged if not d.get("passed")]
    if failing:
        text = "; ".join(
            f"{d.get('attribute')}={d.get('group')} vs {d.get('reference_group')}: {d.get('metric')} "
            f"{_fmt(d.get('value', float('nan')))} vs {_fmt(d.get('reference_value', float('nan')))} "
            f"(ratio {_fmt(d.get('ratio', float('nan')))})"
            for d in failing[:3]
        )
        more = f" and {len(failing) - 3} more" if len(failing) > 3 else ""
        return Check(
            "disparities", False, f"{len(failing)} of {len(judged)} judged disparities out of bounds: {text}{more}"
        )
    unjudged = len(found) - len(judged)
    note = f" ({unjudged} on groups too small to judge)" if unjudged else ""
    return Check("disparities", True, f"all {len(judged)} judged disparities within bounds{note}")


def _slice_metric(rows: list[dict]) -> str:
    return "f1" if any("f1" in r for r in rows) else "mae"


def _slices(candidate: ModelVersion, incumbent: ModelVersion | None, alias: str, tolerance: float) -> Check:
    audit = candidate.checks.get("audit")
    if not audit:
        return Check("slices", False, "not audited: slice metrics unknown")
    if incumbent is None:
        return Check("slices", True, f"no current {alias} to compare slices with")
    mine, theirs = audit.get("slices"), (incumbent.checks.get("audit") or {}).get("slices")
    if not theirs:
        return Check("slices", True, f"{alias} {incumbent.label} has no slice metrics to compare with")
    if not mine:
        return Check(
            "slices",
            False,
            f"audit step {audit['step']!r} recorded no slice metrics to compare with {alias} {incumbent.label}'s",
        )
    metric = _slice_metric(mine)
    higher = metric != "mae"
    held = {(r["feature"], r["value"]): r for r in theirs if not r.get("small") and metric in r}
    shared = [
        (r, held[(r["feature"], r["value"])])
        for r in mine
        if not r.get("small") and metric in r and (r["feature"], r["value"]) in held
    ]
    if not shared:
        return Check("slices", True, f"no slice large enough to judge in common with {alias} {incumbent.label}")
    worse = []
    for new, old in shared:
        drop = (old[metric] - new[metric]) if higher else (new[metric] - old[metric])
        if drop > tolerance + EPSILON:
            worse.append(f"{new['feature']}={new['value']}: {metric} {_fmt(new[metric])} vs {_fmt(old[metric])}")
    if worse:
        more = f" and {len(worse) - 3} more" if len(worse) > 3 else ""
        return Check(
            "slices",
            False,
            f"{len(worse)} slice(s) worse than {alias} {incumbent.label}'s by more than "
            f"{tolerance}: {'; '.join(worse[:3])}{more}",
        )
    return Check(
        "slices",
        True,
        f"{len(shared)} shared slices, none worse than {alias} {incumbent.label}'s by more than {tolerance} ({metric})",
    )


def _metric(candidate: ModelVersion, incumbent: ModelVersion | None, alias: str, policy: GatePolicy) -> Check:
    name = policy.metric
    value = candidate.metrics.get(name)
    if value is None:
        return Check("metric", False, f"{candidate.label} has no metric {name!r} (it has {sorted(candidate.metrics)})")
    if incumbent is None:
        return Check("metric", True, f"{name} {_fmt(value)}; no {alias} yet")
    if incumbent.task != candidate.task:
        return Check(
            "metric",
            False,
            f"{alias} {incumbent.label} does {incumbent.task}, {candidate.label} does {candidate.task}: not comparable",
        )
    held = incumbent.metrics.get(name)
    if held is None:
        return Check("metric", False, f"{alias} {incumbent.label} has no metric {name!r} to compare with")
    gain = (value - held) if higher_is_better(name) else (held - value)
    direction = "higher" if higher_is_better(name) else "lower"
    text = (
        f"{name} {_fmt(value)} vs {alias} {incumbent.label}'s {_fmt(held)} ({direction} is better): "
        f"improvement {gain:+.4f}, margin {policy.margin}"
    )
    return Check("metric", gain > EPSILON and gain >= policy.margin - EPSILON, text)


def evaluate(candidate: ModelVersion, incumbent: ModelVersion | None, alias: str, policy: GatePolicy) -> list[Check]:
    """Every rule for `candidate` taking `alias` from `incumbent` (None when nobody holds it)."""
    checks = []
    if incumbent is not None and incumbent.version == candidate.version:
        checks.append(Check(CANDIDATE_RULE, False, f"{candidate.label} already holds {alias!r}"))
    checks += [
        _validation(candidate),
        _audit(candidate),
        _disparities(candidate),
        _slices(candidate, incumbent, alias, policy.slice_tolerance),
        _metric(candidate, incumbent, alias, policy),
    ]
    return checks
