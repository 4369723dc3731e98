"""Facts about the environment a run happened in: git revision, package versions, device."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("labline", "papermill", "scrapbook", "pandas", "numpy", "scikit-learn", "torch", "skops", "scipy")


def git_state(cwd: str | Path | None = None) -> dict:
    """{"sha": ..., "dirty": bool}, or nulls outside a git checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return {"sha": None, "dirty": None}
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"sha": sha.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"sha": None, "dirty": None}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_summary() -> str:
    """What `device: auto` will likely pick, without importing torch (seconds) on the CLI's path.

    The training notebooks glue the device they really used.
    """
    if Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/version").exists():
        return "cuda"
    return f"cpu ({platform.machine()}, {os.cpu_count()} cores)"


def run_metadata(root: str | Path) -> dict:
    return {
        "git": git_state(root),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device_summary(),
    }
