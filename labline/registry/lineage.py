"""From a run manifest to the model versions it holds, with lineage and the gate's evidence.

A trained model is a succeeded step that glued `model_dir` and `artifact_sha256`. Besides
lineage, registration copies what the promotion gate needs from the run (did the data
validation pass, what did the model's own audit find), so the gate still works after the run
folder is archived or moved.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from labline.registry.db import RegistryError
from labline.registry.scope import dataset_scope

FRAME_KEY = "__dataframe__"  # how runner/scraps.py stores a glued DataFrame in a manifest
SKIPPED_PARAMETERS = {"output_dir"}  # where the runner put the step's files: not a choice anyone made
SLICE_FIELDS = ("count", "accuracy", "precision", "recall", "f1", "mae", "rmse", "r2")


def trained_steps(manifest: dict[str, Any]) -> list[str]:
    """Steps of the run that succeeded and left a model artifact."""
    return [
        name
        for name, body in manifest.get("steps", {}).items()
        if body.get("status") in ("succeeded", "cached")
        and {"model_dir", "artifact_sha256"} <= set(body.get("scraps") or {})
    ]


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


def _frame_rows(value: Any) -> list[dict[str, Any]] | None:
    if isinstance(value, dict) and FRAME_KEY in value:
        frame = value[FRAME_KEY]
        return [dict(zip(frame["columns"], row)) for row in frame["data"]]
    return None


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
    """What the run's audit of this very artifact found; None when no step audited it."""
    for name, body in manifest.get("steps", {}).items():
        scraps = body.get("scraps") or {}
        if scraps.get("model_sha256") != artifact_sha256 or "audit_passed" not in scraps:
            continue
        rows = _frame_rows(scraps.get("slice_metrics")) or _csv_rows(scraps.get("slices_path"))
        return {
            "step": name,
            "status": body.get("status"),
            "passed": bool(scraps["audit_passed"]) and body.get("status") in ("succeeded", "cached"),
            "disparities": scraps.get("disparities"),
            "slices": [_clean_slice(r) for r in rows] if rows else None,
        }
    return None


def validation_evidence(manifest: dict[str, Any], step: str) -> dict[str, Any] | None:
    """The data validation upstream of `step` (a step that glued `checks_passed`)."""
    steps = manifest["steps"]
    candidates = [s for s in _upstream(manifest, step) if "checks_passed" in (steps[s].get("scraps") or {})]
    candidates = candidates or [s for s in steps if "checks_passed" in (steps[s].get("scraps") or {})]
    if not candidates:
        return None
    name = candidates[0]
    return {
        "step": name,
        "passed": bool(steps[name]["scraps"]["checks_passed"]),
        "fingerprint": steps[name]["scraps"].get("fingerprint"),
    }


def _glued(manifest: dict[str, Any], evidence: dict[str, Any] | None, name: str) -> Any:
    if not evidence:
        return None
    return (manifest["steps"][evidence["step"]].get("scraps") or {}).get(name)


def _artifact_manifest(model_dir: Path, expected_sha256: str, step: str) -> dict[str, Any]:
    from labline.models.artifact import MANIFEST, artifact_sha256

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
    if manifest.get("status") != "succeeded":
        raise RegistryError(
            f"run {manifest['run_id']} has status {manifest.get('status')!r}; only succeeded runs are registered"
        )
    git = manifest.get("git") or {}
    rows = []
    for step in trained_steps(manifest):
        body = manifest["steps"][step]
        scraps = body["scraps"]
        model_dir = Path(scraps["model_dir"])
        artifact = _artifact_manifest(model_dir, scraps["artifact_sha256"], step)
        validation = validation_evidence(manifest, step)
        audit = audit_evidence(manifest, scraps["artifact_sha256"])
        if audit is not None:
            audit["sensitive"] = list((artifact.get("spec") or {}).get("sensitive") or [])
        dataset = manifest.get("dataset") or _glued(manifest, validation, "dataset")
        rows.append(
            {
                "name": str(scraps.get("model_name") or step),
                "run_id": manifest["run_id"],
                "step": step,
                "dataset": dataset,
                # The data set the model was trained on, as its artifact declares it: where its aliases live.
                "scope": (artifact.get("spec") or {}).get("name") or dataset_scope(dataset),
                "data_fingerprint": scraps.get("data_fingerprint") or (validation or {}).get("fingerprint"),
                "git_sha": git.get("sha"),
                "git_dirty": git.get("dirty"),
                "parameters": {k: v for k, v in (body.get("parameters") or {}).items() if k not in SKIPPED_PARAMETERS},
                "metrics": _numbers(scraps),
                "artifact_path": str(model_dir.resolve()),
                "artifact_sha256": scraps["artifact_sha256"],
                "packages": manifest.get("packages") or {},
                "task": scraps.get("task") or (artifact.get("spec") or {}).get("task"),
                "created": manifest.get("finished") or manifest.get("created") or "",
                "checks": {"validation": validation, "audit": audit},
                "reused": body.get("status") == "cached",  # not a column: the model came from an earlier run
            }
        )
    return rows
