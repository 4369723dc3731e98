"""From a run manifest to the model versions it holds, with lineage and the gate's evidence.

A trained model is a succeeded step that glued `model_dir` and `artifact_sha256` (the glue contracts
of labline/glue.py: a step that provides one but glued too little is an error, never skipped). Besides
lineage, registration copies what the promotion gate needs from the run (did the data
validation pass, what did the model's own audit find), so the gate still works after the run
folder is archived or moved.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from labline.glue import AuditGlue, MissingGlue, TrainedModelGlue, ValidationGlue
from labline.registry.db import RegistryError
from labline.registry.scope import dataset_scope
from runner.contracts import RunManifest, RunStatus, StepStatus

SKIPPED_PARAMETERS = {"output_dir"}  # where the runner put the step's files: not a choice anyone made
SLICE_FIELDS = ("count", "accuracy", "precision", "recall", "f1", "mae", "rmse", "r2")


class IncompleteGlue(RegistryError, MissingGlue):
    """A step of the run did not glue what registration or the gate needs (labline/glue.py)."""

    def __init__(self, cause: MissingGlue):
        MissingGlue.__init__(self, cause.contract, cause.step, cause.notebook, cause.missing)


def _glue(contract, manifest: RunManifest):
    """The run's steps that provide `contract`, read through it; a RegistryError naming missing glue."""
    try:
        return contract.in_run(manifest)
    except MissingGlue as exc:
        raise IncompleteGlue(exc) from exc


def _upstream(manifest: dict[str, Any], step: str) -> list[str]:
    steps, seen, frontier = manifest["steps"], [], list(manifest["steps"][step].get("needs") or [])
    while frontier:
        current = frontier.pop(0)
        if current in steps and current not in seen:
            seen.append(current)
            frontier.extend(steps[current].get("needs") or [])
    return seen


def _numbers(scraps: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in scraps.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _csv_rows(path: str) -> list[dict[str, Any]] | None:
    if not path or not Path(path).exists():
        return None
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _clean_slice(row: dict[str, Any]) -> dict[str, Any]:
    """One slice: feature, value, small, and its numeric measures (CSV text turned to numbers)."""
    out: dict[str, Any] = {"feature": str(row["feature"]), "value": str(row["value"])}
    small = row.get("small", False)
    out["small"] = small if isinstance(small, bool) else str(small).strip().lower() == "true"
    for field in SLICE_FIELDS:
        if row.get(field) not in (None, ""):
            try:
                out[field] = float(row[field])
            except (TypeError, ValueError):
                pass
    return out


def audit_evidence(manifest: dict[str, Any], artifact_sha256: str) -> dict[str, Any] | None:
    """What the run's audit of this very artifact found; None when no step audited it.

    Every audit step of the run is read through AuditGlue: one that glued too little raises
    (IncompleteGlue names the glue), rather than counting as "no audit".
    """
    typed = RunManifest.from_dict(manifest)
    for name, audit in _glue(AuditGlue, typed).items():
        if audit.model_sha256 != artifact_sha256:
            continue
        rows = audit.slice_rows() or _csv_rows(audit.slices_path or "")
        return {
            "step": name,
            "status": typed.steps[name].status.value,
            "passed": bool(audit.audit_passed),
            "disparities": audit.disparities,
            "slices": [_clean_slice(r) for r in rows] if rows else None,
            "card": audit.model_card_path,  # where an accepted risk is written (model_card.py)
        }
    return None


def validation_evidence(manifest: dict[str, Any], step: str) -> dict[str, Any] | None:
    """The data validation upstream of `step` (a step that provides ValidationGlue: checks_passed)."""
    found = _glue(ValidationGlue, RunManifest.from_dict(manifest))
    candidates = [s for s in _upstream(manifest, step) if s in found] or list(found)
    if not candidates:
        return None
    name = candidates[0]
    return {"step": name, "passed": bool(found[name].checks_passed), "fingerprint": found[name].fingerprint}


def _glued(manifest: dict[str, Any], evidence: dict[str, Any] | None, name: str) -> Any:
    if not evidence:
        return None
    return (manifest["steps"][evidence["step"]].get("scraps") or {}).get(name)


def _artifact_manifest(model_dir: Path, expected_sha256: str, step: str) -> dict[str, Any]:
    from labline.artifact_files import MANIFEST, artifact_sha256

    manifest_path = model_dir / MANIFEST
    if not manifest_path.exists():
        raise RegistryError(f"step {step!r}: artifact manifest {manifest_path} is missing")
    found = artifact_sha256(model_dir)
    if found != expected_sha256:
        raise RegistryError(
            f"step {step!r}: artifact {manifest_path} has SHA-256 {found}, but the run recorded "
            f"{expected_sha256}: it changed after training and is not registered"
        )
    return json.loads(manifest_path.read_text())


def versions_in_run(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for `model_versions`, one per trained model of a succeeded run (artifacts checked).

    A succeeded run without a trained model (`labline run --only explore`) gives no rows.
    """
    for key in ("run_id", "steps"):
        if key not in manifest:
            raise RegistryError(f"not a run manifest: no {key!r} field")
    if manifest.get("status") != RunStatus.SUCCEEDED:
        raise RegistryError(
            f"run {manifest['run_id']} has status {manifest.get('status')!r}; only succeeded runs are registered"
        )
    git = manifest.get("git") or {}
    typed = RunManifest.from_dict(manifest)
    rows = []
    for step, model in _glue(TrainedModelGlue, typed).items():
        body = typed.steps[step]
        scraps = body.glued
        model_dir = Path(model.model_dir)
        artifact = _artifact_manifest(model_dir, model.artifact_sha256, step)
        validation = validation_evidence(manifest, step)
        audit = audit_evidence(manifest, model.artifact_sha256)
        if audit is not None:
            audit["sensitive"] = list((artifact.get("spec") or {}).get("sensitive") or [])
        dataset = manifest.get("dataset") or _glued(manifest, validation, "dataset")
        rows.append(
            {
                "name": str(model.model_name or step),
                "run_id": manifest["run_id"],
                "step": step,
                "dataset": dataset,
                # The data set the model was trained on, as its artifact declares it: where its aliases live.
                "scope": (artifact.get("spec") or {}).get("name") or dataset_scope(dataset),
                "data_fingerprint": model.data_fingerprint or (validation or {}).get("fingerprint"),
                "git_sha": git.get("sha"),
                "git_dirty": git.get("dirty"),
                "parameters": {k: v for k, v in (body.parameters or {}).items() if k not in SKIPPED_PARAMETERS},
                "metrics": _numbers(scraps),
                "artifact_path": str(model_dir.resolve()),
                "artifact_sha256": model.artifact_sha256,
                "packages": manifest.get("packages") or {},
                "task": model.task or (artifact.get("spec") or {}).get("task"),
                "created": manifest.get("finished") or manifest.get("created") or "",
                "checks": {"validation": validation, "audit": audit},
                "reused": body.status == StepStatus.CACHED,  # not a column: the model came from an earlier run
            }
        )
    return rows
