"""The one definition of a request: the request schemas of the OpenAPI document
(``server/openapi.json``, ``components.schemas``), checked with fastjsonschema for the HTTP
API (``server/decode.py``) and the native host (``nativemsg/host.py``) alike.

A native command's arguments are the body of the matching endpoint plus ``origin``, which
the extension always sends (:data:`NATIVE_COMMANDS`). A request that fails its schema is
refused with the stable code of the field that failed: ``INVALID_NONCE`` for
``challengeNonce``, ``INVALID_ORIGIN`` for ``origin``, else ``INVALID_ARGUMENT`` (a missing
field or a wrong type is always ``INVALID_ARGUMENT``).

The document is read, and each schema compiled, only when the first request that needs it
arrives: the native host says hello before any of this is imported, and its ``quit`` (no
arguments) needs neither the document nor the schema library.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from cardbridge.errors import InvalidInputError

# native command → the OpenAPI request schema of its arguments (plus ``origin``)
NATIVE_COMMANDS: dict[str, str | None] = {
    "authenticate": "AuthenticateRequest",
    "get-signing-certificate": "SigningCertificateRequest",
    "sign": "SignRequest",
    "quit": None,  # no arguments
}
_NO_ARGUMENTS: dict[str, Any] = {"type": "object", "additionalProperties": False}


# Read and compiled once, when the first request needs them (functools.cache would cost the
# native host's start-up an import).
_SCHEMAS: dict[str, Any] = {}
_VALIDATORS: dict[tuple[str | None, bool], Callable[[Any], Any]] = {}


def request_schemas() -> dict[str, Any]:
    """``components.schemas`` of the OpenAPI document shipped in the package."""
    if not _SCHEMAS:
        import json
        from importlib import resources

        text = resources.files("cardbridge").joinpath("server", "openapi.json").read_text(encoding="utf-8")
        _SCHEMAS.update(json.loads(text)["components"]["schemas"])
    return _SCHEMAS


def schema(name: str | None, *, origin: bool = False) -> dict[str, Any]:
    """The request schema ``name`` (None: no arguments at all); with ``origin``, ``origin``
    is required as well (a native command's arguments)."""
    if name is None:
        return _NO_ARGUMENTS
    definition = dict(request_schemas()[name])
    if origin:
        definition["required"] = [*definition.get("required", ()), "origin"]
    return definition


def fields(name: str | None, *, origin: bool = False) -> tuple[frozenset[str], frozenset[str]]:
    """The required and the optional fields of a request schema."""
    definition = schema(name, origin=origin)
    required = frozenset(definition.get("required", ()))
    return required, frozenset(definition.get("properties", {})) - required


def _validator(name: str | None, origin: bool) -> Callable[[Any], Any]:
    validator = _VALIDATORS.get((name, origin))
    if validator is None:
        import fastjsonschema

        validator = _VALIDATORS[name, origin] = fastjsonschema.compile(schema(name, origin=origin))
    return validator


def check(
    name: str | None, body: object, *, origin: bool = False, what: str = "field", command: str | None = None
) -> dict[str, str]:
    """``body`` when it satisfies the request schema ``name``; else the refusal of the first
    field that does not (:class:`InvalidInputError` or one of its subclasses). ``what``
    names a field in the message (``field`` for a body, ``argument`` for a native command);
    ``command``, the native command whose arguments ``body`` holds, starts the message
    (``authenticate: the argument 'origin' is missing.``)."""
    if name is None and isinstance(body, dict) and not body:
        return body  # quit: nothing to compile
    import fastjsonschema

    try:
        _validator(name, origin)(body)
    except fastjsonschema.JsonSchemaValueException as exc:
        kind, message = _refusal(exc, body, what)
        raise kind(f"{command}: {message[:1].lower()}{message[1:]}" if command else message) from None
    return body  # type: ignore[return-value]  # every property of every request schema is a string


def _refusal(exc: Any, body: object, what: str) -> tuple[type[InvalidInputError], str]:
    """Our words for a schema failure (the error class and its message): the field, what is
    wrong with it; never its value."""
    from collections.abc import Mapping

    from cardbridge.errors import InvalidInputError, InvalidNonceError, InvalidOriginError

    codes: dict[str, type[InvalidInputError]] = {"challengeNonce": InvalidNonceError, "origin": InvalidOriginError}
    path = [str(part) for part in exc.path[1:]]  # exc.path starts with "data"
    definition: Mapping[str, Any] = exc.definition if isinstance(exc.definition, Mapping) else {}
    rule = exc.rule
    if not path:  # the object itself
        if rule == "type" or not isinstance(body, dict):
            return InvalidInputError, "The request must be a JSON object."
        if rule == "required":
            missing = sorted(set(definition.get("required", ())) - body.keys())
            if missing:
                return InvalidInputError, f"The {what} {missing[0]!r} is missing."
        if rule == "additionalProperties":
            unknown = sorted(body.keys() - set(definition.get("properties", {})))
            if unknown:
                return InvalidInputError, f"Unknown {what} {unknown[0][:40]!r}."
        return InvalidInputError, f"The request does not match its schema ({rule})."
    field = path[0]
    value = body.get(field) if isinstance(body, dict) else None
    if rule == "type":
        return InvalidInputError, f"The {what} {field!r} must be a string."
    kind = codes.get(field, InvalidInputError)
    if field == "challengeNonce":
        return kind, "The challenge nonce must have 44 to 128 visible ASCII characters."
    if field == "lang":
        return kind, f"The {what} 'lang' must be a language tag such as nb, nn or en."
    if field in ("certificate", "hash") and rule == "pattern":
        base64 = request_schemas()["SignRequest"]["properties"]["hash"]["pattern"]
        if field == "hash" and isinstance(value, str) and isinstance(body, dict) and _matches(base64, value):
            return kind, f"The hash does not have the length of {body.get('hashFunction')}."
        return kind, f"The {what} {field!r} must be standard base64 with padding."
    if rule == "enum":
        return kind, f"{field} must be one of {', '.join(map(str, definition.get('enum', ())))}."
    if rule == "maxLength":
        return kind, f"The {what} {field!r} is longer than {definition.get('maxLength')} characters."
    return kind, f"The {what} {field!r} is invalid ({rule})."


def _matches(pattern: str, value: str) -> bool:
    import re

    return re.fullmatch(pattern.removeprefix("^").removesuffix("$"), value) is not None


def base64_field(body: Mapping[str, str], key: str) -> bytes:
    """A field that the schema checked to be standard base64 with padding, decoded."""
    import base64

    return base64.b64decode(body[key], validate=True)
