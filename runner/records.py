"""Run folders and their manifest.json.

    runs/<run-id>/
        manifest.json           parameters, fingerprints, timings, status and scraps per step
        <step>/<notebook>.ipynb the executed (or partly executed) notebook
        <step>/artifacts/       everything the step wrote (its output_dir)

The manifest is rewritten atomically after every change, so a crash never leaves it half-written.
Its fields and status words are the run contract of `runner.contracts`; `RunRecord` is the one
writer, and it refuses what the contract does not declare.
"""

from __future__ import annotations

import json
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.contracts import RunManifest, RunStatus, StepRecord, StepStatus
from runner.errors import UsageError
from runner.notebook import write_atomic
from runner.owner import ProcessOwner

MANIFEST = "manifest.json"


def new_run_id() -> str:
    """Sortable by time, unique across processes: 20261123-193000-ab12cd."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON written whole or not at all (a full disk leaves the previous file), with the permissions
    the process umask gives: a class sharing a runs folder reads each other's manifests."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(json.dumps(data, indent=2, default=str), path)


class RunRecord:
    """One run's folder and manifest; `update_step` and `finish` persist immediately."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = path
        self.manifest = manifest

    @classmethod
    def create(
        cls, runs_root: str | Path, pipeline: str, metadata: dict[str, Any] | None = None, run_id: str | None = None
    ) -> RunRecord:
        run_id = run_id or new_run_id()
        path = Path(runs_root).resolve() / run_id
        path.mkdir(parents=True, exist_ok=False)
        clash = sorted(set(metadata or {}) & set(RunManifest.RUNNER_FIELDS))
        if clash:
            raise ValueError(f"metadata key(s) {clash} are the runner's own manifest fields")
        manifest = RunManifest(
            run_id, pipeline, now_iso(), RunStatus.RUNNING, metadata=dict(metadata or {}), process=ProcessOwner.me()
        )
        record = cls(path, manifest.to_dict())
        record.save()
        return record

    @classmethod
    def load(cls, path: str | Path) -> RunRecord:
        path = Path(path)
        return cls(path, json.loads((path / MANIFEST).read_text()))

    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]

    def step_dir(self, step: str) -> Path:
        return self.path / step

    def save(self) -> None:
        write_json_atomic(self.path / MANIFEST, self.manifest)

    @property
    def contract(self) -> RunManifest:
        """The manifest as typed objects (a snapshot: write through `add_step`/`update_step`/`finish`)."""
        return RunManifest.from_dict(self.manifest)

    def step(self, step: str) -> StepRecord:
        return StepRecord.from_dict(self.manifest["steps"][step])

    def add_step(self, step: str, notebook: str, needs: list[str]) -> None:
        """A planned step, `pending` until the scheduler reaches it (not saved: `save` after adding all)."""
        self.manifest["steps"][step] = StepRecord(StepStatus.PENDING, notebook, list(needs)).to_dict()

    def update_step(self, step: str, **fields: Any) -> None:
        """Set fields of a step's entry (names and status words from `StepRecord`) and save."""
        self.manifest["steps"].setdefault(step, {}).update(StepRecord.check(fields))
        self.save()

    def finish(self, status: RunStatus | str) -> None:
        self.manifest["status"] = RunStatus(status).value
        self.manifest["finished"] = now_iso()
        self.save()

    def discard(self) -> None:
        """Remove a run folder that never started a step (a usage error found late)."""
        shutil.rmtree(self.path, ignore_errors=True)


def list_runs(runs_root: str | Path) -> list[dict[str, Any]]:
    """Every readable run manifest under `runs_root`, oldest first."""
    root = Path(runs_root)
    if not root.exists():
        return []
    manifests = []
    for manifest in sorted(root.glob(f"*/{MANIFEST}")):
        try:
            manifests.append(json.loads(manifest.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(manifests, key=lambda m: (m.get("created", ""), m.get("run_id", "")))


def find_run(runs_root: str | Path, run_id: str) -> RunRecord:
    """A run by id or unique prefix (or `latest`)."""
    runs = list_runs(runs_root)
    if run_id == "latest" and runs:
        return RunRecord.load(Path(runs_root) / runs[-1]["run_id"])
    matches = [m["run_id"] for m in runs if m["run_id"].startswith(run_id)]
    if len(matches) != 1:
        known = ", ".join(m["run_id"] for m in runs[-5:]) or "none yet"
        what = "no run" if not matches else f"{len(matches)} runs"
        raise UsageError(f"{what} matching {run_id!r} in {runs_root}; recent runs: {known}")
    return RunRecord.load(Path(runs_root) / matches[0])
