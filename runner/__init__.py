"""runner: execute a pipeline of parameterized notebooks and record what they glued.

Generic by design: it knows notebooks, parameters, steps and scraps, nothing of ML.

Importing `runner` defers jsonschema's optional IRI grammar (see `runner.lazy_imports`), which
otherwise costs about 2 s in every process that imports nbformat, papermill or scrapbook.
"""

from runner.lazy_imports import defer_slow_imports

defer_slow_imports()

from runner.errors import ParameterError, RunnerError, SpecError  # noqa: E402

__all__ = ["RunnerError", "SpecError", "ParameterError"]
