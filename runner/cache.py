"""Step fingerprints, and finding an earlier run whose outputs a step can reuse.

A step's fingerprint is built from what decides its outputs:
- `notebook`: the source of its code cells (markdown, outputs and metadata do not count);
- `parameters`: its parameters as written, with `${step.scrap}` references left unresolved
  (the paths they resolve to differ from run to run; what they point at is in `inputs`);
- `inputs`: the content hash of every file or folder a parameter names (data files, upstream
  artifacts: the content, never the path or its time stamp);
- `upstream`: the fingerprints of the steps it needs;
- `requirements`: the hash of `requirements.lock` next to the pipeline file;
- `modules`: the content hash of every project-local source file the notebook imports, directly
  or through those files' own imports (e.g. `labline/models/artifact.py`), found by reading the
  import statements (nothing is imported); modules outside the project folder do not count.

The components are stored in the manifest, so `explain` can say which one changed.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from runner.notebook import code_sources, parse_source, read_json
from runner.records import list_runs

REUSABLE = ("succeeded", "cached")
IGNORED_PARAMETERS = {"output_dir", "run_id"}
MAX_FOLDER_FILES = 5000
_hash_memo: dict[tuple[str, int, int], str] = {}
_imports_memo: dict[tuple[str, int, int], list[str]] = {}


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


def imported_names(tree: ast.AST, package: str = "") -> list[str]:
    """Every module an import statement anywhere in `tree` may load (`from a import b`: a and a.b)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: max(len(package.split(".")) - node.level + 1, 0)]
                base = ".".join([*parts, base] if base else parts)
            if base:
                names.append(base)
                names.extend(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def module_files(name: str, root: Path) -> list[Path]:
    """The project files importing `name` runs: each package's __init__.py on the way, then the module."""
    parts, files = name.split("."), []
    for depth in range(1, len(parts) + 1):
        base = root.joinpath(*parts[:depth])
        for candidate in (base / "__init__.py", base.with_suffix(".py")):
            if candidate.is_file():
                files.append(candidate)
                break
        else:
            break
    return files


def _file_imports(path: Path, root: Path) -> list[str]:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _imports_memo:
        module = path.relative_to(root).with_suffix("").as_posix().replace("/", ".")
        package = module.removesuffix(".__init__") if path.name == "__init__.py" else module.rpartition(".")[0]
        tree = parse_source(path.read_text(encoding="utf-8", errors="replace"))
        _imports_memo[key] = imported_names(tree, package) if tree is not None else []
    return _imports_memo[key]


def local_modules(notebook: str | Path, root: Path) -> dict[str, str]:
    """{path relative to `root`: sha256} of the project's source files the notebook reaches by import."""
    pending = [
        n for src in code_sources(read_json(notebook)) for n in imported_names(parse_source(src) or ast.Module([]))
    ]
    seen: dict[Path, str] = {}
    while pending:
        for path in module_files(pending.pop(), root):
            if path not in seen:
                seen[path] = file_sha256(path)
                pending.extend(_file_imports(path, root))
    return {p.relative_to(root).as_posix(): sha for p, sha in sorted(seen.items())}


def fingerprint(
    notebook: str | Path,
    declared: dict[str, Any],
    resolved: dict[str, Any],
    root: Path,
    upstream: dict[str, str],
    requirements: str | None,
) -> dict[str, Any]:
    """The fingerprint of one step: its components and their `digest`."""
    components = {
        "notebook": notebook_sha256(notebook),
        "parameters": {k: v for k, v in sorted(declared.items()) if k not in IGNORED_PARAMETERS},
        "inputs": input_hashes(resolved, root),
        "upstream": dict(sorted(upstream.items())),
        "requirements": requirements,
        "modules": local_modules(notebook, root.resolve()),
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
    new_m, old_m = new.get("modules") or {}, old.get("modules") or {}
    for path in sorted(set(new_m) | set(old_m)):
        if new_m.get(path) != old_m.get(path):
            what = (
                "changed"
                if path in new_m and path in old_m
                else ("now imported" if path in new_m else "no longer imported")
            )
            reasons.append(f"module {path} {what}")
    return reasons or ["fingerprint changed"]
