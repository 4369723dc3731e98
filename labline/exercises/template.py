"""From one solution notebook to its student template: the markers and the stubs they become.

An instructor edits only `solutions/NN_name.ipynb`. In its code cells:

    # BEGIN SOLUTION hint: what the student should do
    ...the solution...
    # END SOLUTION

becomes, at the indentation of the BEGIN line,

    raise NotImplementedError("Exercise: what the student should do")  # noqa

and a single line `x = compute()  # SOLUTION` (an assignment or a `return`) keeps its left side
and loses its expression: `x = ...`. Cells tagged `hidden-checks` are dropped, outputs and
execution counts are cleared, cell ids are kept (the grader finds its anchors by them), and the
exercise name is stamped into the notebook metadata. The result is deterministic.
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass, field

import nbformat
from nbformat import NotebookNode

HIDDEN_CHECKS = "hidden-checks"
CHECKS = "checks"
CHECK_TAGS = (CHECKS, HIDDEN_CHECKS)
STUB_EXCEPTION = "NotImplementedError"  # the exception a region stub raises
STUB_PREFIX = "Exercise: "
DEFAULT_HINT = "write this part"

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)#\s*BEGIN SOLUTION\b(?:\s*hint:\s*(?P<hint>.*?))?\s*$")
_END = re.compile(r"^[ \t]*#\s*END SOLUTION\s*$")
_EXPRESSION = re.compile(r"^(?P<code>.*?)\s*#\s*SOLUTION\b(?:\s*hint:\s*(?P<hint>.*?))?\s*$")
# Notebook metadata keys a template keeps; the rest (papermill, widgets, timings) is run noise.
_KEPT_METADATA = ("kernelspec",)


class SolutionFormatError(ValueError):
    """A solution notebook whose markers cannot be turned into a template."""


@dataclass
class Template:
    """A built template and where its stubs are (cell ids), which `check` needs."""

    notebook: NotebookNode
    stub_cells: list[str] = field(default_factory=list)
    expression_cells: list[str] = field(default_factory=list)  # cells with a `x = ...` stub
    stub_count: int = 0


def stub_line(indent: str, hint: str) -> str:
    """The line a solution region becomes: it raises with the instructor's hint."""
    message = STUB_PREFIX + (hint.strip() or DEFAULT_HINT)
    return f"{indent}raise {STUB_EXCEPTION}({message!r})"


def _expression_stub(code: str, where: str) -> str:
    """`x = compute()` -> `x = ...`; `return f(x)` -> `return ...`; anything else is an error."""
    stripped = code.lstrip()
    indent = code[: len(code) - len(stripped)]
    try:
        tree = ast.parse(stripped)
    except SyntaxError as exc:
        raise SolutionFormatError(f"{where}: a '# SOLUTION' line must be one complete statement; {exc.msg}") from None
    node = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Return)) or node.value is None:
        raise SolutionFormatError(
            f"{where}: a '# SOLUTION' line must be an assignment or a return with a value, got {stripped!r}"
        )
    start = node.value.col_offset  # a UTF-8 byte offset
    return f"{indent}{stripped.encode()[:start].decode()}..."


def strip_solutions(source: str, where: str) -> tuple[str, int, int]:
    """The source with every solution region and expression replaced by its stub; and the counts of
    region stubs and expression stubs."""
    out: list[str] = []
    stubs = expressions = 0
    open_region: tuple[int, str, str] | None = None  # (line number, indent, hint)
    for number, line in enumerate(source.splitlines(), start=1):
        begin, end = _BEGIN.match(line), _END.match(line)
        if open_region is not None:
            if begin:
                raise SolutionFormatError(
                    f"{where}, line {number}: BEGIN SOLUTION inside the region opened "
                    f"on line {open_region[0]}; regions do not nest"
                )
            if end:
                out.append(stub_line(open_region[1], open_region[2]))
                stubs += 1
                open_region = None
            continue
        if end:
            raise SolutionFormatError(f"{where}, line {number}: END SOLUTION without a BEGIN SOLUTION before it")
        if begin:
            open_region = (number, begin["indent"], begin["hint"] or "")
            continue
        expression = _EXPRESSION.match(line)
        if expression:
            code = _expression_stub(expression["code"], f"{where}, line {number}")
            hint = expression["hint"]
            out.append(f"{code}  # hint: {hint}" if hint else code)
            expressions += 1
            continue
        out.append(line)
    if open_region is not None:
        raise SolutionFormatError(f"{where}, line {open_region[0]}: BEGIN SOLUTION has no END SOLUTION")
    return "\n".join(out), stubs, expressions


def cell_tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def is_check(cell: NotebookNode) -> bool:
    return any(tag in CHECK_TAGS for tag in cell_tags(cell))


def _clean_cell(cell: NotebookNode) -> NotebookNode:
    """A copy with no outputs, no execution count, and only the tags as metadata."""
    clean = copy.deepcopy(cell)
    tags = cell_tags(cell)
    clean["metadata"] = {"tags": tags} if tags else {}
    if clean.cell_type == "code":
        clean["outputs"] = []
        clean["execution_count"] = None
    return clean


def build_template(solution: NotebookNode, name: str) -> Template:
    """The student template of `solution`: stubs for solution regions, no hidden checks, no outputs."""
    cells, stub_cells, expression_cells, stub_count = [], [], [], 0
    for index, cell in enumerate(solution.cells):
        if HIDDEN_CHECKS in cell_tags(cell):
            continue
        if not cell.get("id"):
            raise SolutionFormatError(f"{name}: cell {index} has no id; save the solution with nbformat 4.5 or later")
        clean = _clean_cell(cell)
        if clean.cell_type == "code":
            clean.source, stubs, expressions = strip_solutions(cell.source, f"{name}, cell {index} ({cell.id})")
            if stubs or expressions:
                stub_cells.append(cell.id)
                stub_count += stubs + expressions
            if expressions:
                expression_cells.append(cell.id)
        cells.append(clean)
    metadata = {key: copy.deepcopy(solution.metadata[key]) for key in _KEPT_METADATA if key in solution.metadata}
    metadata["language_info"] = {"name": "python"}
    metadata["labline"] = {"exercise": name, "generated_from": f"solutions/{name}.ipynb"}
    notebook = nbformat.v4.new_notebook(cells=cells, metadata=metadata)
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    return Template(notebook, stub_cells, expression_cells, stub_count)


def render(notebook: NotebookNode) -> str:
    """The exact text written to disk: nbformat's own JSON layout, sorted keys, final newline."""
    text = nbformat.writes(notebook, version=4)
    return text if text.endswith("\n") else text + "\n"
