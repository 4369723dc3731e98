"""The notebook file: read it, inject parameters as data, write it safely.

papermill injects the parameters (a cell tagged `injected-parameters` right after the
`parameters` cell); for the project's kernel it writes them with `runner.translator.LablineTranslator`
(`runner.translator.injected_source` gives the same text): each value a Python literal built from plain data,
arriving exactly as given, never evaluated as code. The executed notebook is saved as papermill
saves it (`notebook_text`), atomically (`write_atomic`).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
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


def notebook_text(nb: Any) -> str:
    """nbformat's JSON text of a notebook node (what `nbformat.writes` returns: sources split into
    lines, transient keys such as `orig_nbformat` dropped, keys sorted, indent 1), without the
    schema validation `nbformat.writes` runs first."""
    from nbformat import reader, versions

    major, _ = reader.get_version(nb)
    return versions[major].writes_json(nb)


def write_atomic(text: str, path: str | Path) -> None:
    """Write a file so that a reader never sees half of it (a temporary file beside it, then
    os.replace), with the permissions a plain open() would give; an OSError names `path`."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc  # a failed write() names no file
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
