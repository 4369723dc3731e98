"""Where things are: the project root, the runs folder, shipped data files.

Notebooks run with the project root as working directory under the runner, and with
`notebooks/` as working directory in JupyterLab; `project_file` finds a shipped file either way.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: cwd) holding pipeline.yaml; else cwd."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pipeline.yaml").exists():
            return folder
    return here


def project_file(path: str | Path) -> Path:
    """`path` as given when it exists, else relative to the project root."""
    path = Path(path)
    if path.is_absolute() or path.exists():
        return path
    candidate = project_root() / path
    return candidate if candidate.exists() else path


def runs_root() -> Path:
    """`LABLINE_RUNS` or `runs/` under the project root."""
    return Path(os.environ.get("LABLINE_RUNS") or project_root() / "runs")
