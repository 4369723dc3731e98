"""What the runner learns from a file's bytes (its sha256, the modules it imports), kept between runs.

A no-change rerun must not read every data file and parse every project module again, so each
fact is stored in `.file-cache.json` in the runs folder beside the file's `stat`: size, mtime_ns,
ctime_ns, inode and device. When any of them differs, the fact is computed again from the bytes.

What this trusts: that a file's content does not change while all five stay the same. An edit moves
mtime and ctime; setting the mtime back afterwards (`touch -d`, `os.utime`, `cp -p` onto the file)
still moves ctime, which no program can set back; a file replaced by another has another inode.
A fact is stored only once its file has been left alone for RACY_SECONDS: two writes within one
tick of the file system's clock can leave every field equal (git's "racily clean" files), so a file
written moments ago is read again next time. A clock set backwards, or a file system that keeps no
ctime, defeats this: run with `--force` there.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.notebook import write_atomic

CACHE_NAME = ".file-cache.json"
RACY_SECONDS = 2.0
PRUNE_ABOVE = 4096  # entries; above this, facts about files that no longer exist are dropped on save
_VERSION = 1
_shared: dict[Path, FileCache] = {}
_shared_lock = threading.Lock()


def stat_key(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks (any size, constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FileCache:
    """Facts about files, each kept while the file's stat is unchanged; saved under a runs folder."""

    def __init__(self, path: Path | None):
        self.path = path  # None: remembered in this process only
        self._facts: dict[str, dict[str, list]] | None = None
        self._used: set[tuple[str, str]] = set()
        self._dirty = False
        self._lock = threading.Lock()

    @classmethod
    def at(cls, runs_root: str | Path) -> FileCache:
        """The cache of a runs folder, one object per folder in this process."""
        path = Path(runs_root).resolve() / CACHE_NAME
        with _shared_lock:
            if path not in _shared:
                _shared[path] = cls(path)
            return _shared[path]

    def _table(self, kind: str) -> dict[str, list]:
        if self._facts is None:
            self._facts = self._load()
        return self._facts.setdefault(kind, {})

    def _load(self) -> dict[str, dict[str, list]]:
        try:
            data = json.loads(self.path.read_text()) if self.path else {}
        except (OSError, ValueError):  # missing or damaged: a cache, so start empty
            return {}
        if not isinstance(data, dict) or data.get("version") != _VERSION or not isinstance(data.get("facts"), dict):
            return {}
        return {kind: table for kind, table in data["facts"].items() if isinstance(table, dict)}

    def fact(self, kind: str, path: Path, compute: Callable[[Path], Any], stat: os.stat_result | None = None) -> Any:
        """`compute(path)`, or what it gave last time if the file's stat has not changed since."""
        return self._fact(kind, str(path), [stat or path.stat()], lambda: compute(path))

    def fact_of_folders(self, kind: str, folders: list[str], compute: Callable[[], Any]) -> Any:
        """`compute()`, kept while each folder keeps its stat (a folder's changes when an entry comes or goes)."""
        stats = []
        for folder in folders:
            try:
                stats.append(os.stat(folder))
            except OSError:
                continue
        return self._fact(kind, "\n".join(folders), stats, compute)

    def _fact(self, kind: str, name: str, stats: list[os.stat_result], compute: Callable[[], Any]) -> Any:
        key = [stat_key(stat) for stat in stats]
        with self._lock:
            entry = self._table(kind).get(name)
            self._used.add((kind, name))
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == key:
            return entry[1]
        value = compute()
        changed = max((max(stat.st_mtime_ns, stat.st_ctime_ns) for stat in stats), default=0)
        if time.time_ns() - changed > RACY_SECONDS * 1e9:
            with self._lock:
                self._table(kind)[name] = [key, value]
                self._dirty = True
        return value

    def sha256(self, path: Path, stat: os.stat_result | None = None) -> str:
        return self.fact("sha256", path, sha256_of, stat)

    def save(self) -> None:
        """Write what was learned (atomically; a lost race only means reading a file again)."""
        with self._lock:
            if not self._dirty or self.path is None or not self.path.parent.is_dir():
                return
            self._prune()
            text = json.dumps({"version": _VERSION, "facts": self._facts}, separators=(",", ":"))
            self._dirty = False
        try:
            write_atomic(text, self.path)
        except OSError:
            pass  # a cache: a full disk or a read-only folder only means reading the files again

    def _prune(self) -> None:
        if sum(len(table) for table in self._facts.values()) <= PRUNE_ABOVE:
            return
        for kind, table in self._facts.items():
            for name in [n for n in table if (kind, n) not in self._used and not os.path.exists(n.split("\n")[0])]:
                del table[name]
