"""runner: execute a pipeline of parameterized notebooks with papermill and record what they glued.

Generic by design: it knows notebooks, parameters, steps and scraps, nothing of ML.
"""

from runner.errors import ParameterError, RunnerError, SpecError

__all__ = ["RunnerError", "SpecError", "ParameterError"]
