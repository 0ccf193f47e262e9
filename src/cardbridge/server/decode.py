"""Request bodies, decoded without aiohttp: bytes in, checked fields out, or an
:class:`InvalidInputError`. Every endpoint's body passes here, so the property tests and
the fuzz harness (``fuzz/fuzz_http_request.py``) exercise exactly what the server runs.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cardbridge.authtoken import check_nonce
from cardbridge.errors import InvalidInputError
from cardbridge.i18n import check_language_tag
from cardbridge.model import HASH_LENGTHS
from cardbridge.strictjson import StrictJsonError, loads

BASE64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")

AUTHENTICATE = (frozenset({"challengeNonce"}), frozenset({"lang", "origin"}))
SIGNING_CERTIFICATE = (frozenset[str](), frozenset({"lang", "origin"}))
SIGN = (frozenset({"certificate", "hash", "hashFunction"}), frozenset({"lang", "origin"}))


def decode_body(data: bytes, required: frozenset[str], optional: frozenset[str]) -> dict[str, str]:
    """``data`` as a JSON object (strict: see :mod:`cardbridge.strictjson`) with exactly the
    ``required`` fields, some ``optional`` ones, and only strings as values."""
    try:
        body: Any = loads(data)
    except StrictJsonError as exc:
        raise InvalidInputError(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidInputError("The request body must be a JSON object.")
    missing = sorted(required - body.keys())
    if missing:
        raise InvalidInputError(f"The field {missing[0]!r} is missing.")
    unknown = sorted(body.keys() - required - optional)
    if unknown:
        raise InvalidInputError(f"Unknown field {unknown[0][:40]!r}.")
    for key, value in body.items():
        if not isinstance(value, str):
            raise InvalidInputError(f"The field {key!r} must be a string.")
    return body


def check_lang(value: str | None) -> str | None:
    """A language tag as the page gave it (``nb``, ``en-GB`` …), or None: the one rule of
    :func:`cardbridge.i18n.check_language_tag`."""
    check_language_tag(value)
    return value


def decode_base64(body: dict[str, str], key: str) -> bytes:
    """The field ``key`` as standard base64 with padding."""
    value = body[key]
    if not BASE64.match(value):
        raise InvalidInputError(f"The field {key!r} must be standard base64 with padding.")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:  # pragma: no cover - the pattern already refused it
        raise InvalidInputError(f"The field {key!r} must be standard base64 with padding.") from exc


# -- the endpoints' bodies -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthenticateRequest:
    challenge_nonce: str
    lang: str | None = None
    origin: str | None = None  # must equal the Origin header (the route checks)


@dataclass(frozen=True, slots=True)
class SigningCertificateRequest:
    lang: str | None = None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class SignRequest:
    certificate: bytes
    digest: bytes
    hash_function: str
    lang: str | None = None
    origin: str | None = None


def decode_authenticate(data: bytes) -> AuthenticateRequest:
    """``POST /v1/authenticate``: ``{challengeNonce, lang?, origin?}``."""
    body = decode_body(data, *AUTHENTICATE)
    nonce = check_nonce(body["challengeNonce"])
    return AuthenticateRequest(nonce, check_lang(body.get("lang")), body.get("origin"))


def decode_signing_certificate(data: bytes) -> SigningCertificateRequest:
    """``POST /v1/signing-certificate``: ``{lang?, origin?}``."""
    body = decode_body(data, *SIGNING_CERTIFICATE)
    return SigningCertificateRequest(check_lang(body.get("lang")), body.get("origin"))


def decode_sign(data: bytes) -> SignRequest:
    """``POST /v1/sign``: ``{certificate, hash, hashFunction, lang?, origin?}``; the hash
    must have the length of its hash function."""
    body = decode_body(data, *SIGN)
    hash_function = body["hashFunction"]
    if hash_function not in HASH_LENGTHS:
        raise InvalidInputError(f"hashFunction must be one of {', '.join(HASH_LENGTHS)}.")
    certificate = decode_base64(body, "certificate")
    digest = decode_base64(body, "hash")
    if len(digest) != HASH_LENGTHS[hash_function]:
        raise InvalidInputError(f"The hash does not have the length of {hash_function}.")
    return SignRequest(certificate, digest, hash_function, check_lang(body.get("lang")), body.get("origin"))


DECODERS: dict[str, Callable[[bytes], object]] = {
    "/v1/authenticate": decode_authenticate,
    "/v1/signing-certificate": decode_signing_certificate,
    "/v1/sign": decode_sign,
}
