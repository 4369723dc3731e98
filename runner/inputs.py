"""The files a step reads, each counted in its fingerprint by content, the way DVC lists a stage's deps.

- the step's `inputs:` in pipeline.yaml: files or folders, relative to the pipeline file;
- what a parameter names through an input resolver, a function registered under the entry point
  group `runner.inputs` as `(parameter, value, cwd) -> list[Path] | None` (None: not a value it
  knows). labline's says which files a data set declaration reads (`dataset: airbnb` reads
  `data/nyc_airbnb_2019_sample.csv.gz`); when it cannot tell, it raises ValueError and the step
  is refused rather than fingerprinted without its data;
- any other parameter whose value is an existing file or folder (absolute, or relative to the
  pipeline), such as an upstream step's artifact.

Parameters a step leaves at the notebook's default count as well: the notebook reads them too.
A folder counts as every file below it, streamed in a fixed order; a folder that cannot be hashed
whole (more than MAX_FOLDER_FILES files, an unreadable file, a link loop, a FIFO or device) is
refused with the reason (InputError), never hashed in part.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import InputError
from runner.filecache import FileCache
from runner.spec import references

RESOLVER_GROUP = "runner.inputs"
MAX_FOLDER_FILES = 100_000
IGNORED_PARAMETERS = frozenset({"output_dir", "run_id"})  # the runner's own: a fresh folder per run

Resolver = Callable[[str, Any, Path], "list[Path] | None"]
_resolvers: tuple[Resolver, ...] | None = None


@dataclass(frozen=True)
class Input:
    """Files or folders a step reads, under the name the manifest and `labline status` give them."""

    label: str  # a path relative to the pipeline (or absolute), or the parameter that names per-run paths
    paths: tuple[Path, ...]


def resolvers(files: FileCache) -> tuple[Resolver, ...]:
    """The installed input resolvers (entry point group `runner.inputs`), loaded once per process.

    Listing entry points reads every installed package's metadata (tens of ms), so the list is kept
    in the file cache while the folders on sys.path keep their stat (installing or removing a
    package adds or removes an entry there).
    """
    global _resolvers
    if _resolvers is None:
        from importlib.metadata import EntryPoint

        folders = [folder for folder in sys.path if folder and os.path.isdir(folder)]
        found = files.fact_of_folders(RESOLVER_GROUP, folders, _resolver_entry_points)
        _resolvers = tuple(EntryPoint(name, value, RESOLVER_GROUP).load() for name, value in found)
    return _resolvers


def _resolver_entry_points() -> list[list[str]]:
    from importlib.metadata import entry_points

    return sorted([point.name, point.value] for point in entry_points(group=RESOLVER_GROUP))


def label_of(path: Path, root: Path) -> str:
    """How a file is named to the user: relative to the pipeline's folder when inside it."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _existing_paths(value: Any, root: Path) -> list[Path]:
    """Existing files or folders a parameter value names (absolute, or relative to the pipeline)."""
    if isinstance(value, str):
        text = value.strip()
        if not text or text in (".", "..") or "\n" in text or len(text) > 4096:
            return []
        candidate = Path(text) if os.path.isabs(text) else root / text
        try:
            return [candidate] if candidate.exists() and candidate.resolve() != root.resolve() else []
        except OSError:
            return []
    if isinstance(value, dict):
        return [p for v in value.values() for p in _existing_paths(v, root)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _existing_paths(v, root)]
    return []


def parameter_inputs(name: str, value: Any, root: Path, per_run: bool, files: FileCache) -> list[Input]:
    """What one parameter value makes the step read. `per_run`: its value came from `${step.scrap}`
    (paths that differ from run to run), so its files go under the parameter's name, not their path."""
    if name in IGNORED_PARAMETERS:
        return []
    for resolver in resolvers(files):
        try:
            files = resolver(name, value, root)
        except (ValueError, OSError) as exc:
            raise InputError(f"parameter {name}={value!r}: {exc}") from None
        if files is not None:
            if per_run:
                return [Input(name, tuple(files))] if files else []
            return [Input(label_of(path, root), (path,)) for path in files]
    paths = _existing_paths(value, root)
    return [Input(name, tuple(paths))] if paths else []


