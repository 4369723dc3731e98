"""Typed notebook parameters: read the `parameters` cell, convert values, refuse what does not fit.

A parameters cell declares `name: type = default  # help`. Values from the command line arrive
as strings and are converted to the declared type; values are never evaluated as code (only
`ast.literal_eval` for containers), and strings are injected with `repr`, so any string arrives
exactly as given.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import ParameterError
from runner.notebook import PARAMETERS_TAG, cell_source, cell_tags, read_json

_MISSING = object()
SHOWN_CHARS = 200  # how much of a long value a message shows
RECORDED_CHARS = 4096  # how much a manifest records: longer than any path (PATH_MAX), so a path stays whole


def shortened(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text`, or its first `limit` characters and its length: a 1 MB value never fills a message or a manifest."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _shown(value: Any) -> str:
    """A value as a message shows it: its repr, a long string's first characters and its length."""
    return repr(shortened(value)) if isinstance(value, str) else shortened(repr(value))


def shortened_values(value: Any, limit: int = RECORDED_CHARS) -> Any:
    """`value` with every long string inside it shortened (what a manifest records of a parameter)."""
    if isinstance(value, str):
        return shortened(value, limit)
    if isinstance(value, dict):
        return {shortened(k, limit) if isinstance(k, str) else k: shortened_values(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [shortened_values(v, limit) for v in value]
    return value


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: its name, annotation source, default and help comment."""

    name: str
    annotation: str | None
    default: Any
    help: str = ""

    def describe(self) -> str:
        kind = f": {self.annotation}" if self.annotation else ""
        comment = f"  # {self.help}" if self.help else ""
        return f"{self.name}{kind} = {self.default!r}{comment}"


def parameters_cell(nb: dict[str, Any]) -> dict[str, Any] | None:
    """The first code cell tagged `parameters` (a plain dict or an nbformat node)."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and PARAMETERS_TAG in cell_tags(cell):
            return cell
    return None


def read_parameters(notebook: str | Path) -> dict[str, Parameter]:
    """The parameters a notebook declares, in order. Empty when it has no parameters cell."""
    try:
        nb = read_json(notebook)
    except (OSError, ValueError) as exc:
        raise ParameterError(f"{notebook}: cannot read the notebook: {exc}") from exc
    return declared_in(nb, notebook)


def declared_in(nb: dict[str, Any], notebook: str | Path) -> dict[str, Parameter]:
    """The parameters notebook `nb` (read from `notebook`, named in errors) declares, in order."""
    cell = parameters_cell(nb)
    if cell is None:
        return {}
    source = cell_source(cell)
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParameterError(f"{notebook}: the parameters cell is not valid Python: {exc}") from exc
    lines = source.splitlines()
    declared: dict[str, Parameter] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, annotation, value = node.target.id, ast.unparse(node.annotation), node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, annotation, value = node.targets[0].id, None, node.value
        else:
            continue
        try:
            default = ast.literal_eval(value) if value is not None else None
        except ValueError:
            default = ast.unparse(value)
        line = lines[node.end_lineno - 1]
        help_text = line.split("#", 1)[1].strip() if "#" in line[node.end_col_offset :] else ""
        declared[name] = Parameter(name, annotation, default, help_text)
    return declared


# --- conversion -----------------------------------------------------------------------------

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(f"{text!r} is not a literal value") from None


def _convert(node: ast.expr | None, value: Any) -> Any:
    """Convert `value` to the type described by the annotation AST `node`; ValueError if it cannot."""
    if node is None:
        return value
    if isinstance(node, ast.Constant) and node.value is None:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        raise ValueError("expected None")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # X | Y
        return _first_fit([node.left, node.right], value)
    if isinstance(node, ast.Attribute):
        node = ast.Name(id=node.attr)
    if isinstance(node, ast.Name):
        return _convert_simple(node.id, value)
    if isinstance(node, ast.Subscript):
        base = node.value.attr if isinstance(node.value, ast.Attribute) else getattr(node.value, "id", "")
        args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base == "Optional":
            return _first_fit([ast.Constant(None), args[0]], value)
        if base == "Union":
            return _first_fit(args, value)
        if base == "Literal":
            allowed = [ast.literal_eval(a) for a in args]
            for option in allowed:
                if value == option or (isinstance(value, str) and str(option) == value):
                    return option
            raise ValueError(f"expected one of {allowed}")
        if base in ("list", "List", "tuple", "Tuple", "set", "Set", "Sequence"):
            if isinstance(value, str):
                value = _literal(value) if value.strip()[:1] in "[(" else [v for v in value.split(",") if v != ""]
            if not isinstance(value, (list, tuple, set)):
                value = [value]
            element = args[0] if args else None
            items = [_convert(element, v) for v in value]
            return tuple(items) if base in ("tuple", "Tuple") else items
        if base in ("dict", "Dict", "Mapping"):
            if isinstance(value, str):
                value = _literal(value)
            if not isinstance(value, dict):
                raise ValueError("expected a mapping")
            key_t, val_t = (args + [None, None])[:2]
            return {_convert(key_t, k): _convert(val_t, v) for k, v in value.items()}
    return value  # an annotation the runner does not know: pass the value through unchanged


def _first_fit(options: list[ast.expr], value: Any) -> Any:
    errors = []
    for option in options:
        try:
            return _convert(option, value)
        except ValueError as exc:
            errors.append(str(exc))
    raise ValueError(" or ".join(errors))


def _convert_simple(name: str, value: Any) -> Any:
    if name in ("Any", "object"):
        return value
    if name == "str":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValueError("expected a string")
    if name == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError("expected true or false")
    if name == "int":
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise ValueError("expected an integer") from None
        raise ValueError("expected an integer")
    if name == "float":
        if isinstance(value, bool):
            raise ValueError("expected a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise ValueError("expected a number") from None
        raise ValueError("expected a number")
    if name in ("list", "dict", "tuple"):
        return _convert(ast.parse(f"{name}[Any]", mode="eval").body, value)
    return value


def convert_value(parameter: Parameter, value: Any) -> Any:
    """Convert one value to a parameter's declared type (or, with no annotation, to the type of its
    default or None: papermill's untyped `n = 1` is often given None for "unset")."""
    if parameter.annotation:
        node = ast.parse(parameter.annotation, mode="eval").body
    elif parameter.default is not None and not isinstance(parameter.default, str):
        node = ast.BinOp(ast.Name(id=type(parameter.default).__name__), ast.BitOr(), ast.Constant(None))
    else:
        node = None
    try:
        return _convert(node, value)
    except ValueError as exc:
        expected = parameter.annotation or type(parameter.default).__name__
        raise ParameterError(
            f"parameter {parameter.name!r}: {_shown(value)} does not fit the declared type {expected} ({exc})"
        ) from None


def bind_parameters(
    notebook: str | Path, given: dict[str, Any], declared: dict[str, Parameter] | None = None
) -> dict[str, Any]:
    """Check `given` against the notebook's declared parameters and convert each value.

    Raises ParameterError naming an unknown parameter and listing the declared ones.
    """
    declared = read_parameters(notebook) if declared is None else declared
    unknown = [shortened(name) for name in given if name not in declared]
    if unknown:
        listing = "\n  ".join(p.describe() for p in declared.values()) or "(none)"
        raise ParameterError(f"{notebook}: unknown parameter(s) {unknown}; the notebook declares:\n  {listing}")
    return {name: convert_value(declared[name], value) for name, value in given.items()}


def parse_assignment(text: str) -> tuple[str, str]:
    """`NAME=VALUE` from the command line, split on the first `=`."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ParameterError(f"expected NAME=VALUE, got {_shown(text)}")
    return name.strip(), value
