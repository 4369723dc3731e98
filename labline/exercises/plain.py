"""Values as a student should read them in feedback: plain Python, shortened when long.

numpy 2 prints a string of an array as `np.str_('virginica')` and a pandas object as a table;
feedback shows `'virginica'`, a list or a dict instead. Runs inside the grading kernel (the
rewritten checks call it), so it imports neither numpy nor pandas and knows them by their type.
"""

from __future__ import annotations

LIMIT = 300  # characters of one value shown; the rest is counted, not printed


class _Text(str):
    """A shortened value's text: formats as itself, so `{x!r}` in a message adds no quotes."""

    def __repr__(self) -> str:
        return str(self)


def _library(value: object) -> str:
    return type(value).__module__.split(".")[0]


def _pandas(value):
    if hasattr(value, "columns") and hasattr(value, "to_dict"):  # a DataFrame: rows by index label
        orient = "records" if _default_index(value) else "index"
        return value.to_dict(orient=orient)
    if hasattr(value, "index") and hasattr(value, "to_dict"):  # a Series
        return value.tolist() if _default_index(value) else value.to_dict()
    if hasattr(value, "tolist"):  # an Index, a Categorical
        return value.tolist()
    return str(value)  # a Timestamp, a Timedelta, NA


def _default_index(value) -> bool:
    """Whether a pandas object's index is the default 0..n-1 (so its labels say nothing)."""
    index = value.index
    return type(index).__name__ == "RangeIndex" and index.start == 0 and index.step == 1


def plain(value: object) -> object:
    """`value` with every numpy, pandas and torch value inside it turned into the Python value it holds."""
    library = _library(value)
    if library in ("numpy", "torch") and hasattr(value, "tolist"):
        value = value.tolist()
    elif library == "pandas":
        value = _pandas(value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(plain(item) for item in value) if type(value) in (list, tuple, set, frozenset) else value
    return value


def _shorten(text: str) -> str:
    if len(text) <= LIMIT:
        return text
    return f"{text[:LIMIT]}... ({len(text) - LIMIT} more characters)"


def shown(value: object) -> str:
    """The text of `value` for an `expected:` or `found:` line: its plain repr, shortened."""
    return _shorten(repr(plain(value)))


def brief(value: object) -> object:
    """For a slot of a check's message (`f"got {x}"`): the plain value, or its shortened text when long.

    A number stays a number, so `{x:.3f}` still formats it.
    """
    value = plain(value)
    if isinstance(value, str):
        return _shorten(value)
    text = repr(value)
    return value if len(text) <= LIMIT else _Text(_shorten(text))
