"""Where things are: the project root, the runs folder, the state files, shipped data files.

Every `LABLINE_*` environment variable is read here and nowhere else, so one module says what
each one overrides and what the default is.

Notebooks run with the project root as working directory under the runner, and with
`notebooks/` as working directory in JupyterLab; `project_file` finds a shipped file either way,
and `output_path` puts what a notebook writes under the project root either way (one `runs/`).
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


def project_file(path: str | Path, start: str | Path | None = None) -> Path:
    """`path` as given when it exists (relative to `start`, default cwd), else relative to the project root."""
    path = Path(path)
    here = Path(start) if start is not None else Path()
    if path.is_absolute() or (here / path).exists():
        return here / path
    candidate = project_root(start) / path
    return candidate if candidate.exists() else path


def output_path(path: str | Path, start: str | Path | None = None) -> Path:
    """`path` when absolute, else under the project root: a notebook's relative `output_dir` (`runs/notebook/...`)
    is the same folder whether its kernel runs in the project root (runner, shell) or in notebooks/ (JupyterLab)."""
    path = Path(path)
    return path if path.is_absolute() else project_root(start) / path


# Handed by `labline serve --workers N` to its worker processes (labline.serve.workers).
SERVE_SETTINGS_ENV = "LABLINE_SERVE_SETTINGS"


def _env(name: str) -> str | None:
    """The variable's value; unset and empty both mean "use the default"."""
    return os.environ.get(name) or None


def runs_root() -> Path:
    """`LABLINE_RUNS` or `runs/` under the project root."""
    return Path(_env("LABLINE_RUNS") or project_root() / "runs")


def data_dirs() -> list[Path]:
    """`LABLINE_DATA_DIRS` (folders separated by `os.pathsep`): where data files outside the project may
    be read from; none by default (labline.data.datasets refuses a data file outside the project)."""
    return [Path(folder) for folder in (_env("LABLINE_DATA_DIRS") or "").split(os.pathsep) if folder]


def state_dir() -> Path:
    """`.labline/` under the project root: registry, request log, alerts and retrain state by default."""
    return project_root() / ".labline"


def registry_url() -> str:
    """`LABLINE_DB` (any SQLAlchemy URL), else the SQLite file `.labline/labline.db`."""
    return _env("LABLINE_DB") or f"sqlite:///{state_dir() / 'labline.db'}"


def request_log() -> Path:
    """`LABLINE_REQUEST_LOG` or `.labline/requests.db`."""
    return Path(_env("LABLINE_REQUEST_LOG") or state_dir() / "requests.db")


def alert_log() -> Path:
    """`LABLINE_ALERTS` or `.labline/alerts.jsonl`."""
    return Path(_env("LABLINE_ALERTS") or state_dir() / "alerts.jsonl")


def retrain_state() -> Path:
    """`LABLINE_RETRAIN_STATE` or `.labline/retrain`: the retrain lock, accumulated data and decisions."""
    return Path(_env("LABLINE_RETRAIN_STATE") or state_dir() / "retrain")


def admin_token() -> str | None:
    """`LABLINE_ADMIN_TOKEN`: the bearer token of the service's admin endpoints (None: they are off)."""
    return _env("LABLINE_ADMIN_TOKEN")


def serve_settings_json() -> str | None:
    """The settings a `labline serve --workers N` parent handed its workers, as JSON."""
    return _env(SERVE_SETTINGS_ENV)
