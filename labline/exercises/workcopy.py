"""A student's working copy: the exercise's template copied into a folder the student owns.

The committed template stays as `build` wrote it (running it in JupyterLab would write outputs and
answers into a tracked file, and `build` would overwrite them); the student works in `work/`
(git-ignored), and `labline exercises grade NAME` grades the copy there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from labline.exercises.catalog import NAME, ExerciseError
from labline.paths import project_root

WORK_DIR = "work"  # under the project root; .gitignore lists it


class WorkingCopyExists(ExerciseError):
    """A working copy is already there: starting again would throw the student's work away."""


def default_work_dir() -> Path:
    return project_root() / WORK_DIR


def working_copy(name: str, folder: Path | None = None) -> Path:
    """Where the working copy of exercise `name` lives."""
    return Path(folder or default_work_dir()) / f"{name}.ipynb"


def start(template: Path, folder: Path | None = None, force: bool = False) -> Path:
    """Copy `template` into `folder` (default `work/`); refuses to overwrite a copy unless `force`."""
    target = working_copy(template.stem, folder)
    if target.exists() and not force:
        raise WorkingCopyExists(
            f"{target} already exists (your work on {template.stem}); keep working in it, or pass --force "
            "to replace it with a fresh copy of the template"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)
    return target


def resolve_submission(given: Path, folder: Path | None = None) -> Path:
    """`given` when it exists; an exercise name (`03_data_checks`) means its working copy."""
    if given.exists() or not NAME.match(str(given)):
        return given
    copy = working_copy(str(given), folder)
    if not copy.exists():
        raise ExerciseError(
            f"no working copy {copy} of {given}; start one with `labline exercises start {given}`, "
            "or give the notebook's path"
        )
    return copy
