"""Step fingerprints, and finding an earlier run whose outputs a step can reuse.

A step's fingerprint is built from what decides its outputs:
- `notebook`: the source of its code cells (markdown, outputs and metadata do not count);
- `parameters`: its parameters as written, with `${step.scrap}` references left unresolved
  (the paths they resolve to differ from run to run; what they point at is in `inputs`);
- `inputs`: the content hash of every file or folder it reads (runner/inputs.py): its `inputs:`,
  the files of the data set a parameter names, upstream artifacts; the content, never a time stamp;
- `upstream`: the fingerprints of the steps it needs;
- `requirements`: the hash of `requirements.lock` next to the pipeline file;
- `modules`: the content hash of every project-local source file the notebook imports, directly
  or through those files' own imports (e.g. `labline/models/artifact.py`), found by reading the
  import statements (nothing is imported); modules outside the project folder do not count.

The components are stored in the manifest, so `explain` can say which one changed. What a file's
bytes tell (hashes, import statements) is kept in the runs folder (runner/filecache.py), so a rerun
with nothing changed reads no file again but the manifests it compares with.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import InputError
from runner.filecache import FileCache
from runner.inputs import IGNORED_PARAMETERS, check_input, input_hashes, step_inputs
from runner.notebook import code_sources, parse_source, read_json
from runner.records import MANIFEST
from runner.spec import references

if TYPE_CHECKING:
    from runner.params import Parameter
    from runner.spec import PipelineSpec

REUSABLE = ("succeeded", "cached")


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


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


def notebook_facts(notebook: Path) -> dict[str, Any]:
    """The digest of a notebook's code cells and the modules they import (what the fingerprint needs of it)."""
    sources = code_sources(read_json(notebook))
    names = [n for src in sources for n in imported_names(parse_source(src) or ast.Module([], []))]
    return {"code": _digest(sources), "imports": sorted(set(names))}


def source_imports(path: Path, root: Path) -> list[str]:
    """The modules a project source file's import statements name (relative imports made absolute)."""
    module = path.relative_to(root).with_suffix("").as_posix().replace("/", ".")
    package = module.removesuffix(".__init__") if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = parse_source(path.read_text(encoding="utf-8", errors="replace"))
    return sorted(set(imported_names(tree, package))) if tree is not None else []


def module_files(name: str, root: Path) -> list[Path]:
    """The project files importing `name` runs: each package's __init__.py on the way, then the module."""
    base, files = str(root), []
    for part in name.split("."):
        base = os.path.join(base, part)
        for candidate in (os.path.join(base, "__init__.py"), base + ".py"):
            if os.path.isfile(candidate):
                files.append(Path(candidate))
                break
        else:
            break
    return files


