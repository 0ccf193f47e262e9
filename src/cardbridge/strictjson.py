"""One strict JSON reader for everything that comes from outside (HTTP bodies, native
messages): RFC 8259 JSON and nothing more, with limits.

- a key may appear only once in an object;
- no ``NaN``, ``Infinity`` or ``-Infinity``; no number that becomes infinite;
- a number has at most :data:`MAX_NUMBER_CHARS` characters (Python would otherwise spend
  quadratic time on, or refuse with a bare ``ValueError``, an integer of 4,301 digits);
- arrays and objects nest at most :data:`MAX_DEPTH` deep (checked before parsing, so a
  deep input never reaches the recursive decoder).

Every refusal is a :class:`StrictJsonError` (a ``ValueError``) with a short message and no
part of the input beyond a key's first characters. Only the standard library, and cheap to
import: the native host loads it at start-up.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["MAX_DEPTH", "MAX_NUMBER_CHARS", "StrictJsonError", "loads"]

MAX_DEPTH = 32
MAX_NUMBER_CHARS = 64

# A JSON string (the decoder checks its escapes), or an unterminated one up to the end, so
# the scan stays linear; what is left outside strings holds the brackets.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class StrictJsonError(ValueError):
    """The input is not JSON, or breaks one of the limits."""


def _number(text: str) -> str:
    if len(text) > MAX_NUMBER_CHARS:
        raise StrictJsonError(f"A number has more than {MAX_NUMBER_CHARS} characters.")
    return text


def _int(text: str) -> int:
    return int(_number(text))


def _float(text: str) -> float:
    value = float(_number(text))
    if not math.isfinite(value):
        raise StrictJsonError("A number is too large.")
    return value


def _constant(name: str) -> Any:
    raise StrictJsonError(f"{name} is not a JSON number.")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise StrictJsonError(f"The key {key[:40]!r} appears twice.")
            seen.add(key)
    return out


def depth(text: str) -> int:
    """How deep arrays and objects nest in ``text`` (brackets inside strings do not count)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(_STEP[c] for c in brackets), default=0)


_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique, parse_int=_int, parse_float=_float, parse_constant=_constant, strict=True
)


def loads(data: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value in ``data`` (UTF-8 when bytes), or StrictJsonError."""
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise StrictJsonError("The input is not valid UTF-8.") from None
    else:
        text = data
    if depth(text) > max_depth:
        raise StrictJsonError(f"Arrays and objects nest more than {max_depth} deep.")
    try:
        value, end = _DECODER.raw_decode(text, _skip_space(text, 0))
    except StrictJsonError:
        raise
    except (ValueError, RecursionError):
        raise StrictJsonError("The input is not valid JSON.") from None
    if _skip_space(text, end) != len(text):
        raise StrictJsonError("The input is not valid JSON (text after the value).")
    return value


_SPACE = re.compile(r"[ \t\n\r]*")


def _skip_space(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    return match.end() if match else at