def step_inputs(
    declared_inputs: list[Path], written: dict[str, Any], values: dict[str, Any], root: Path, files: FileCache
) -> list[Input]:
    """Every file or folder a step reads: its `inputs:`, then what its parameter `values` name.

    `written` holds the parameters as the pipeline wrote them (with `${...}` references), `values`
    every parameter the notebook gets (defaults included, references resolved).
    """
    found = [Input(label_of(path, root), (path,)) for path in declared_inputs]
    for name, value in sorted(values.items()):
        found.extend(parameter_inputs(name, value, root, bool(references(written.get(name))), files))
    return found


def folder_files(folder: Path, label: str) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Every file below `folder` as (name inside it, path, stat), in a fixed order, links followed.

    Raises InputError for what cannot be hashed whole, so a folder never counts in part.
    """
    count = 0

    def walk(directory: Path, prefix: str, above: frozenset[tuple[int, int]]):
        nonlocal count
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError as exc:
            raise InputError(f"input {label}: cannot list {prefix or './'}: {exc.strerror}") from None
        for entry in entries:
            name = prefix + entry.name
            try:
                info = entry.stat()
            except OSError as exc:
                raise InputError(f"input {label}: {name} cannot be read ({exc.strerror}; a broken link?)") from None
            if stat.S_ISDIR(info.st_mode):
                if (info.st_dev, info.st_ino) in above:
                    raise InputError(f"input {label}: {name} links back to a folder above it (a loop)")
                yield from walk(Path(entry.path), name + "/", above | {(info.st_dev, info.st_ino)})
            elif stat.S_ISREG(info.st_mode):
                count += 1
                if count > MAX_FOLDER_FILES:
                    raise InputError(
                        f"input {label}: a folder of more than {MAX_FOLDER_FILES} files; every file a step reads "
                        "counts in its fingerprint, and labline refuses to count only some of them: name a "
                        "smaller folder or the files the step reads"
                    )
                yield name, Path(entry.path), info
            else:
                raise InputError(f"input {label}: {name} is not a regular file (a FIFO, socket or device)")

    top = folder.stat()
    yield from walk(folder, "", frozenset({(top.st_dev, top.st_ino)}))


def check_input(item: Input) -> None:
    """Refuse now what `input_sha256` could not hash whole (nothing is read, only listed)."""
    for path in item.paths:
        if not path.exists():
            raise InputError(f"input {item.label}: {path} does not exist")
        if path.is_dir():
            for _ in folder_files(path, item.label):
                pass


def content_sha256(path: Path, label: str, files: FileCache) -> str:
    """A file's sha256, or a folder's: of the name and sha256 of every file below it, streamed."""
    try:
        info = path.stat()
    except OSError as exc:
        raise InputError(f"input {label}: {path} cannot be read ({exc.strerror})") from None
    if stat.S_ISREG(info.st_mode):
        return files.sha256(path, info)
    if not stat.S_ISDIR(info.st_mode):
        raise InputError(f"input {label}: {path} is not a regular file (a FIFO, socket or device)")
    digest = hashlib.sha256()
    for name, item, item_info in folder_files(path, label):
        digest.update(f"{name}\0{files.sha256(item, item_info)}\n".encode())
    return digest.hexdigest()


def input_hashes(inputs: list[Input], files: FileCache) -> dict[str, str]:
    """{label: content hash} of every input (one path: its hash; several: the hash of their hashes)."""
    hashes = {}
    for item in inputs:
        parts = [content_sha256(path, item.label, files) for path in item.paths]
        hashes[item.label] = parts[0] if len(parts) == 1 else hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return hashes
