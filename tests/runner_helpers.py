"""Helpers for the runner's tests: a throw-away project made of the fixture notebooks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def make_project(folder: Path, steps: dict, name: str = "fixture") -> Path:
    """Copy the fixture notebooks into `folder` and write a pipeline.yaml; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    for notebook in FIXTURES.glob("*.ipynb"):
        shutil.copy(notebook, folder / notebook.name)
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"name": name, "steps": steps}, sort_keys=False))
    return path


def kernel_processes(marker: str = "runner-kernels-") -> list[int]:
    """PIDs of live kernel processes whose command line names one of the runner's kernel folders."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next((line for line in (entry / "status").read_text().splitlines() if line.startswith("State:")), "")
        except OSError:
            continue
        if marker in cmdline and "ipykernel" in cmdline and "Z (zombie)" not in state and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return pids


def files_under(folder: Path, skip: str = "runs") -> dict[str, int]:
    """Every file below `folder` (outside `skip`) with its size: to show nothing else was touched."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")
            if p.is_file() and skip not in p.relative_to(folder).parts}
