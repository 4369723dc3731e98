"""The shape of the code, checked from its source with `ast` (nothing is imported or run).

- no import circle among the modules of `runner` and `labline`: module-level imports (what runs
  at import time) must form no cycle at all; imports inside functions are reported separately;
- `runner` never imports `labline` (the runner is the generic part);
- no function longer than 80 lines;
- `LABLINE_*` environment variables are read in labline/paths.py only.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.fixtures import ROOT

PACKAGES = ("runner", "labline")
MAX_FUNCTION_LINES = 80


def source_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> tuple[list[ast.stmt], list[ast.stmt]]:
    """(module-level, function-level) import statements; `if TYPE_CHECKING:` blocks never run, so left out."""
    top, inner = [], []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit_statement(other, in_function)
                continue
            visit_statement(child, in_function)

    def visit_statement(child: ast.AST, in_function: bool) -> None:
        if isinstance(child, ast.Import | ast.ImportFrom):
            (inner if in_function else top).append(child)
        visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(tree, False)
    return top, inner


def _targets(node: ast.stmt, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The project modules an import statement loads (a `from pkg import sub` loads pkg.sub)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = module.split(".") if is_package else module.split(".")[:-1]
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    found = set()
    for name in names:
        while name and name not in known:  # `import a.b.c` of a non-module attribute: its module
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def import_graphs() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module-level, function-level) edges between the project's modules."""
    files = source_files()
    known = set(files)
    top_graph, inner_graph = {}, {}
    for module, path in files.items():
        top, inner = _imports(ast.parse(path.read_text(), filename=str(path)))
        is_package = path.name == "__init__.py"
        top_graph[module] = set().union(*(_targets(n, module, is_package, known) for n in top))
        inner_graph[module] = set().union(*(_targets(n, module, is_package, known) for n in inner))
    return top_graph, inner_graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


def describe(graph: dict[str, set[str]], component: list[str]) -> str:
    members = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
    return "circle among " + ", ".join(component) + ":\n    " + "\n    ".join(edges)


def test_the_cycle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert "c -> a" in describe(graph, ["a", "b", "c"])
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_module_level_imports_form_no_circle():
    top, _ = import_graphs()
    assert "runner.cache" in top["runner.pipeline"]  # the graph does see the project's imports
    found = cycles(top)
    assert not found, "import circles at import time:\n" + "\n".join(describe(top, c) for c in found)


def test_imports_inside_functions_close_no_circle_either():
    top, inner = import_graphs()
    both = {m: top[m] | inner[m] for m in top}
    found = cycles(both)
    assert not found, "import circles through imports inside functions:\n" + "\n".join(describe(both, c) for c in found)


def test_the_runner_does_not_import_labline():
    top, inner = import_graphs()
    offenders = sorted(
        f"{m} -> {t}" for m in top if m.startswith("runner") for t in top[m] | inner[m] if t.startswith("labline")
    )
    assert not offenders, offenders


def long_functions(limit: int = MAX_FUNCTION_LINES) -> list[str]:
    offenders = []
    for path in source_files().values():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return sorted(offenders)


def test_no_function_is_longer_than_80_lines():
    offenders = long_functions()
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n  " + "\n  ".join(offenders)


def _environment_reads(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, name) of every os.environ.get("LABLINE_..."), os.getenv(...) and os.environ["LABLINE_..."]."""
    found = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("get", "getenv", "pop", "setdefault"):
                key = node.args[0]
        elif isinstance(node, ast.Subscript):
            key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.startswith("LABLINE_"):
            found.append((node.lineno, key.value))
    return found


def test_labline_variables_are_read_in_paths_only():
    offenders = []
    for module, path in source_files().items():
        if module != "labline.paths":
            reads = _environment_reads(ast.parse(path.read_text(), filename=str(path)))
            offenders += [f"{path.relative_to(ROOT)}:{line} reads {name}" for line, name in reads]
    assert not offenders, "read these through labline.paths:\n  " + "\n  ".join(offenders)


def test_the_reader_check_sees_a_read():
    tree = ast.parse('import os\nos.environ.get("LABLINE_DB")\nos.environ["LABLINE_RUNS"]\nos.getenv("HOME")')
    assert _environment_reads(tree) == [(2, "LABLINE_DB"), (3, "LABLINE_RUNS")]
