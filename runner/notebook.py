"""The notebook file: read it, inject parameters as data, write it safely.

papermill injects the parameters (a cell tagged `injected-parameters` right after the
`parameters` cell); for the project's kernel it writes them with `injected_source` (through
`runner.engine.LablineTranslator`): each value a Python literal built here from plain data, a
string always `repr`-quoted, arriving exactly as given, never evaluated as code.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
# CPython 3.11's parser keeps a recursion counter shared between threads: two threads in ast.parse
# at once fail with "AST constructor recursion depth mismatch". The runner parses on the main thread
# (kernel prestart) and on the kernel loop's thread, so parsing is serialized.
_PARSE_LOCK = threading.Lock()


def read_json(path: str | Path) -> dict[str, Any]:
    """The notebook as plain JSON (fast: no nbformat, no schema validation)."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def cell_source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def cell_tags(cell: dict[str, Any]) -> list[str]:
    return list((cell.get("metadata") or {}).get("tags") or [])


def code_sources(nb: dict[str, Any]) -> list[str]:
    """The code of every code cell, in order; outputs, metadata and markdown left out."""
    return [
        cell_source(c) for c in nb.get("cells", []) if c.get("cell_type") == "code" and INJECTED_TAG not in cell_tags(c)
    ]


def parse_source(source: str) -> Any:
    """The AST of a cell's or a file's code (IPython `%` and `!` lines left out); None when it does not parse."""
    import ast

    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        with _PARSE_LOCK:
            return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def imported_modules(nb: dict[str, Any]) -> list[str]:
    """Modules the notebook imports unconditionally (top-level `import` statements of its code
    cells), in order: what a kernel can import before the notebook needs them."""
    import ast

    modules: list[str] = []
    for source in code_sources(nb):
        tree = parse_source(source)
        if tree is None:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
                names = [node.module]
            else:
                continue
            modules.extend(n for n in names if n and n not in modules)
    return modules


def python_literal(value: Any) -> str:
    """Source text that evaluates to `value`; only plain data is accepted."""
    if value is None or isinstance(value, (bool, int)):
        return repr(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "float('nan')"
        if math.isinf(value):
            return "float('inf')" if value > 0 else "float('-inf')"
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(python_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + "".join(python_literal(v) + ", " for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{python_literal(k)}: {python_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(
        f"parameter value {value!r} of type {type(value).__name__} is not plain data "
        f"(expected str, int, float, bool, None, or lists/dicts of them)"
    )


def injected_source(parameters: dict[str, Any]) -> str:
    lines = ["# Parameters"]
    for name, value in parameters.items():
        if not name.isidentifier():
            raise ValueError(f"parameter name {name!r} is not a Python identifier")
        lines.append(f"{name} = {python_literal(value)}")
    return "\n".join(lines) + "\n"


def write_atomic(nb: Any, path: str | Path) -> None:
    """Write a notebook so that a reader never sees half a file (plain JSON: written after every
    cell, so it skips nbformat's schema validation)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".ipynb")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(nb, handle, indent=1, ensure_ascii=False, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)
