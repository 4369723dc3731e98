"""What students get: the templates, the notebooks and data, the environment; no solution, no hidden check.

`release` writes a fresh folder (the templates built from the solutions, so never stale), then
scans every file it wrote for the text of any hidden check and any notebook cell tagged
`hidden-checks`; a leak fails the release and removes the folder. Grading needs the instructor's
checkout, never the release.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat

from labline.exercises.catalog import Exercise, ExerciseError
from labline.exercises.template import HIDDEN_CHECKS, cell_tags

# The environment: what `make install` and `make lab` need, and pipeline.yaml, which marks the project root.
RELEASED_FILES = (
    "README.md",
    "Makefile",
    "pyproject.toml",
    "requirements.lock",
    "environment.yml",
    "pipeline.yaml",
    "pipeline_airbnb.yaml",
    ".gitignore",  # the student's work/ and runs/ stay out of a repository they make
    "jupyter_server_config.py",  # make lab: solutions/ hidden, tracked notebooks saved clean, .venv/bin on PATH
)
RELEASED_FOLDERS = ("notebooks", "data", "labline", "runner")
_SKIPPED_NAMES = ("__pycache__", "runs", ".ipynb_checkpoints")
MIN_SECRET = 20  # shorter check lines (`for x in y:`) say nothing about a check and appear anywhere
# A telling line: a comment (the check's name), an assert, or the check's own `_helper` names; plain
# code such as `with torch.no_grad():` appears in any torch file.
_TELLING = re.compile(r"^#|\bassert\b|(?<![\w.])_[a-z]\w*")


class LeakError(ExerciseError):
    """A released file holds a hidden check."""


@dataclass(frozen=True)
class Leak:
    path: Path
    exercise: str
    what: str  # the leaked line, or the cell tagged hidden-checks

    def describe(self) -> str:
        return f"{self.path}: {self.what} (a hidden check of {self.exercise})"


def _ignored(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _SKIPPED_NAMES or n.startswith(".") or n.endswith(".pyc")}


def secret_lines(exercises: list[Exercise]) -> list[tuple[str, str]]:
    """(exercise, line) for every telling line of every hidden check: its name, its asserts, its helpers."""
    found = []
    for exercise in exercises:
        solution = nbformat.read(exercise.solution, as_version=4)
        for cell in solution.cells:
            if HIDDEN_CHECKS not in cell_tags(cell):
                continue
            for line in cell.source.splitlines():
                text = line.strip()
                if len(text) >= MIN_SECRET and _TELLING.search(text):
                    found.append((exercise.name, text))
    return found


def _texts(path: Path) -> list[str]:
    """What a file says: each cell's source for a notebook, else its text (binary files say nothing)."""
    if path.suffix == ".ipynb":
        return [cell.source for cell in nbformat.read(path, as_version=4).cells]
    try:
        return [path.read_text(encoding="utf-8")]
    except UnicodeDecodeError:
        return []


def scan(folder: Path, exercises: list[Exercise]) -> list[Leak]:
    """Every hidden check found under `folder`: a line of one, or a notebook cell tagged hidden-checks."""
    secrets = secret_lines(exercises)
    leaks = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".ipynb":
            for cell in nbformat.read(path, as_version=4).cells:
                if HIDDEN_CHECKS in cell_tags(cell):
                    leaks.append(Leak(path, "?", f"a cell tagged {HIDDEN_CHECKS} ({cell.get('id')})"))
        for text in _texts(path):
            leaks += [Leak(path, name, repr(line)) for name, line in secrets if line in text]
    return leaks


def release(root: Path, out: Path, exercises: list[Exercise]) -> list[Path]:
    """Write the student distribution of the project at `root` into `out` (new or empty); the files written."""
    if out.exists() and any(out.iterdir()):
        raise ExerciseError(f"{out} is not empty; release into a new folder (a stale file could hold anything)")
    inside = [name for name in RELEASED_FOLDERS if (root / name).resolve() in (out.resolve(), *out.resolve().parents)]
    if inside:
        raise ExerciseError(f"{out} is inside {inside[0]}/, which the release copies; pick a folder outside it")
    out.mkdir(parents=True, exist_ok=True)
    try:
        _write(root, out, exercises)
        leaks = scan(out, exercises)
    except BaseException:  # a bad solution marker, a full disk, Ctrl-C: no half-written release left
        shutil.rmtree(out, ignore_errors=True)
        raise
    if leaks:
        shutil.rmtree(out)
        shown = "\n  ".join(leak.describe() for leak in leaks[:20])
        raise LeakError(f"the release would hand out hidden checks, so {out} was removed:\n  {shown}")
    return sorted(p for p in out.rglob("*") if p.is_file())


def _write(root: Path, out: Path, exercises: list[Exercise]) -> None:
    from labline.exercises.checking import build

    for name in RELEASED_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, out / name)
    for name in RELEASED_FOLDERS:
        if (root / name).is_dir():
            shutil.copytree(root / name, out / name, ignore=_ignored)
    for exercise in exercises:
        build(exercise, out / "exercises")
