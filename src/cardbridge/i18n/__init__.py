"""Texts a person reads, in Norwegian bokmål (``nb``), nynorsk (``nn``) and English (``en``).

Language (:func:`resolve_language`): the first of ours among the request's ``lang`` (or
``Accept-Language``), ``--lang``, the config file's ``lang`` and the system locale
(``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``); else English when one of them named a
language we lack (a Finnish or Estonian citizen reads English sooner than Norwegian); else,
when nothing names a language (no ``lang``, a C or POSIX locale), bokmål.

The texts are gettext messages. The code holds them in English, marked where they are used::

    i18n.gettext(lang, "Wrong PIN.")
    i18n.ngettext(lang, "You have {n} try left.", "You have {n} tries left.", tries, n=tries)
    i18n.pgettext(lang, "button", "Sign")           # a context tells same words apart
    TITLES = {"config": N_("Config file")}           # marked here, translated later

``make i18n`` extracts them into ``cardbridge.pot`` (``pybabel extract``), updates each
language's ``locale/LANG/LC_MESSAGES/cardbridge.po`` from it and compiles the ``.mo`` files
that are committed next to them and shipped in the package. At run time only the standard
library's :mod:`gettext` reads them, one catalogue per language, the first time the
language is used. Placeholders are ``str.format`` fields (``{origin}``); every message is
formatted, so a literal brace is written ``{{``. English is the messages' own language and
has no catalogue. ``tests/test_i18n.py`` checks that every message is translated in every
language with the same placeholders and all its plural forms, and that the ``.pot`` and
the ``.mo`` files are up to date.

Every function here is pure (the catalogues are read once and cached), so the HTTP server,
the native host and the portal can call :func:`error_text` as well as the CLI does.
"""

from __future__ import annotations

import os
import re
import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import gettext as _gettext

    from cardbridge.errors import CardbridgeError

__all__ = [
    "DEFAULT_LANGUAGE",
    "DOMAIN",
    "LANGUAGES",
    "LANGUAGE_TAG_PATTERN",
    "LOCALE_DIR",
    "N_",
    "SOURCE_LANGUAGE",
    "accept_language",
    "check_language_tag",
    "error_message",
    "error_text",
    "gettext",
    "is_language_tag",
    "ngettext",
    "npgettext",
    "our_language",
    "pgettext",
    "placeholders",
    "request_language",
    "resolve_language",
    "system_language",
    "system_languages",
    "translation",
]

# A new language: its code here, and its catalogue (README, "Adding a language").
LANGUAGES = ("nb", "nn", "en")
DEFAULT_LANGUAGE = "nb"
SOURCE_LANGUAGE = "en"  # the language the messages are written in: no catalogue
DOMAIN = "cardbridge"
LOCALE_DIR = os.path.join(os.path.dirname(__file__), "locale")  # a str: no pathlib at start-up
# What a caller may send as ``lang`` (the HTTP API's and the native host's): a language tag
# such as nb, nn-NO or en_GB — ours or another, which falls back — and nothing else.
# The OpenAPI document states the same pattern for ``lang`` (a test keeps them equal).
LANGUAGE_TAG_PATTERN = r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8}){0,3}"
_LANGUAGE_TAG = re.compile(LANGUAGE_TAG_PATTERN)

_catalogues: dict[str, _gettext.NullTranslations] = {}


def N_(message: str) -> str:
    """Marks ``message`` for extraction where it is defined; translate it where it is used."""
    return message


def translation(lang: str) -> _gettext.NullTranslations:
    """The catalogue of ``lang`` (English for a language that is not ours), read on first use."""
    if lang not in LANGUAGES:
        lang = our_language(lang) or SOURCE_LANGUAGE
    found = _catalogues.get(lang)
    if found is None:
        import gettext as _gettext

        found = _gettext.NullTranslations()  # English: the messages' own language
        if lang != SOURCE_LANGUAGE:
            try:
                with open(os.path.join(LOCALE_DIR, lang, "LC_MESSAGES", f"{DOMAIN}.mo"), "rb") as file:
                    found = _gettext.GNUTranslations(file)
            except OSError:
                pass  # an install without its catalogues still speaks (English); the package test checks them
        found = _catalogues.setdefault(lang, found)
    return found


def gettext(lang: str, message: str, /, **values: object) -> str:
    """``message`` in ``lang``, formatted with ``values``."""
    return translation(lang).gettext(message).format(**values)


def ngettext(lang: str, singular: str, plural: str, n: int, /, **values: object) -> str:
    """The form for the number ``n`` in ``lang`` (its Plural-Forms rule), formatted with
    ``values`` (which name ``n`` as the message does: ``n=3``, ``days=3``)."""
    return translation(lang).ngettext(singular, plural, n).format(**values)


def pgettext(lang: str, context: str, message: str, /, **values: object) -> str:
    """:func:`gettext` for ``message`` in ``context`` (same English, other meaning)."""
    return translation(lang).pgettext(context, message).format(**values)


