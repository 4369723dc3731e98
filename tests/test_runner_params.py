"""Typed parameters: declared in the notebook, converted from text, refused when they do not fit."""

from __future__ import annotations

import ast

import pytest

from runner.errors import ParameterError
from runner.params import bind_parameters, read_parameters
from runner.sweep import split_top_level
from runner.translator import injected_source, python_literal
from tests.fixtures import FIXTURES

ECHO = FIXTURES / "echo.ipynb"


def test_reads_annotations_defaults_and_help():
    declared = read_parameters(ECHO)
    assert list(declared) == ["x", "text", "sizes", "mode", "rate", "source_path", "output_dir"]
    assert declared["sizes"].annotation == "list[int]" and declared["sizes"].default == [16]
    assert declared["mode"].annotation == "Literal['a', 'b']"
    assert declared["x"].help == "a number to double"


def test_text_values_convert_to_the_declared_type():
    values = bind_parameters(ECHO, {"x": "7", "sizes": "[8, 4]", "mode": "b", "rate": "1e-3", "text": "42"})
    assert values == {"x": 7, "sizes": [8, 4], "mode": "b", "rate": 0.001, "text": "42"}
    assert bind_parameters(ECHO, {"sizes": "8,4"})["sizes"] == [8, 4]


@pytest.mark.parametrize(
    "name,value,expected",
    [
        ("x", "seven", "int"),
        ("x", "1.5", "int"),
        ("mode", "c", "one of"),
        ("sizes", "[1, 'a']", "list[int]"),
        ("rate", "fast", "float"),
    ],
)
def test_values_that_do_not_fit_are_refused_with_the_type(name, value, expected):
    with pytest.raises(ParameterError) as info:
        bind_parameters(ECHO, {name: value})
    assert name in str(info.value) and expected in str(info.value) and repr(value) in str(info.value)


def test_unknown_parameter_lists_the_declared_ones():
    with pytest.raises(ParameterError, match=r"(?s)unknown parameter.*'nope'.*x: int = 1"):
        bind_parameters(ECHO, {"nope": 1})


@pytest.mark.parametrize(
    "value",
    [
        "x'); import os; os.system('touch /tmp/pwned'); ('",
        'a"b\\n',
        "\n'''\"\"\"",
        "{__import__('os')}",
        [1, "two", None, {"k": [True, 2.5]}],
        {"nested": {"a": (1, 2)}},
        float("inf"),
    ],
)
def test_injected_values_are_literals_that_round_trip(value):
    text = python_literal(value)
    assert ast.literal_eval(text.replace("float('inf')", "1e999")) == value


def test_injected_cell_refuses_code_objects_and_bad_names():
    with pytest.raises(TypeError, match="not plain data"):
        injected_source({"f": print})
    with pytest.raises(ValueError, match="identifier"):
        injected_source({"a b": 1})


def test_sweep_values_split_on_top_level_commas():
    assert split_top_level("[8],[16,8]") == ["[8]", "[16,8]"]
    assert split_top_level("0.1, 0.01") == ["0.1", "0.01"]
    assert split_top_level("'a,b',c") == ["'a,b'", "c"]
    with pytest.raises(ParameterError, match="unbalanced"):
        split_top_level("[8,16")
