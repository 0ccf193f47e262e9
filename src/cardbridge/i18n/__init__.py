"""Texts a person reads, in Norwegian bokmål (``nb``), nynorsk (``nn``) and English (``en``).

Language: the request's ``lang``, else ``--lang``, else the config file's ``lang``, else the
system locale, else bokmål (:func:`resolve_language`). Every message exists in all three
languages with the same placeholders (a test checks it).

The catalogues are plain dictionaries in this package, one module per reader: the PIN
dialog (:mod:`.dialog`), error codes (:mod:`.errors`), the command line (:mod:`.cli`) and
``cardbridge doctor`` (:mod:`.doctor`). Every function here is pure — no I/O, no state —
so the HTTP server, the native host and the portal can call :func:`error_text` for a
``problem+json`` title or a login page as well as the CLI does.

Keys: a key ending in ``.one`` is the form of its base key for the number 1; :func:`text`
picks it when a number placeholder is 1.
"""

from __future__ import annotations

import locale
import os
import re
import string
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cardbridge.i18n import cli as _cli
from cardbridge.i18n import dialog as _dialog
from cardbridge.i18n import doctor as _doctor
from cardbridge.i18n import errors as _errors

if TYPE_CHECKING:
    from cardbridge.errors import CardbridgeError

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "LANGUAGE_TAG_PATTERN",
    "MESSAGES",
    "check_language_tag",
    "error_message",
    "error_text",
    "is_language_tag",
    "our_language",
    "placeholders",
    "request_language",
    "resolve_language",
    "system_language",
    "text",
]

LANGUAGES = ("nb", "nn", "en")
DEFAULT_LANGUAGE = "nb"
# What a caller may send as ``lang`` (the HTTP API's and the native host's): a language tag
# such as nb, nn-NO or en_GB — ours or another, which falls back — and nothing else.
# The OpenAPI document states the same pattern for ``lang`` (a test keeps them equal).
LANGUAGE_TAG_PATTERN = r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8}){0,3}"
_LANGUAGE_TAG = re.compile(LANGUAGE_TAG_PATTERN)


def _merge(*catalogues: Mapping[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    merged: dict[str, dict[str, str]] = {}
    for catalogue in catalogues:
        for key, entry in catalogue.items():
            if key in merged:
                raise RuntimeError(f"i18n: message key {key!r} is defined twice")
            merged[key] = entry
    return merged


MESSAGES: dict[str, dict[str, str]] = _merge(_dialog.MESSAGES, _errors.MESSAGES, _cli.MESSAGES, _doctor.MESSAGES)


def system_language() -> str | None:
    """The system locale's language when it is one of ours (``no`` means bokmål)."""
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(variable)
        if value:
            break
    else:
        try:
            value = locale.getlocale(locale.LC_MESSAGES)[0]
        except (AttributeError, ValueError):
            value = None
    return our_language(value) if value else None


def our_language(tag: str) -> str | None:
    """Our language for a language tag or locale name (``en-GB``, ``nb_NO.UTF-8``): its
    base subtag when it is one of ours, ``no`` (Norwegian) meaning bokmål; else None. The
    one rule for a request's ``lang``, ``Accept-Language`` and the system locale."""
    base = re.split(r"[-_.@]", tag.strip(), maxsplit=1)[0].lower()
    if base == "no":
        return "nb"
    return base if base in LANGUAGES else None


def resolve_language(*choices: str | None) -> str:
    """Ours for the first of ``choices`` that has one, else the system's, else bokmål."""
    for choice in choices:
        ours = our_language(choice) if choice else None
        if ours:
            return ours
    return system_language() or DEFAULT_LANGUAGE


def is_language_tag(value: object) -> bool:
    """True for a language tag a caller may send as ``lang`` (``nb``, ``nn-NO``, ``en_GB``,
    ``de``): 2-3 letters, then at most three ``-``/``_`` parts of 1-8 letters or digits."""
    return isinstance(value, str) and _LANGUAGE_TAG.fullmatch(value) is not None


def check_language_tag(value: object) -> None:
    """The one rule for a request's ``lang`` (HTTP API and native host): absent (None) or a
    language tag, else INVALID_ARGUMENT."""
    if value is not None and not is_language_tag(value):
        from cardbridge.errors import InvalidInputError

        raise InvalidInputError("The field 'lang' must be a language tag such as nb, nn or en.")


def request_language(value: object, *fallbacks: str | None) -> str:
    """The language for a request that sent ``lang`` = ``value`` (checked with
    :func:`check_language_tag`): ``value`` when it is one of ours, else the first of
    ``fallbacks`` that is, else the system's, else bokmål."""
    check_language_tag(value)
    return resolve_language(value if isinstance(value, str) else None, *fallbacks)


def placeholders(template: str) -> frozenset[str]:
    """The names of the ``{placeholders}`` in ``template``."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


def _number_is_one(key: str, values: Mapping[str, object]) -> bool:
    names = placeholders(MESSAGES[key][DEFAULT_LANGUAGE])
    return any(values.get(name) == 1 and not isinstance(values.get(name), bool) for name in names)


def text(key: str, lang: str, **values: object) -> str:
    """The message ``key`` in ``lang`` (bokmål when missing), formatted with ``values``;
    its ``.one`` form when one of its numbers is 1."""
    if f"{key}.one" in MESSAGES and _number_is_one(key, values):
        key = f"{key}.one"
    entry = MESSAGES[key]
    return entry.get(lang, entry[DEFAULT_LANGUAGE]).format(**values)


def error_text(code: str, lang: str, **values: object) -> str:
    """What a person reads for the error ``code`` (a :class:`~cardbridge.errors.Code` or its
    string): what happened and what to do, in ``lang``.

    ``values`` may carry details (``retries_left=2``, ``minLength=4``, ``maxLength=8``);
    the variant of the message that uses the most of the given values is chosen, so
    ``error_text("PIN_INCORRECT", "en", retries_left=2)`` names the tries left and
    ``error_text("PIN_INCORRECT", "en")`` does not. Values that are ``None`` count as not
    given. A code the catalogue does not know gives a plain message that names the code.
    """
    given = {name: value for name, value in values.items() if value is not None}
    base = f"error.{code}"
    if base not in MESSAGES:
        return text("error.unknown", lang, code=str(code))
    best = base
    best_names: frozenset[str] = frozenset()
    for key in MESSAGES:
        if not key.startswith(base + ".") or key.endswith(".one"):
            continue
        names = placeholders(MESSAGES[key][DEFAULT_LANGUAGE])
        if names <= given.keys() and len(names) > len(best_names):
            best, best_names = key, names
    return text(best, lang, **{name: given[name] for name in best_names})


def error_message(error: CardbridgeError, lang: str) -> str:
    """:func:`error_text` for an exception: its code, ``retries_left`` and details."""
    values: dict[str, object] = {**error.details, "retries_left": error.retries_left}
    return error_text(str(error.code), lang, **values)
