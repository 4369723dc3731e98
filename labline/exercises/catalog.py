"""Where exercises live: one solution per exercise in `solutions/`, its template in `exercises/`.

An exercise is named by its file: `NN_name` (two digits, an underscore, lower-case words).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from labline.paths import project_root

NAME = re.compile(r"^\d{2}_[a-z0-9_]+$")


class ExerciseError(ValueError):
    """An exercise that cannot be found, or a name that does not follow `NN_name`."""


@dataclass(frozen=True)
class Exercise:
    name: str
    solution: Path
    template: Path


def default_dirs(root: Path | None = None) -> tuple[Path, Path]:
    root = root or project_root()
    return root / "solutions", root / "exercises"


def discover(solutions_dir: Path | None = None, exercises_dir: Path | None = None) -> list[Exercise]:
    """Every `NN_name.ipynb` in the solutions folder, in order, with where its template goes."""
    default_solutions, default_exercises = default_dirs()
    solutions_dir = Path(solutions_dir or default_solutions)
    exercises_dir = Path(exercises_dir or default_exercises)
    if not solutions_dir.is_dir():
        raise ExerciseError(
            f"solutions folder {solutions_dir} does not exist: building, checking and grading need the "
            "instructor's checkout (a student's release has no solutions; run a notebook's # Check: cells instead)"
        )
    found = []
    for path in sorted(solutions_dir.glob("*.ipynb")):
        if not NAME.match(path.stem):
            raise ExerciseError(f"{path.name}: a solution is named NN_name.ipynb (e.g. 01_torch_inference.ipynb)")
        found.append(Exercise(path.stem, path, exercises_dir / path.name))
    return found


def templates(exercises_dir: Path | None = None) -> dict[str, Path]:
    """Every template in the exercises folder by name: what a student has (a release holds no solutions)."""
    exercises_dir = Path(exercises_dir or default_dirs()[1])
    return {path.stem: path for path in sorted(exercises_dir.glob("*.ipynb")) if NAME.match(path.stem)}


def find_template(name: str, exercises_dir: Path | None = None) -> Path:
    """The template named `name`, or by a prefix only it has (`03`, `03_data`)."""
    found = templates(exercises_dir)
    if name in found:
        return found[name]
    matches = [path for stem, path in found.items() if stem.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    raise ExerciseError(f"unknown exercise {name!r}; known: {', '.join(found) or 'none'}")


def title(notebook: Path) -> str:
    """A notebook's title: the first Markdown heading of its first Markdown cell ("" without one)."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        lines = (source if isinstance(source, str) else "".join(source)).splitlines()
        return next((line.lstrip("#").strip() for line in lines if line.startswith("#")), "")
    return ""


def orphans(exercises: list[Exercise], exercises_dir: Path | None = None) -> list[Path]:
    """Templates with no solution left (a solution renamed or removed): students would get a dead exercise."""
    exercises_dir = Path(exercises_dir or default_dirs()[1])
    known = {e.template.name for e in exercises}
    return [p for p in sorted(exercises_dir.glob("*.ipynb")) if p.name not in known]


def select(exercises: list[Exercise], names: list[str] | None) -> list[Exercise]:
    """The exercises named (all when none are), refusing unknown names with the known ones."""
    if not names:
        return exercises
    by_name = {e.name: e for e in exercises}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ExerciseError(f"unknown exercise {', '.join(unknown)}; known: {', '.join(by_name) or 'none'}")
    return [by_name[n] for n in names]


def infer_name(student: Path, known: list[str]) -> str:
    """The exercise a student notebook answers: its stamped metadata, else its file name.

    Reads the metadata as plain JSON, so a notebook nbformat refuses can still be named.
    """
    try:
        stamped = json.loads(student.read_text(encoding="utf-8"))["metadata"]["labline"]["exercise"]
        if stamped in known:
            return stamped
    except (OSError, ValueError, KeyError, TypeError):
        pass
    stem = student.stem
    for name in sorted(known, key=len, reverse=True):
        if stem == name or stem.startswith(name):
            return name
    prefix = stem[:3]
    by_number = [n for n in known if re.match(r"^\d{2}_$", prefix) and n.startswith(prefix)]
    if len(by_number) == 1:
        return by_number[0]
    raise ExerciseError(
        f"cannot tell which exercise {student.name} answers (no labline metadata, and the file "
        f"name does not start with one of {', '.join(known)}); pass --exercise NAME"
    )
