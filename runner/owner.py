"""Which process owns a run or a kernel folder, and whether that process still runs.

A SIGKILLed `labline run` cannot mark its manifest or remove its kernels' folder, so both record
their owner (`ProcessOwner`: pid, host and the process's start time) and a later reader decides
from it: on the same host, an owner whose pid is gone, or now belongs to a process started at
another time (a reused pid), is dead. On another host nothing can be known, and nothing is claimed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runner.forkserver import kill_group

OWNER_FILE = "owner.json"


def process_start(pid: int) -> str | None:
    """A token that names one process for the machine's uptime: boot id and start time in clock
    ticks (None when no such process runs; `""` where /proc cannot tell, as on macOS)."""
    if not os.path.isdir("/proc/self"):
        return _signal_probe(pid)
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    except OSError:
        return _signal_probe(pid)
    if fields[0] in ("Z", "X"):  # exited, not yet reaped
        return None
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return f"{boot}:{fields[19]}"  # field 22 of proc(5): starttime


def _signal_probe(pid: int) -> str | None:
    """Whether `pid` exists, by signal 0: None when it does not, `""` (no start time) when it does."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return ""


@dataclass(frozen=True)
class ProcessOwner:
    """The process that writes a run (or owns a kernel folder): enough to tell later if it is gone."""

    pid: int
    host: str
    started: str  # process_start(pid) when recorded

    @classmethod
    def me(cls) -> ProcessOwner:
        return cls(os.getpid(), socket.gethostname(), process_start(os.getpid()) or "")

    @classmethod
    def from_dict(cls, data: Any) -> ProcessOwner | None:
        """The owner a manifest or owner file records; None for an old or damaged record."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(int(data["pid"]), str(data["host"]), str(data.get("started", "")))
        except (KeyError, TypeError, ValueError):
            return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def gone(self) -> bool:
        """True only when certain: same host, and the pid runs no process or another one than recorded."""
        if self.host != socket.gethostname():
            return False
        now = process_start(self.pid)
        if now is None:
            return True
        return bool(self.started and now and now != self.started)


def claim_folder(folder: Path) -> None:
    """Record this process as the owner of `folder` (read by `remove_orphan_folders`)."""
    (folder / OWNER_FILE).write_text(json.dumps(ProcessOwner.me().to_dict()))


def remove_orphan_folders(pattern: str, parent: Path) -> list[Path]:
    """Remove the folders matching `pattern` under `parent` whose recorded owner is gone, after
    SIGKILLing any process still naming the folder on its command line (a cold kernel outlives
    its runner). Folders with no owner file, or owned by a live process, are left alone."""
    removed = []
    for folder in parent.glob(pattern):
        try:
            owner = ProcessOwner.from_dict(json.loads((folder / OWNER_FILE).read_text()))
        except (OSError, ValueError):
            continue
        if owner is None or not owner.gone():
            continue
        for pid in processes_naming(f"{folder}{os.sep}"):
            kill_group(pid)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def processes_naming(text: str) -> list[int]:
    """PIDs of the processes whose command line contains `text` (none known without /proc)."""
    pids = []
    if not os.path.isdir("/proc/self"):
        return pids
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids
