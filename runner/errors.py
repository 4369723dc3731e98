"""The runner's exceptions; each message names what is wrong and what is expected."""

from runner.exit_codes import ExitCode


class RunnerError(Exception):
    """Base class. `exit_code` is what the command line exits with."""

    exit_code = ExitCode.FAILED


class SpecError(RunnerError):
    """pipeline.yaml (or a step reference) is invalid."""

    exit_code = ExitCode.USAGE


class InputError(SpecError):
    """A file a step reads cannot be hashed whole, or a parameter names data that cannot be located."""


class ParameterError(RunnerError):
    """A parameter name is unknown or its value does not fit the declared type."""

    exit_code = ExitCode.USAGE


class UsageError(RunnerError):
    """A command-line choice that cannot work: an unknown step or executor, a bad number."""

    exit_code = ExitCode.USAGE


class KernelMissing(RunnerError):
    """The kernel a notebook declares is not installed."""

    exit_code = ExitCode.USAGE


class NotebookExecutionError(RunnerError):
    """A notebook stopped: where (cell index, execution count, source line), what raised, its traceback.

    The same fields as papermill's `PapermillExecutionError`, plus how it ended (`status`:
    failed | timeout | dead_kernel | interrupted), so a caller needs no second error type.
    """

    def __init__(
        self,
        status: str,
        ename: str,
        evalue: str,
        cell_index: int | None = None,
        exec_count: int | None = None,
        source: str = "",
        traceback: list[str] | None = None,
        line: int | None = None,
    ):
        self.status, self.ename, self.evalue = status, ename, evalue
        self.cell_index, self.exec_count, self.source = cell_index, exec_count, source
        self.traceback, self.line = list(traceback or []), line
        super().__init__(f"{status} at cell {cell_index} (In [{exec_count}]): {ename}: {evalue}")

    @property
    def source_line(self) -> str:
        lines = self.source.splitlines()
        if self.line and self.line <= len(lines):
            return lines[self.line - 1].strip()
        return next((text.strip() for text in lines if text.strip()), "")
