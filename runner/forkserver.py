"""The template process behind warm kernels: import once, fork a kernel per request.

A template runs in the kernel's own interpreter (the kernelspec's Python and its options), with
this file as its script, so it uses the standard library only and never imports `runner`. It
imports ipykernel's modules first, then the modules it is asked to preload, one at a time. A fork
request names the modules its notebook imports: those come first (a kernel a step waits for ahead
of spares started for later steps), and the kernel is forked as soon as they are imported (a
notebook that does not import torch does not wait for it), in between two imports of the rest
(which a kernel forked early imports itself if it needs them).
A forked child becomes an ordinary ipykernel: its own session, the step's cwd and environment,
the connection file jupyter_client wrote, and `sys.argv`/`sys.path`/`__main__` as
`python -m ipykernel_launcher -f FILE` has them; it dies with the template (PDEATHSIG).

Fork-safety, checked before each fork (`fork_unsafe`): one Python thread, no zmq Context, CUDA
not initialised. The template itself runs nothing but imports, so no OpenMP pool exists to copy.

The runner side (`runner/templates.py`) talks to a template over a Unix seqpacket socket whose
descriptor is the script's one argument: one JSON object per message (`encode`/`decode`), a fork
request carrying the kernel's stdout and stderr descriptors.
"""

from __future__ import annotations

import builtins
import ctypes
import faulthandler
import importlib
import io
import json
import os
import selectors
import signal
import socket
import sys
import time
import types

# Modules every kernel needs before its first message: what IPKernelApp imports to start.
KERNEL_MODULES = ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.comm")
MAX_MESSAGE = 1 << 20
PR_SET_PDEATHSIG = 1
TITLE_ROOM = 1024  # bytes of blank argument a template is started with, for its kernels' command lines


def encode(message: dict) -> bytes:
    return json.dumps(message).encode()


def decode(data: bytes) -> dict:
    return json.loads(data.decode())


def fork_unsafe() -> str | None:
    """Why forking this process now would hand the kernel a broken copy (None when it is safe)."""
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        names = ", ".join(t.name for t in threading.enumerate())
        return f"the template runs Python threads besides the main one ({names})"
    zmq = sys.modules.get("zmq")
    if zmq is not None and getattr(getattr(zmq, "Context", None), "_instance", None) is not None:
        return "the template holds a zmq Context"
    cuda = getattr(sys.modules.get("torch"), "cuda", None)
    if cuda is not None and getattr(cuda, "is_initialized", lambda: False)():
        return "CUDA is initialised in the template"
    return None


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent exits (and exit now if it already has)."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


