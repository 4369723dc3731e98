"""Kernel templates, from the runner's side: start one, ask it for kernels, learn when they exit.

A template (`runner/forkserver.py`) is one process per interpreter command (the kernelspec's
Python and its options) and start-up environment; it imports what kernels need and forks them.
The runner owns each template's lifetime: the template exits when the runner closes its socket
or dies (the socket's other end closes with the runner), and takes its kernels with it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from runner.forkserver import MAX_MESSAGE, TITLE_ROOM, decode, encode, kill_group

FORKSERVER = Path(__file__).with_name("forkserver.py")
LAUNCHER = "ipykernel_launcher"
# Variables an interpreter or a native library reads once, at start or at load: a template started
# with other values than a kernel's would give it other behaviour, so they pick the template.
STARTUP_ENV = ("PYTHON", "LD_", "OMP_", "MKL_", "OPENBLAS_", "KMP_", "CUDA_")
FORK_TIMEOUT = 120.0  # the kernel's own imports, done in the template (as long as a cold kernel's start)


class ForkRefused(Exception):
    """The template could not give a kernel (unsafe to fork, or gone); the message says why."""


def launcher_prefix(argv: list[str]) -> tuple[str, ...] | None:
    """The interpreter and its options of `PYTHON [OPTIONS] -m ipykernel_launcher ...`, else None."""
    if "-m" not in argv:
        return None
    module = argv.index("-m")
    options = argv[1:module]
    if module == 0 or argv[module + 1 : module + 2] != [LAUNCHER]:
        return None
    if any(not o.startswith("-") or o.startswith("-c") for o in options):
        return None
    return tuple(argv[:module])


def startup_env(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in env.items() if k.startswith(STARTUP_ENV)))


@dataclass
class ForkTicket:
    """A kernel's place in its template's queue: a spare (started ahead for a later step) waits behind
    the kernels steps wait for, until a step takes it (`hurry`)."""

    spare: bool = False
    template: Template | None = None
    request_id: int | None = None

    def hurry(self) -> None:
        if not self.spare:
            return
        self.spare = False
        if self.template is not None:
            self.template.hurry(self.request_id)


@dataclass
class Forked:
    """A kernel process forked by a template: its pid, and its exit code once it exited."""

    pid: int
    exited: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def returncode(self) -> int | None:
        """From the template's reaping, or read off the unreaped kernel before that: a template busy
        importing reaps late, and a step's end should not wait for it."""
        return self.exited.result() if self.exited.done() else zombie_exit_code(self.pid)

    async def wait(self, poll_interval: float = 0.05) -> int:
        while (code := self.returncode) is None:
            await asyncio.wait([self.exited], timeout=poll_interval)
        return code


