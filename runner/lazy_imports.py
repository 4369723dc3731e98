"""Defer the one import that makes `import nbformat` cost seconds.

jsonschema (imported by nbformat, hence by papermill and scrapbook, in the runner and in every
kernel) imports `rfc3987_syntax` at import time only to offer an optional "iri" format check,
and that module builds an Earley grammar with lark as it loads: about 2 s of CPU. nbformat never
uses that check. `DEFER_SOURCE` puts a small stand-in module in its place whose functions load
the real module on first use, so the check still works, later, for whoever calls it.

The source is a string because the runner also executes it inside each kernel it starts,
which may not be able to import `runner`.
"""

from __future__ import annotations

DEFER_SOURCE = """
def _runner_defer_rfc3987_syntax():
    import importlib, importlib.util, sys, types
    name = "rfc3987_syntax"
    if name in sys.modules:
        return
    try:
        if importlib.util.find_spec(name) is None:
            return
    except (ImportError, ValueError):
        return
    stub = types.ModuleType(name)
    stub.__doc__ = "stand-in: the real module loads (and builds its grammar) on first use"

    def load():
        if sys.modules.get(name) is stub:
            del sys.modules[name]
        return importlib.import_module(name)

    def is_valid_syntax(term, value):
        return load().is_valid_syntax(term, value)

    def parse(term, value):
        return load().parse(term, value)

    stub.is_valid_syntax = is_valid_syntax
    stub.parse = parse
    def module_getattr(attr):
        if attr.startswith("__"):  # the import system probes __path__ and friends: not a use
            raise AttributeError(attr)
        return getattr(load(), attr)

    stub.__getattr__ = module_getattr
    sys.modules[name] = stub

_runner_defer_rfc3987_syntax()
del _runner_defer_rfc3987_syntax
"""


def defer_slow_imports() -> None:
    """Install the stand-in in this process (idempotent; harmless when the module is absent)."""
    exec(compile(DEFER_SOURCE, "<runner.lazy_imports>", "exec"), {"__name__": "runner.lazy_imports.defer"})
