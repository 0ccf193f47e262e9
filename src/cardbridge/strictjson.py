"""One strict JSON reader for everything that comes from outside (HTTP bodies, native
messages): RFC 8259 JSON and nothing more, with limits.

- a key may appear only once in an object;
- no ``NaN``, ``Infinity`` or ``-Infinity``; no number that becomes infinite;
- a number has at most :data:`MAX_NUMBER_CHARS` characters (Python would otherwise spend
  quadratic time on, or refuse with a bare ``ValueError``, an integer of 4,301 digits);
- arrays and objects nest at most :data:`MAX_DEPTH` deep (checked before parsing, so a
  deep input never reaches the recursive decoder).

Every refusal is a :class:`StrictJsonError` (a ``ValueError``) with a short message and no
part of the input beyond a key's first characters.

Only the standard library, and cheap to import: the native host loads it at start-up, and
reading a small request loads neither ``json`` nor ``re`` (together more than half of the
host's start-up). The parsing is the ``json`` module's own scanner (``_json.make_scanner``,
the C scanner behind ``json.loads``; the pure-Python one where there is none) with this
module's hooks; the bracket count that decides whether the depth must be measured, and the
white space around the value, are plain ``str`` methods; ``re`` (the depth scan) only for an
input with more brackets than :data:`MAX_DEPTH`, ``json`` only for an input that is not JSON.
"""

from __future__ import annotations

import math
import sys
from itertools import accumulate

try:
    from _json import make_scanner  # what json.JSONDecoder uses in CPython
except ImportError:  # pragma: no cover - an interpreter without the C accelerator
    from json.scanner import make_scanner

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from typing import Any

__all__ = ["MAX_DEPTH", "MAX_NUMBER_CHARS", "StrictJsonError", "loads"]

MAX_DEPTH = 32
MAX_NUMBER_CHARS = 64

_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SPACE = " \t\n\r"  # JSON's white space, and nothing else


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


_PATTERNS: list[re.Pattern[str]] = []


def depth(text: str) -> int:
    """How deep arrays and objects nest in ``text`` (brackets inside strings do not count)."""
    if not _PATTERNS:
        import re

        # A JSON string (the decoder checks its escapes), or an unterminated one up to the
        # end, so the scan stays linear; what is left outside strings holds the brackets.
        _PATTERNS[:] = [re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL), re.compile(r"[^\[\]{}]+")]
    string, not_bracket = _PATTERNS
    brackets = not_bracket.sub("", string.sub("", text))
    return max(accumulate(_STEP[c] for c in brackets), default=0)


class _Rules:
    """The scanner's settings (the attributes ``json.JSONDecoder`` gives it): strict strings,
    and this module's hooks for objects, numbers and constants."""

    strict = True
    object_hook = None
    array_hook = None  # Python 3.15's scanner asks for it
    object_pairs_hook = staticmethod(_unique)
    parse_int = staticmethod(_int)
    parse_float = staticmethod(_float)
    parse_constant = staticmethod(_constant)

    def __init__(self) -> None:
        self.memo: dict[str, str] = {}  # the pure-Python scanner's key cache


_SCAN = make_scanner(_Rules())  # type: ignore[arg-type]  # a duck-typed context (typeshed says so too)


def loads(data: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value in ``data`` (UTF-8 when bytes), or StrictJsonError."""
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise StrictJsonError("The input is not valid UTF-8.") from None
    else:
        text = data
    # Nesting cannot be deeper than the number of opening brackets (those in strings too).
    if text.count("[") + text.count("{") > max_depth and depth(text) > max_depth:
        raise StrictJsonError(f"Arrays and objects nest more than {max_depth} deep.")
    start = len(text) - len(text.lstrip(_SPACE))
    try:
        value, end = _SCAN(text, start)
    except StrictJsonError:
        raise
    except (ValueError, RecursionError, StopIteration):  # StopIteration: no value where one must be
        raise StrictJsonError("The input is not valid JSON.") from None
    except SystemError:
        # Python 3.11's C scanner reports a syntax error as json.decoder.JSONDecodeError, which
        # it looks up in sys.modules only: before json.decoder is loaded, it fails with
        # SystemError instead. Load it, and read again for the real answer.
        if "json.decoder" in sys.modules:
            raise
        import json.decoder  # noqa: F401

        return loads(text, max_depth=max_depth)
    if text[end:].lstrip(_SPACE):
        raise StrictJsonError("The input is not valid JSON (text after the value).")
    return value
