"""Step fingerprints, and finding an earlier run whose outputs a step can reuse.

A step's fingerprint is built from what decides its outputs:
- `notebook`: the source of its code cells (markdown, outputs and metadata do not count);
- `parameters`: its parameters as written, with `${step.scrap}` references left unresolved
  (the paths they resolve to differ from run to run; what they point at is in `inputs`);
- `inputs`: the content hash of every file or folder a parameter names (data files, upstream
  artifacts: the content, never the path or its time stamp);
- `upstream`: the fingerprints of the steps it needs;
- `requirements`: the hash of `requirements.lock` next to the pipeline file.

The components are stored in the manifest, so `explain` can say which one changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from runner.notebook import code_sources, read_json
from runner.records import list_runs

REUSABLE = ("succeeded", "cached")
IGNORED_PARAMETERS = {"output_dir", "run_id"}
MAX_FOLDER_FILES = 5000
_hash_memo: dict[tuple[str, int, int], str] = {}


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    """Content hash, remembered per (path, size, mtime) within a process."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _hash_memo:
        sha = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
        _hash_memo[key] = sha.hexdigest()
    return _hash_memo[key]


def content_sha256(path: Path) -> str:
    """A file's hash, or a folder's: the names and hashes of every file below it."""
    if path.is_file():
        return file_sha256(path)
    entries = []
    for count, item in enumerate(sorted(p for p in path.rglob("*") if p.is_file())):
        if count >= MAX_FOLDER_FILES:
            entries.append(("...", "too many files: only the first ones count"))
            break
        entries.append((item.relative_to(path).as_posix(), file_sha256(item)))
    return _digest(entries)


def notebook_sha256(notebook: str | Path) -> str:
    return _digest(code_sources(read_json(notebook)))


def _paths_in(value: Any, root: Path) -> list[Path]:
    """Existing files or folders a parameter value names (absolute, or relative to the pipeline)."""
    if isinstance(value, str):
        text = value.strip()
        if not text or text in (".", "..") or "\n" in text or len(text) > 4096:
            return []
        candidate = Path(text) if os.path.isabs(text) else root / text
        try:
            return [candidate] if candidate.exists() and candidate != root else []
        except OSError:
            return []
    if isinstance(value, dict):
        return [p for v in value.values() for p in _paths_in(v, root)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _paths_in(v, root)]
    return []


def input_hashes(resolved: dict[str, Any], root: Path) -> dict[str, str]:
    hashes = {}
    for name, value in sorted(resolved.items()):
        if name in IGNORED_PARAMETERS:
            continue
        paths = _paths_in(value, root)
        if paths:
            hashes[name] = _digest([content_sha256(p) for p in paths])
    return hashes


def requirements_sha256(root: Path) -> str | None:
    lock = root / "requirements.lock"
    return file_sha256(lock) if lock.exists() else None


def fingerprint(notebook: str | Path, declared: dict[str, Any], resolved: dict[str, Any], root: Path,
                upstream: dict[str, str], requirements: str | None) -> dict[str, Any]:
    """The fingerprint of one step: its components and their `digest`."""
    components = {
        "notebook": notebook_sha256(notebook),
        "parameters": {k: v for k, v in sorted(declared.items()) if k not in IGNORED_PARAMETERS},
        "inputs": input_hashes(resolved, root),
        "upstream": dict(sorted(upstream.items())),
        "requirements": requirements,
    }
    return {**components, "digest": _digest(components)}


class RunHistory:
    """What earlier runs recorded, step by step, read once per run (newest first)."""

    def __init__(self, runs_root: str | Path):
        self.manifests = list(reversed(list_runs(runs_root)))
        self.root = Path(runs_root)

    def reusable(self, step: str, digest: str) -> tuple[str, dict[str, Any]] | None:
        """(run_id, step entry) of the newest run where `step` finished with this fingerprint."""
        for manifest in self.manifests:
            body = manifest.get("steps", {}).get(step)
            if not body or body.get("status") not in REUSABLE:
                continue
            if (body.get("fingerprint") or {}).get("digest") != digest:
                continue
            notebook = body.get("output_notebook")
            if notebook and Path(notebook).exists():  # a deleted run's outputs are gone: not reusable
                return body.get("cached_from") or manifest["run_id"], body
        return None

    def latest(self, step: str) -> tuple[str, dict[str, Any]] | None:
        """The newest recorded fingerprint of `step`, to explain what changed since."""
        for manifest in self.manifests:
            body = manifest.get("steps", {}).get(step)
            if body and body.get("fingerprint") and body.get("status") in REUSABLE:
                return manifest["run_id"], body
        return None


def explain(new: dict[str, Any], old: dict[str, Any] | None) -> list[str]:
    """Why `new` does not match `old`: one short reason per changed component."""
    if old is None:
        return ["never ran"]
    reasons = []
    if new["notebook"] != old.get("notebook"):
        reasons.append("notebook code changed")
    new_p, old_p = new["parameters"], old.get("parameters") or {}
    for name in sorted(set(new_p) | set(old_p)):
        if new_p.get(name, "<unset>") != old_p.get(name, "<unset>"):
            reasons.append(f"parameter {name}: {old_p.get(name, '<unset>')!r} -> {new_p.get(name, '<unset>')!r}")
    new_i, old_i = new["inputs"], old.get("inputs") or {}
    for name in sorted(set(new_i) | set(old_i)):
        if new_i.get(name) != old_i.get(name):
            reasons.append(f"input {name} changed")
    for name in sorted(set(new["upstream"]) | set(old.get("upstream") or {})):
        if new["upstream"].get(name) != (old.get("upstream") or {}).get(name):
            reasons.append(f"upstream step {name} changed")
    if new["requirements"] != old.get("requirements"):
        reasons.append("requirements.lock changed")
    return reasons or ["fingerprint changed"]