def npgettext(lang: str, context: str, singular: str, plural: str, n: int, /, **values: object) -> str:
    """:func:`ngettext` in ``context``."""
    return translation(lang).npgettext(context, singular, plural, n).format(**values)


def _names_a_language(tag: str | None) -> bool:
    """True when ``tag`` (a language tag or locale name) names a language: its base subtag is
    2-3 letters (not ``C``, ``POSIX``, ``*`` or ``x-private``)."""
    if not tag:
        return False
    base = re.split(r"[-_.@]", tag.strip(), maxsplit=1)[0]
    return re.fullmatch(r"[A-Za-z]{2,3}", base) is not None


def system_languages() -> list[str]:
    """The languages the system locale names, first choice first: ``LANGUAGE``'s list (as
    GNU gettext reads it: only when the locale is not C or POSIX), then the first of
    ``LC_ALL``, ``LC_MESSAGES`` and ``LANG`` that is set. Empty when the locale names none
    (C, POSIX, nothing set). The environment only, as gettext reads it: the process's
    ``setlocale`` state is not consulted (a library may have changed it, and it would make
    the answer depend on what ran before)."""
    value = next((v for v in (os.environ.get(n) for n in ("LC_ALL", "LC_MESSAGES", "LANG")) if v), None)
    if not _names_a_language(value):
        return []
    assert value is not None
    listed = [tag for tag in os.environ.get("LANGUAGE", "").split(":") if _names_a_language(tag)]
    return [*listed, value]


def system_language() -> str | None:
    """The system locale's language when it is one of ours (``no`` means bokmål)."""
    for tag in system_languages():
        ours = our_language(tag)
        if ours:
            return ours
    return None


def our_language(tag: str) -> str | None:
    """Our language for a language tag or locale name (``en-GB``, ``nb_NO.UTF-8``): its
    base subtag when it is one of ours, ``no`` (Norwegian) meaning bokmål; else None. The
    one rule for a request's ``lang``, ``Accept-Language`` and the system locale."""
    base = re.split(r"[-_.@]", tag.strip(), maxsplit=1)[0].lower()
    if base == "no":
        return "nb"
    return base if base in LANGUAGES else None


def accept_language(header: str) -> list[str]:
    """The language tags of an HTTP ``Accept-Language`` header, most wanted first (by ``q``,
    then by order); ``q=0`` (not wanted) and ``*`` left out. Give them to
    :func:`resolve_language` as the request's choices."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header[:1000].split(",")):
        tag, *parameters = (piece.strip() for piece in part.split(";"))
        q = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0 and is_language_tag(tag):
            weighted.append((-q, index, tag))
    return [tag for _, _, tag in sorted(weighted)]


def resolve_language(*choices: str | None, system: bool = True) -> str:
    """The language to speak: ours for the first of ``choices`` (then, with ``system``, of
    the system locale's :func:`system_languages`) that is ours; else English when one of
    them names a language we lack; else (nothing names a language) bokmål."""
    named = [choice for choice in choices if choice and _names_a_language(choice)]
    if system:
        named += system_languages()
    for tag in named:
        ours = our_language(tag)
        if ours:
            return ours
    return SOURCE_LANGUAGE if named else DEFAULT_LANGUAGE


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
    :func:`check_language_tag`) and ``fallbacks`` (the bridge's ``--lang`` or config
    ``lang``): :func:`resolve_language` of them, so a ``lang`` we lack (``et``, ``fi``) means
    English unless a fallback or the system names one of ours."""
    check_language_tag(value)
    return resolve_language(value if isinstance(value, str) else None, *fallbacks)


def placeholders(template: str) -> frozenset[str]:
    """The names of the ``{placeholders}`` in ``template``."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


def error_text(code: str, lang: str, **values: object) -> str:
    """What a person reads for the error ``code`` (a :class:`~cardbridge.errors.Code` or its
    string): what happened and what to do, in ``lang``.

    ``values`` may carry details (``retries_left=2``, ``minLength=4``, ``maxLength=8``) that
    a more precise message of the code uses (:func:`cardbridge.i18n.errors.variant`), so
    ``error_text("PIN_INCORRECT", "en", retries_left=2)`` names the tries left and
    ``error_text("PIN_INCORRECT", "en")`` does not. Values that are ``None`` count as not
    given. A code the catalogue does not know gives a plain message that names the code.
    """
    from cardbridge.i18n.errors import ERROR_TEXTS, variant

    code = str(code)
    message = ERROR_TEXTS.get(code)
    if message is None:
        return gettext(lang, "Something went wrong ({code}). Try again, or contact support.", code=code)
    given = {name: value for name, value in values.items() if value is not None}
    return variant(code, lang, given) or gettext(lang, message)


def error_message(error: CardbridgeError, lang: str) -> str:
    """:func:`error_text` for an exception: its code, ``retries_left`` and details."""
    values: dict[str, object] = {**error.details, "retries_left": error.retries_left}
    return error_text(str(error.code), lang, **values)
