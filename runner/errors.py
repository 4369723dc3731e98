"""The runner's exceptions; each message names what is wrong and what is expected."""


class RunnerError(Exception):
    """Base class. `exit_code` is what the command line exits with."""

    exit_code = 1


class SpecError(RunnerError):
    """pipeline.yaml (or a step reference) is invalid."""

    exit_code = 2


class ParameterError(RunnerError):
    """A parameter name is unknown or its value does not fit the declared type."""

    exit_code = 2


class UsageError(RunnerError):
    """A command-line choice that cannot work: an unknown step or executor, a bad number."""

    exit_code = 2
