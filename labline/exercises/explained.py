"""Check asserts that say what was expected and what was found, in plain values.

Before grading, every `assert` of a check cell is rewritten on its own lines (so tracebacks keep
their line numbers): a comparison `assert found OP expected, message` becomes a call of `compare`,
which on failure raises AssertionError with the message and the `expected:` and `found:` values;
each part of an `and` is checked on its own (what `assert a and b` means); and every value shown in
a message goes through `plain.brief`, so a student reads `'virginica'`, never `np.str_('virginica')`.
An assert sharing its line with other code is left as written.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable

from labline.exercises.plain import shown

_MODULE = "labline.exercises"
_OPERATORS: dict[type, tuple[str, Callable[[object, object], object]]] = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.Is: ("is", operator.is_),
    ast.IsNot: ("is not", operator.is_not),
    ast.In: ("in", lambda a, b: a in b),
    ast.NotIn: ("not in", lambda a, b: a not in b),
}
_BY_TEXT = dict(_OPERATORS.values())


def explain(message: object, found: object, op: str, expected: object) -> str:
    """The failure text: the check's message, then what was expected and what was found."""
    text = message if isinstance(message, str) or message is None else shown(message)
    lines = [] if text is None or text == shown(found) else [text]  # `assert x == [], x` says x once
    prefix = "" if op in ("==", "is") else f"{op} "
    found_text = shown(found)
    if found_text == shown(expected):  # equal as plain values, so the type is what differs (np.True_ is not True)
        found_text += f" (a {type(found).__module__}.{type(found).__qualname__})"
    lines += [f"expected: {prefix}{shown(expected)}", f"found:    {found_text}"]
    return "\n".join(lines)


def compare(found: object, op: str, expected: object, message: Callable[[], object] | None = None) -> None:
    """`assert found OP expected`, failing with expected and found; `message` is evaluated only on failure."""
    if not _BY_TEXT[op](found, expected):
        raise AssertionError(explain(message() if message else None, found, op, expected))


def _helper(module: str, name: str) -> ast.expr:
    """`__import__("labline.exercises.MODULE").exercises.MODULE.NAME`: no name added to the student's namespace."""
    imported = ast.Call(ast.Name("__import__", ast.Load()), [ast.Constant(f"{_MODULE}.{module}")], [])
    return ast.Attribute(ast.Attribute(ast.Attribute(imported, "exercises"), module), name)


class _PlainSlots(ast.NodeTransformer):
    """Every `{value}` of an f-string message passes through `plain.brief`."""

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.FormattedValue:
        self.generic_visit(node)
        node.value = ast.Call(_helper("plain", "brief"), [node.value], [])
        return node


def _message(message: ast.expr | None) -> ast.expr | None:
    if message is None or (isinstance(message, ast.Constant) and isinstance(message.value, str)):
        return message
    if isinstance(message, ast.JoinedStr):
        return _PlainSlots().visit(message)
    return message  # any other value: `explain` (or `shown`) makes it plain text


def _parts(test: ast.expr) -> list[ast.expr]:
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return [part for value in test.values for part in _parts(value)]
    return [test]


def _statement(part: ast.expr, message: ast.expr | None) -> ast.stmt:
    """One part of an assert as its own statement: a `compare` call for a single comparison."""
    single = isinstance(part, ast.Compare) and len(part.ops) == 1 and type(part.ops[0]) in _OPERATORS
    if not single:
        if message is not None and not isinstance(message, (ast.Constant, ast.JoinedStr)):
            message = ast.Call(_helper("plain", "shown"), [message], [])
        return ast.Assert(part, message)
    thunk = [] if message is None else [ast.Lambda(ast.arguments([], [], None, [], [], None, []), message)]
    op = ast.Constant(_OPERATORS[type(part.ops[0])][0])
    call = ast.Call(_helper("explained", "compare"), [part.left, op, part.comparators[0], *thunk], [])
    return ast.Expr(call)


def _alone(node: ast.Assert, lines: list[str]) -> bool:
    """Whether the assert is the only code on its lines (a trailing comment aside)."""
    before = lines[node.lineno - 1][: node.col_offset]
    after = lines[node.end_lineno - 1].encode()[node.end_col_offset :].decode().strip()  # offsets count bytes
    return not before.strip() and (not after or after.startswith("#"))


def explain_asserts(source: str) -> str:
    """`source` with every assert standing alone on its lines rewritten; the same line count, other lines as given."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source  # run as written: the error is the report
    lines = source.splitlines()
    for node in sorted((n for n in ast.walk(tree) if isinstance(n, ast.Assert)), key=lambda n: -n.lineno):
        if not _alone(node, lines):
            continue
        try:
            message = _message(node.msg)
            code = "; ".join(ast.unparse(ast.fix_missing_locations(_statement(p, message))) for p in _parts(node.test))
        except (ValueError, TypeError):  # an f-string ast.unparse cannot write back: the assert runs as written
            continue
        span = node.end_lineno - node.lineno + 1
        lines[node.lineno - 1 : node.end_lineno] = [" " * node.col_offset + code] + [""] * (span - 1)
    return "\n".join(lines) + ("\n" if source.endswith("\n") else "")