class Template:
    """One template process and the kernels it forked."""

    def __init__(self, prefix: tuple[str, ...], env: dict[str, str], log_path: Path):
        self.loop = asyncio.get_running_loop()
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(10)
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*prefix, str(FORKSERVER), str(theirs.fileno()), " " * TITLE_ROOM],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        theirs.close()
        self.log_path = log_path
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future] = {}
        self.children: dict[int, Forked] = {}
        self.asked: set[str] = set()
        self.imported: dict[str, float] = {}  # module -> seconds the template spent importing it
        self.lost = False
        self.loop.add_reader(self.sock.fileno(), self._on_message)

    @property
    def alive(self) -> bool:
        return not self.lost and self.process.poll() is None

    def has_imported(self, modules) -> bool:
        return all(m in self.imported or m.partition(".")[0] in sys.stdlib_module_names for m in modules)

    def preload(self, modules) -> None:
        new = [m for m in dict.fromkeys(modules) if m not in self.asked]
        if new and self.alive:
            self.asked.update(new)
            self._send({"op": "preload", "modules": new})

    def hurry(self, request_id: int | None) -> None:
        """Move a spare's fork request, still waiting, ahead of the other spares."""
        if request_id in self.waiting and self.alive:
            try:
                self._send({"op": "hurry", "id": request_id})
            except ForkRefused:
                pass  # the fork's own answer says what happened

    async def fork(
        self, argv: list[str], cwd: str, env: dict[str, str], fds: list[int], modules=(), ticket=None
    ) -> Forked:
        """A new kernel running `argv` in `cwd` with `env`, writing to `fds` (stdout, stderr), forked once
        the template has imported `modules` (what its notebook imports), in the order of `ticket`."""
        ticket = ticket or ForkTicket()
        number = ticket.request_id = next(self.ids)
        ticket.template = self
        reply = self.waiting[number] = self.loop.create_future()
        request = {"op": "fork", "id": number, "argv": argv, "cwd": cwd, "env": env, "modules": list(modules)}
        request["spare"] = ticket.spare
        self._send(request, fds)
        try:
            answer = await asyncio.wait_for(reply, FORK_TIMEOUT)
        except TimeoutError:
            raise ForkRefused(f"the template did not answer within {FORK_TIMEOUT:g} s") from None
        finally:
            self.waiting.pop(number, None)
        if not isinstance(answer, Forked):
            raise ForkRefused(answer)
        return answer

    def _send(self, message: dict, fds: list[int] = ()) -> None:
        if self.lost:
            raise ForkRefused(self._why_lost())
        try:
            socket.send_fds(self.sock, [encode(message)], list(fds))
        except OSError:
            self._lose()
            raise ForkRefused(self._why_lost()) from None

    def _on_message(self) -> None:
        try:
            data = self.sock.recv(MAX_MESSAGE)
        except (BlockingIOError, TimeoutError):
            return
        except OSError:
            data = b""
        if not data:
            self._lose()
            return
        message = decode(data)
        op = message["op"]
        if op == "forked":  # known before any later message can say it exited
            forked = self.children[message["pid"]] = Forked(message["pid"])
            self._answer(message["id"], forked)
        elif op == "refused":
            self._answer(message["id"], message["reason"])
        elif op == "exited" and message["pid"] in self.children:
            self._exited(message["pid"], message["status"])
        elif op == "imported":
            self.imported[message["module"]] = message["seconds"]

    def _answer(self, number: int, answer: Forked | str) -> None:
        reply = self.waiting.get(number)
        if reply is not None and not reply.done():
            reply.set_result(answer)

    def _exited(self, pid: int, status: int) -> None:
        forked = self.children.pop(pid, None)
        if forked is not None and not forked.exited.done():
            forked.exited.set_result(status)

    def _lose(self) -> None:
        """The template is gone: refuse what waits, and watch its kernels die (PDEATHSIG) without it."""
        if self.lost:
            return
        self.lost = True
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        for number in list(self.waiting):
            self._answer(number, self._why_lost())
        if self.children:
            self.loop.create_task(self._watch_orphans())

    async def _watch_orphans(self) -> None:
        while self.children:
            for pid in [p for p in self.children if not _running(p)]:
                self._exited(pid, -signal.SIGKILL)
            await asyncio.sleep(0.1)

    def _why_lost(self) -> str:
        try:
            tail = self.log_path.read_text(errors="replace")[-500:].strip()
        except OSError:
            tail = ""
        return f"the kernel template exited (code {self.process.poll()})" + (f": {tail}" if tail else "")

    async def stop(self) -> None:
        """Kill the template and its kernels: it holds nothing worth a polite ending, and a template
        in the middle of an import would only notice a closed socket once that import is done."""
        self.kill_kernels()
        self._lose()
        kill_group(self.process.pid)
        for _ in range(50):
            if self.process.poll() is not None:
                return
            await asyncio.sleep(0.02)
        self.kill_now()

    def kill_kernels(self) -> None:
        for pid in self.children:
            kill_group(pid)

    def kill_now(self) -> None:
        """Synchronous, from any thread: SIGKILL the template and its kernels (theirs die with it too)."""
        self.kill_kernels()
        kill_group(self.process.pid)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


class Lane(StrEnum):
    """Which template of a kernel command forks a kernel. Kernels steps wait for come from `NOW`, which
    imports only what they import; spares for later steps come from `AHEAD`, which meanwhile imports
    the later steps' modules: the two import at once, on two cores, instead of one after the other."""

    NOW = "now"
    AHEAD = "ahead"


class Templates:
    """The templates of one kernel pool, by interpreter command, start-up environment and lane."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.templates: dict[tuple, Template] = {}
        self.numbers = itertools.count(1)

    def get(self, prefix: tuple[str, ...], env: dict[str, str], preload=(), lane: Lane = Lane.NOW) -> Template:
        """The live template of `lane` for this command and environment, started now if there is none."""
        key = (prefix, startup_env(env), lane)
        template = self.templates.get(key)
        if template is None or not template.alive:
            log_path = self.folder / f"template{next(self.numbers)}-{lane}.log"
            template = self.templates[key] = Template(prefix, env, log_path)
        template.preload(preload)
        return template

    def for_fork(self, prefix: tuple[str, ...], env: dict[str, str], needs, lane: Lane, preload=()) -> Template:
        """The template to fork a kernel that imports `needs` from: one that has imported them all (its
        lane's own first), else its lane's own, which imports them first (only `AHEAD` takes `preload`)."""
        base = (prefix, startup_env(env))
        live = [t for key, t in self.templates.items() if key[:2] == base and t.alive]
        live.sort(key=lambda t: self.templates.get((*base, lane)) is not t)
        ready = [t for t in live if t.has_imported(needs)]
        if ready:
            return ready[0]
        return self.get(prefix, env, preload if lane is Lane.AHEAD else (), lane)

    def all(self) -> list[Template]:
        return list(self.templates.values())

    async def stop(self) -> None:
        templates, self.templates = self.all(), {}
        for template in templates:
            await template.stop()

    def kill_now(self) -> None:
        for template in self.all():
            template.kill_now()


def zombie_exit_code(pid: int) -> int | None:
    """The exit code of `pid` when it has exited and is not reaped yet (a zombie), else None: the
    status waitpid will give, from the exit_code field (52) of /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return os.waitstatus_to_exitcode(int(fields[49])) if fields[0] == "Z" else None
    except (OSError, IndexError, ValueError):
        return None


def _running(pid: int) -> bool:
    """Whether `pid` is a process that has not exited (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False