class Template:
    """The serving loop: preload requests queue imports, fork requests fork, children are reaped."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.queue: list[str] = list(KERNEL_MODULES)
        self.tried: set[str] = set()  # imported, or failed to: never tried twice
        self.forks: list[tuple[dict, list[int]]] = []  # fork requests waiting for their modules
        self.children: set[int] = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector = selectors.DefaultSelector()
        self.selector.register(sock, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)

    def serve(self) -> tuple[dict, list[int]]:
        """Serve until the runner goes away (then exit); returns only in a forked child."""
        while True:
            for key, _ in self.selector.select(0 if self.queue or self.forks else None):
                if key.fileobj is self.sock:
                    self.receive()
                else:
                    os.read(self.wake_r, 4096)
            self.reap()
            child = self.fork_ready()
            if child is not None:
                return child
            name = None if self.pending() else self.next_import()
            if name is not None:
                self.preload(name)

    def pending(self) -> bool:
        return bool(self.selector.select(0))

    def receive(self) -> None:
        data, fds, _, _ = socket.recv_fds(self.sock, MAX_MESSAGE, 4)
        if not data:  # the runner closed its end or died: take every kernel down with us
            self.stop_children()
            sys.exit(0)
        message = decode(data)
        if message["op"] == "hurry":
            return self.hurry(message["id"])
        if message["op"] == "preload":
            self.queue.extend(m for m in message["modules"] if not self.done(m) and m not in self.queue)
        else:
            self.enqueue(message, fds)

    def done(self, name: str) -> bool:
        """Whether `name` was tried; one that came in with another module is reported as imported."""
        if name in sys.modules and name not in self.tried:
            self.tried.add(name)
            self.send({"op": "imported", "module": name, "seconds": 0.0, "error": None})
        return name in self.tried

    def enqueue(self, request: dict, fds: list[int]) -> None:
        """A kernel a step waits for goes ahead of the spares started for later steps."""
        position = len(self.forks)
        if not request.get("spare"):
            position = next((i for i, (r, _) in enumerate(self.forks) if r.get("spare")), position)
        self.forks.insert(position, (request, fds))

    def hurry(self, request_id: int) -> None:
        """A spare a step now waits for: move it ahead of the other spares."""
        for i, (request, fds) in enumerate(self.forks):
            if request["id"] == request_id and request.get("spare"):
                del self.forks[i]
                self.enqueue({**request, "spare": False}, fds)
                return

    def missing(self, request: dict) -> list[str]:
        """What the kernel of a fork request imports and this template has not tried to import yet."""
        needs = (*KERNEL_MODULES, *request["modules"])
        return [m for m in needs if not self.done(m)]

    def next_import(self) -> str | None:
        """The waiting kernels' modules first (in order), then what the runner asked for."""
        for request, _ in self.forks:
            for name in self.missing(request):
                return name
        while self.queue:
            name = self.queue.pop(0)
            if not self.done(name):
                return name
        return None

    def fork_ready(self) -> tuple[dict, list[int]] | None:
        """Fork, in order, the requests whose modules are all imported; returns in the child only."""
        while self.forks and not self.missing(self.forks[0][0]):
            request, fds = self.forks.pop(0)
            child = self.fork(request, fds)
            if child is not None:
                return child
        return None

    def fork(self, request: dict, fds: list[int]) -> tuple[dict, list[int]] | None:
        reason = fork_unsafe()
        if reason is None:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                self.close()
                return request, fds
            self.children.add(pid)
            self.send({"op": "forked", "id": request["id"], "pid": pid})
        else:
            self.send({"op": "refused", "id": request["id"], "reason": reason})
        for fd in fds:
            os.close(fd)
        return None

    def preload(self, name: str) -> None:
        self.tried.add(name)
        started = time.perf_counter()
        error = None
        try:
            importlib.import_module(name)
        except BaseException as exc:  # the kernel's own import reports it where it belongs
            error = f"{type(exc).__name__}: {exc}"
        seconds = round(time.perf_counter() - started, 3)
        self.send({"op": "imported", "module": name, "seconds": seconds, "error": error})

    def reap(self) -> None:
        for pid in list(self.children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                self.children.discard(pid)
                self.send({"op": "exited", "pid": pid, "status": os.waitstatus_to_exitcode(status)})

    def stop_children(self) -> None:
        for pid in self.children:
            kill_group(pid)
        for pid in self.children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass

    def send(self, message: dict) -> None:
        try:
            self.sock.send(encode(message))
        except OSError:
            pass  # the runner is gone; the next receive sees it

    def close(self) -> None:
        """In the child: drop everything of the template's (socket, wake-up pipe, handlers, other requests)."""
        for _, fds in self.forks:
            for fd in fds:
                os.close(fd)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        self.sock.close()
        os.close(self.wake_r)
        os.close(self.wake_w)


def kill_group(pid: int) -> None:
    """SIGKILL a kernel's process group (it started its own session), or the process alone."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
            return
        except OSError:
            continue


def become_kernel(request: dict, fds: list[int]) -> None:
    """Turn this forked child into `python [options] -m ipykernel_launcher ARGS` run in `cwd` with `env`."""
    os.setsid()  # the runner stops a kernel with killpg(pid)
    die_with_parent()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _redirect(fds)
    _report_crashes()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    argv = request["argv"]
    module = argv.index("-m")
    sys.orig_argv = list(argv)
    _retitle(argv)
    sys.argv = ["-m", *argv[module + 2 :]]
    sys.path.insert(0, os.getcwd())
    importlib.invalidate_caches()
    _reseed()
    main = types.ModuleType("__main__")
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    import runpy

    runpy._run_module_as_main(argv[module + 1], alter_argv=True)


def _retitle(argv: list[str]) -> None:
    """Make /proc/PID/cmdline (ps, psutil) show the kernel's command instead of the template's: write
    it over the template's own arguments, which end in TITLE_ROOM blanks, the way setproctitle(3) does."""
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start and arg_end (fields 48 and 49)
    except (OSError, IndexError, ValueError):
        return
    room = end - start - 1
    title = " ".join(argv).encode(errors="replace")[:room]
    # A title, its NUL, and a non-NUL last byte: Linux then reads the arguments as one C string.
    ctypes.memmove(start, title + b"\0" + b" " * (room - len(title)), room + 1)


def _redirect(fds: list[int]) -> None:
    """stdin from /dev/null, stdout/stderr to the descriptors sent; Python's streams rebuilt as at start."""
    null = os.open(os.devnull, os.O_RDONLY)
    for target, fd in zip((0, 1, 2), (null, *fds)):
        os.dup2(fd, target)
        os.close(fd)
    for name, fd in (("stdin", 0), ("stdout", 1), ("stderr", 2)):
        old = getattr(sys, f"__{name}__")
        stream = _std_stream(fd, old)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _report_crashes() -> None:
    """Have a crash (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL) write the Python traceback of the cell to
    the kernel's log: on a duplicate of stderr, since ipykernel later points fd 2 at a pipe that a
    dying kernel can no longer forward. The runner keeps that log as the step's kernel.log."""
    global _crash_log
    _crash_log = open(os.dup(2), "w", closefd=True)  # noqa: SIM115 (open for the process's life)
    faulthandler.enable(file=_crash_log, all_threads=False)


_crash_log: io.TextIOWrapper | None = None


def _std_stream(fd: int, old: io.TextIOWrapper) -> io.TextIOWrapper:
    """A text stream on `fd` buffered the way the interpreter's start-up makes one."""
    mode = "rb" if fd == 0 else "wb"
    unbuffered = fd != 0 and isinstance(getattr(old, "buffer", None), io.FileIO)  # -u, PYTHONUNBUFFERED
    raw = open(fd, mode, buffering=0 if unbuffered else -1, closefd=False)
    interactive = os.isatty(fd)
    return io.TextIOWrapper(
        raw,
        encoding=old.encoding,
        errors=old.errors,
        line_buffering=fd != 0 and (interactive or fd == 2),
        write_through=bool(unbuffered),
    )


def _reseed() -> None:
    """Fresh seeds where a cold kernel has fresh ones (Python's `random` reseeds itself at fork)."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()  # the global RandomState: seeded from the OS's entropy, as at import
    generator = getattr(sys.modules.get("torch"), "default_generator", None)
    if generator is not None:
        generator.seed()  # torch's CPU generator: a non-deterministic seed, as at import


def main() -> None:
    del sys.path[0]  # this script's folder: no kernel has it on its path
    sock = socket.socket(fileno=int(sys.argv[1]))
    os.set_inheritable(sock.fileno(), False)
    die_with_parent()
    request, fds = Template(sock).serve()
    become_kernel(request, fds)


if __name__ == "__main__":
    main()
