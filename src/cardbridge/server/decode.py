"""Request bodies, decoded without aiohttp: bytes in, checked fields out, or an
:class:`InvalidInputError`. Every endpoint's body passes here, so the property tests and
the fuzz harness (``fuzz/fuzz_http_request.py``) exercise exactly what the server runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cardbridge import schema
from cardbridge.errors import InvalidInputError
from cardbridge.model import HashFunction
from cardbridge.strictjson import StrictJsonError, loads


def decode_body(data: bytes, name: str) -> dict[str, str]:
    """``data`` as a JSON object (strict: see :mod:`cardbridge.strictjson`) that satisfies
    the OpenAPI request schema ``name`` (:mod:`cardbridge.schema`)."""
    try:
        body = loads(data)
    except StrictJsonError as exc:
        raise InvalidInputError(f"The request body is not valid JSON: {exc}") from None
    return schema.check(name, body)


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
    hash_function: HashFunction
    lang: str | None = None
    origin: str | None = None


def decode_authenticate(data: bytes) -> AuthenticateRequest:
    """``POST /v1/authenticate``: ``{challengeNonce, lang?, origin?}``."""
    body = decode_body(data, "AuthenticateRequest")
    return AuthenticateRequest(body["challengeNonce"], body.get("lang"), body.get("origin"))


def decode_signing_certificate(data: bytes) -> SigningCertificateRequest:
    """``POST /v1/signing-certificate``: ``{lang?, origin?}``."""
    body = decode_body(data, "SigningCertificateRequest")
    return SigningCertificateRequest(body.get("lang"), body.get("origin"))


def decode_sign(data: bytes) -> SignRequest:
    """``POST /v1/sign``: ``{certificate, hash, hashFunction, lang?, origin?}``; the hash
    must have the length of its hash function."""
    body = decode_body(data, "SignRequest")
    certificate = schema.base64_field(body, "certificate")
    digest = schema.base64_field(body, "hash")
    return SignRequest(certificate, digest, HashFunction(body["hashFunction"]), body.get("lang"), body.get("origin"))


DECODERS: dict[str, Callable[[bytes], object]] = {
    "/v1/authenticate": decode_authenticate,
    "/v1/signing-certificate": decode_signing_certificate,
    "/v1/sign": decode_sign,
}