class Fingerprints:
    """Fingerprints the steps of one pipeline run (or status). What every step shares is found once:
    requirements.lock, each project module's hash and imports; file facts come from the runs folder's cache."""

    def __init__(self, spec: PipelineSpec, runs_root: str | Path, declared: dict[str, dict[str, Parameter]]):
        self.spec, self.root = spec, spec.root.resolve()
        self.files = FileCache.at(runs_root)
        self.defaults = {step: {n: p.default for n, p in params.items()} for step, params in declared.items()}
        lock = self.root / "requirements.lock"
        self.requirements = self.files.sha256(lock) if lock.exists() else None
        self._module_files: dict[str, list[Path]] = {}
        self._modules: dict[Path, tuple[str, list[str]]] = {}

    def check(self, steps: list[str], params: dict[str, dict[str, Any]]) -> None:
        """Refuse, before anything runs, a step whose fixed inputs cannot be located or hashed whole."""
        for name in steps:
            written = params[name]
            fixed = {k: v for k, v in {**self.defaults[name], **written}.items() if not references(written.get(k))}
            try:
                for item in step_inputs(self.spec.steps[name].inputs, written, fixed, self.root, self.files):
                    check_input(item)
            except InputError as exc:
                raise InputError(f"{self.spec.path}: step {name!r}: {exc}") from None

    def step(
        self, name: str, written: dict[str, Any], resolved: dict[str, Any], upstream: dict[str, str]
    ) -> dict[str, Any]:
        """The fingerprint of one step, its references resolved: its components and their `digest`."""
        step = self.spec.steps[name]
        notebook = self.files.fact("notebook", step.notebook, notebook_facts)
        values = {**self.defaults.get(name, {}), **resolved}
        try:
            inputs = input_hashes(step_inputs(step.inputs, written, values, self.root, self.files), self.files)
        except InputError as exc:
            raise InputError(f"{self.spec.path}: step {name!r}: {exc}") from None
        components = {
            "notebook": notebook["code"],
            "parameters": {k: v for k, v in sorted(written.items()) if k not in IGNORED_PARAMETERS},
            "inputs": inputs,
            "upstream": dict(sorted(upstream.items())),
            "requirements": self.requirements,
            "modules": self.modules(notebook["imports"]),
        }
        self.files.save()
        return {**components, "digest": _digest(components)}

    def modules(self, names: list[str]) -> dict[str, str]:
        """{path relative to the project: sha256} of the project's source files these imports reach."""
        pending, seen = list(names), set()
        while pending:
            name = pending.pop()
            if name not in self._module_files:
                self._module_files[name] = module_files(name, self.root)
            for path in self._module_files[name]:
                if path not in seen:
                    seen.add(path)
                    pending.extend(self._module(path)[1])
        return {path.relative_to(self.root).as_posix(): self._module(path)[0] for path in sorted(seen)}

    def _module(self, path: Path) -> tuple[str, list[str]]:
        if path not in self._modules:
            info = path.stat()
            sha = self.files.sha256(path, info)
            imports = self.files.fact("imports", path, lambda p: source_imports(p, self.root), info)
            self._modules[path] = (sha, imports)
        return self._modules[path]


class RunHistory:
    """What earlier runs recorded, newest manifest first, each manifest read when first needed (once):
    a rerun with nothing changed finds every step in the newest run and reads no other."""

    def __init__(self, runs_root: str | Path):
        self.root = Path(runs_root)
        self._unread = self._newest_first()
        self._read: list[dict[str, Any]] = []

    def _newest_first(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        found = []
        for entry in os.scandir(self.root):
            manifest = Path(entry.path) / MANIFEST
            try:
                found.append((manifest.stat().st_mtime_ns, entry.name, manifest))
            except OSError:  # not a run folder
                continue
        return [manifest for *_, manifest in sorted(found, reverse=True)]

    def manifests(self) -> Iterator[dict[str, Any]]:
        index = 0
        while index < len(self._read) or self._unread:
            if index == len(self._read):
                try:
                    self._read.append(json.loads(self._unread.pop(0).read_text()))
                except (OSError, ValueError):  # a damaged or half-deleted run
                    continue
            yield self._read[index]
            index += 1

    def reusable(self, step: str, digest: str) -> tuple[str, dict[str, Any]] | None:
        """(run_id, step entry) of the newest run where `step` finished with this fingerprint."""
        for manifest in self.manifests():
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
        for manifest in self.manifests():
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
    for label in sorted(set(new_i) | set(old_i)):
        if new_i.get(label) != old_i.get(label):
            reasons.append(f"input {label} {_change(label, new_i, old_i, 'read')}")
    for name in sorted(set(new["upstream"]) | set(old.get("upstream") or {})):
        if new["upstream"].get(name) != (old.get("upstream") or {}).get(name):
            reasons.append(f"upstream step {name} changed")
    if new["requirements"] != old.get("requirements"):
        reasons.append("requirements.lock changed")
    new_m, old_m = new.get("modules") or {}, old.get("modules") or {}
    for path in sorted(set(new_m) | set(old_m)):
        if new_m.get(path) != old_m.get(path):
            reasons.append(f"module {path} {_change(path, new_m, old_m, 'imported')}")
    return reasons or ["fingerprint changed"]


def _change(key: str, new: dict[str, Any], old: dict[str, Any], verb: str) -> str:
    if key in new and key in old:
        return "changed"
    return f"now {verb}" if key in new else f"no longer {verb}"
