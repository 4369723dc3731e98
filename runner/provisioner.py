"""`labline-warm`: jupyter_client's local provisioner, with the kernel forked from a warm template.

Registered under jupyter_client's `jupyter_client.kernel_provisioners` entry point; the runner's
kernel pool selects it for the kernels it starts (no installed kernelspec names it, so JupyterLab
and `jupyter` commands keep cold kernels). Everything jupyter_client prepares stays as it is (the
connection file, the command, the environment, the cwd, the output files); only the launch differs:
the template forks a process that runs that command. Where that cannot be done (`cold_reason`),
the kernel starts cold, as LocalProvisioner starts it, and a warning says why, once per reason.

The forked kernel is the template's child, not ours: its exit code comes from the template, and
signals go straight to its process group (it starts its own session, like a cold kernel).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import warnings
from typing import Any

from jupyter_client.provisioning import LocalProvisioner
from traitlets import Any as AnyTrait
from traitlets import List

from runner.templates import Forked, ForkRefused, ForkTicket, Lane, Templates, launcher_prefix

NAME = "labline-warm"
SWITCH = "LABLINE_WARM_KERNELS"  # "0" starts every kernel cold
_warned: set[str] = set()
_warned_lock = threading.Lock()


class ColdKernelWarning(RuntimeWarning):
    """Kernels start cold (no template); the message says why."""


def cold_reason(argv: list[str], language: str) -> str | None:
    """Why a kernel with this command cannot be forked from a template (None when it can)."""
    if os.environ.get(SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return f"{SWITCH}={os.environ[SWITCH]}"
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return f"fork is not available or not safe on {sys.platform}"
    if not (language or "").lower().startswith("python") or launcher_prefix(argv) is None:
        return f"the kernel's command is not Python's ipykernel launcher ({' '.join(argv[:4])} ...)"
    return None


def warn_cold(reason: str) -> None:
    """Say once per process and reason that kernels start cold."""
    with _warned_lock:
        if reason in _warned:
            return
        _warned.add(reason)
    warnings.warn(f"labline: kernels start cold: {reason}", ColdKernelWarning, stacklevel=2)


def selection(
    templates: Templates, preload: list[str], needs: list[str], ticket: ForkTicket | None = None
) -> dict[str, Any]:
    """The kernelspec metadata entry that makes jupyter_client use this provisioner: the pool's
    templates, what they should import (`preload`), what this kernel's notebook imports (`needs`),
    and its place in the template's queue (`ticket`)."""
    config = {"templates": templates, "preload": list(preload), "needs": list(needs), "ticket": ticket}
    return {"provisioner_name": NAME, "config": config}


def start_template(templates: Templates, kernel_name: str, preload: list[str]) -> None:
    """Start the template `kernel_name`'s spare kernels will fork from before the first of them, and
    queue its imports (nothing when they will start cold: their launch says why)."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(kernel_name)
    argv = list(spec.argv)
    if argv and argv[0] in ("python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])):
        argv[0] = sys.executable  # as jupyter_client's format_kernel_cmd does
    if cold_reason(argv, spec.language) is None:
        env = {**os.environ, **spec.env, "JPY_PARENT_PID": str(os.getpid())}
        env.pop("PYTHONEXECUTABLE", None)
        templates.get(launcher_prefix(argv), env, preload, Lane.AHEAD)


class WarmProvisioner(LocalProvisioner):
    """LocalProvisioner whose launch forks the kernel from a template when it can."""

    templates = AnyTrait(None, allow_none=True, help="the pool's runner.templates.Templates")
    preload = List(help="modules the template should import (after ipykernel's own)")
    needs = List(help="modules this kernel's notebook imports: imported by the template before the fork")
    ticket = AnyTrait(None, allow_none=True, help="the kernel's runner.templates.ForkTicket (None: not a spare)")
    forked: Forked | None = None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        reason = cold_reason(cmd, self.kernel_spec.language)
        if reason is None and self.templates is None:
            reason = "the provisioner was selected without the kernel pool's templates"
        if reason is None:
            try:
                return await self._fork(cmd, **kwargs)
            except (ForkRefused, OSError) as exc:
                reason = str(exc)
        warn_cold(reason)
        return await super().launch_kernel(cmd, **kwargs)

    async def _fork(self, cmd: list[str], **kwargs: Any) -> Any:
        env = dict(kwargs.get("env") or os.environ)
        env["JPY_PARENT_PID"] = str(os.getpid())  # as jupyter_client's launcher sets it
        cwd = os.path.abspath(kwargs.get("cwd") or os.getcwd())
        lane = Lane.AHEAD if self.ticket is not None and self.ticket.spare else Lane.NOW
        template = self.templates.for_fork(launcher_prefix(cmd), env, self.needs, lane, self.preload)
        fds = [_output_fd(kwargs.get("stdout"), 1), _output_fd(kwargs.get("stderr"), 2)]
        try:
            self.forked = await template.fork(list(cmd), cwd, env, fds, self.needs, self.ticket)
        finally:
            for fd in fds:
                os.close(fd)
        self.pid = self.pgid = self.forked.pid
        self.cwd = cwd
        return self.connection_info

    @property
    def has_process(self) -> bool:
        return self.forked is not None or super().has_process

    async def poll(self) -> int | None:
        if self.forked is None:
            return await super().poll()
        return self.forked.returncode

    async def wait(self) -> int | None:
        if self.forked is None:
            return await super().wait()
        code = await self.forked.wait()
        self.forked = None
        return code

    async def send_signal(self, signum: int) -> None:
        if self.forked is None:
            return await super().send_signal(signum)
        if self.forked.returncode is not None:
            return  # reaped: the pid may belong to another process now
        try:
            os.killpg(self.pgid, signum)
        except OSError:
            os.kill(self.pid, signum)

    async def kill(self, restart: bool = False) -> None:
        if self.forked is None:
            return await super().kill(restart)
        try:
            await self.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass

    async def terminate(self, restart: bool = False) -> None:
        if self.forked is None:
            return await super().terminate(restart)
        try:
            await self.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass


def _output_fd(target: Any, default: int) -> int:
    """A duplicate of the descriptor Popen would give the kernel for `stdout=`/`stderr=` (None: ours)."""
    if target is None:
        return os.dup(default)
    if target == subprocess.DEVNULL:
        return os.open(os.devnull, os.O_WRONLY)
    if isinstance(target, int) and target >= 0:
        return os.dup(target)
    if hasattr(target, "fileno"):
        return os.dup(target.fileno())
    raise ForkRefused(f"a kernel's output can go to a file or to ours, not to {target!r}")
