"""Keep one submission to itself: its own folder to write in, a memory cap, no process left behind.

A submission runs in a warm kernel the grader did not start for it alone, so the confinement is
applied from inside: the first cell the grader runs (`prelude_cell`) calls `confine`, which

- caps the kernel's data segment (`RLIMIT_DATA`: heap and private anonymous mappings, which is
  what a 20 GiB `numpy.ones` or `bytearray` asks for; unlike `RLIMIT_AS` it leaves the address
  space torch and BLAS reserve alone), so an allocation past the cap raises `MemoryError`;
- points `TMPDIR`, `tempfile`, `XDG_CACHE_HOME` and `MPLCONFIGDIR` into the submission's folder;
- marks the environment with a token, inherited by every process the student's code starts, so
  `sweep` finds and kills them afterwards even when they left the kernel's process group;
- restricts the kernel's main thread (which runs every cell) and everything it starts with Linux
  Landlock: reading stays allowed everywhere, but creating, writing, truncating, renaming or
  deleting anything is allowed only under the submission's folder (and writing to /dev/null);
  from Landlock ABI 6 on, signals to processes outside the submission are refused too.

Landlock needs Linux 5.13 or later with Landlock enabled; `write_confinement` says why it is not
available, and the grader then warns that writes are not confined. A failure of `confine` itself
ends the kernel at once (exit status `CONFINE_FAILED`) so that no student code runs unconfined.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil

TOKEN_VARIABLE = "LABLINE_SUBMISSION"
CONFINE_FAILED = 86  # the kernel's exit status when confinement failed: nothing of the student ran

# Landlock, from linux/landlock.h: syscall numbers (the same on every architecture) and rights.
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
_WRITE_FILE = 1 << 1
_REMOVE_DIR, _REMOVE_FILE = 1 << 4, 1 << 5
_MAKE_ALL = sum(1 << bit for bit in range(6, 13))  # char, dir, reg, sock, fifo, block, sym
_REFER = 1 << 13  # ABI 2: renaming or linking into another folder
_TRUNCATE = 1 << 14  # ABI 3
_SCOPE_SIGNAL = 1 << 1  # ABI 6


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


@dataclass(frozen=True)
class Confinement:
    """What one submission's kernel is held to."""

    folder: Path  # the only place it may write
    memory_bytes: int | None  # its data-segment cap; None: no cap
    token: str  # marks every process it starts
    landlock: bool  # confine writes (False where Landlock is not available: a warning was given)


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers; 0 when it offers none."""
    if platform.system() != "Linux":
        return 0
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    version = libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def write_confinement() -> str | None:
    """None when writes can be confined to a submission's folder here; else why not."""
    if platform.system() != "Linux":
        return f"Landlock is Linux-only (this is {platform.system()})"
    if landlock_abi() < 1:
        return "this Linux kernel offers no Landlock (needs 5.13+ with landlock in the lsm= list)"
    return None


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def _restrict_writes(folder: Path) -> None:
    """Landlock the calling thread and its future children: writes only under `folder` and to /dev/null."""
    abi = landlock_abi()
    handled = _WRITE_FILE | _REMOVE_DIR | _REMOVE_FILE | _MAKE_ALL
    handled |= (_REFER if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0)
    attr = _RulesetAttr(handled, 0, _SCOPE_SIGNAL if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else ctypes.sizeof(ctypes.c_uint64)
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    ruleset = _check(libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0), "landlock ruleset")
    try:
        for path, rights in ((folder, handled), (Path("/dev/null"), _WRITE_FILE | (_TRUNCATE if abi >= 3 else 0))):
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneathAttr(rights, fd)
                _check(libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0), f"rule {path}")
            finally:
                os.close(fd)
        _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        _check(libc.syscall(_RESTRICT_SELF, ruleset, 0), "landlock restrict_self")
    finally:
        os.close(ruleset)


def confine(folder: str, memory_bytes: int | None, token: str, landlock: bool) -> None:
    """Run inside the kernel, before any student code (see the module docstring)."""
    private = Path(folder)
    scratch = private / ".tmp"
    scratch.mkdir(exist_ok=True)
    os.environ.update(
        {TOKEN_VARIABLE: token, "TMPDIR": str(scratch), "XDG_CACHE_HOME": str(scratch), "MPLCONFIGDIR": str(scratch)}
    )
    tempfile.tempdir = str(scratch)
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    if landlock:
        _restrict_writes(private)


def prelude_source(confinement: Confinement) -> str:
    """The code of the grader's first cell: confine the kernel, or end it before any student code runs."""
    args = (str(confinement.folder), confinement.memory_bytes, confinement.token, confinement.landlock)
    return (
        "try:\n"
        "    from labline.exercises.isolation import confine as _confine\n"
        f"    _confine(*{args!r})\n"
        "    del _confine\n"
        "except BaseException as _exc:\n"
        "    import os as _os, sys as _sys\n"
        "    _sys.__stderr__.write(f'labline: the submission could not be confined: {_exc!r}\\n')\n"
        "    _sys.__stderr__.flush()\n"
        f"    _os._exit({CONFINE_FAILED})\n"
    )


def sweep(token: str) -> list[int]:
    """Kill every process that carries `token` in its environment (started by a submission); their pids."""
    killed = []
    for process in psutil.process_iter(["pid"]):
        try:
            if process.pid == os.getpid() or process.environ().get(TOKEN_VARIABLE) != token:
                continue
            process.send_signal(signal.SIGKILL)
            killed.append(process.pid)
        except (psutil.Error, OSError):
            continue
    return killed


def parse_size(text: str) -> int | None:
    """`4G`, `512M`, `1.5g`, `1048576` -> bytes; `0` or `none` -> None (no cap)."""
    value = text.strip().lower().removesuffix("b").removesuffix("i")
    if value in ("0", "none", "off"):
        return None
    units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    scale = units.get(value[-1:], 1)
    number = value[:-1] if value[-1:] in units else value
    try:
        size = float(number)
    except ValueError:
        raise ValueError(f"a memory size is a number with an optional K, M, G or T (e.g. 4G), got {text!r}") from None
    if size <= 0:
        raise ValueError(f"a memory size must be positive (or 0 for no cap), got {text!r}")
    return int(size * scale)
