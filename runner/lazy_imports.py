"""Defer, in the runner's own process, the one import that makes `import nbformat` cost seconds.

jsonschema (imported by nbformat, hence by papermill and scrapbook) imports `rfc3987_syntax` at
import time only to offer an optional "iri" format check, and that module builds an Earley grammar
with lark as it loads: about 2 s of CPU. nbformat never uses that check. `defer_slow_imports`
puts a small stand-in module in its place whose functions load the real module on first use, so
the check still works, later, for whoever calls it.

Only the runner process holds the stand-in: kernels hold the real module (their template imports
it once, `runner/forkserver.py`), so what a notebook imports is what it would import anywhere.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

DEFERRED = "rfc3987_syntax"


def defer_slow_imports() -> None:
    """Install the stand-in in this process (idempotent; harmless when the module is absent)."""
    if DEFERRED in sys.modules:
        return
    try:
        if importlib.util.find_spec(DEFERRED) is None:
            return
    except (ImportError, ValueError):
        return
    sys.modules[DEFERRED] = _stand_in()


def _stand_in() -> types.ModuleType:
    stub = types.ModuleType(DEFERRED)
    stub.__doc__ = "stand-in: the real module loads (and builds its grammar) on first use"

    def load() -> types.ModuleType:
        if sys.modules.get(DEFERRED) is stub:
            del sys.modules[DEFERRED]
        return importlib.import_module(DEFERRED)

    def is_valid_syntax(term, value):
        return load().is_valid_syntax(term, value)

    def parse(term, value):
        return load().parse(term, value)

    def module_getattr(attr):
        if attr.startswith("__"):  # the import system probes __path__ and friends: not a use
            raise AttributeError(attr)
        return getattr(load(), attr)

    stub.is_valid_syntax = is_valid_syntax
    stub.parse = parse
    stub.__getattr__ = module_getattr
    return stub
