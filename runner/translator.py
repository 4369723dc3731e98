"""labline's parameter translator: the injected-parameters cell papermill writes for the project's kernel.

papermill's `PythonTranslator`, except where papermill's text would not give the value back
(tuples, non-string dict keys, values that are not plain data). Values are literals, never code.
Its own module because papermill imports labline's engine (an entry point) while it imports itself,
and the notebook helpers need the translator without the engine.
"""

from __future__ import annotations

import keyword
from typing import Any

from papermill.translators import PythonTranslator, papermill_translators

PROJECT_KERNEL = "labline"
PLAIN_DATA = (str, int, float, list, dict, tuple)  # and None


class LablineTranslator(PythonTranslator):
    """papermill's Python translator, except where its text would not give the value back: a tuple
    (papermill writes its str as a string), a dict key that is not a string (papermill quotes it),
    an object that is not plain data (papermill writes its str; here a clear error). Values are
    literals, never code; a parameter name must be an identifier."""

    @classmethod
    def translate(cls, val: Any) -> str:
        if isinstance(val, tuple):
            return cls.translate_tuple(val)
        if val is not None and not isinstance(val, PLAIN_DATA):
            raise TypeError(
                f"parameter value {val!r} of type {type(val).__name__} is not plain data "
                f"(expected str, int, float, bool, None, or lists/dicts/tuples of them)"
            )
        return super().translate(val)

    @classmethod
    def translate_tuple(cls, val: tuple) -> str:
        items = [cls.translate(v) for v in val]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"

    @classmethod
    def translate_dict(cls, val: dict) -> str:
        escaped = ", ".join(f"{cls.translate(k)}: {cls.translate(v)}" for k, v in val.items())
        return f"{{{escaped}}}"

    @classmethod
    def assign(cls, name: str, str_val: str) -> str:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(
                f"parameter name {name!r} is not a Python identifier (expected letters, digits and _, "
                f"not starting with a digit, not a keyword)"
            )
        return super().assign(name, str_val)


def use_translator(kernel_name: str = PROJECT_KERNEL) -> None:
    """Make papermill write parameters for `kernel_name` with labline's translator."""
    papermill_translators.register(kernel_name, LablineTranslator)


def python_literal(value: Any) -> str:
    """Source text that evaluates to `value` (plain data only): the text of the injected cell."""
    return LablineTranslator.translate(value)


def injected_source(parameters: dict[str, Any]) -> str:
    """The injected-parameters cell's source, as papermill writes it for the project's kernel."""
    return LablineTranslator.codify(parameters)
