"""The portal side: challenge nonces and the auth token validator.

A login with cardbridge (or the Web eID app), on the portal's server::

    store = InMemoryNonceStore()            # or RedisNonceStore(redis.Redis(...))
    validator = AuthTokenValidator(
        site_origin="https://login.example.no",
        trusted_ca_certificates=[ca_pem_bytes],
    )
    nonce = store.issue()                   # put it in the login page and the session
    ...
    store.consume(nonce)                    # once, within 5 minutes
    identity = validator.validate(token_json, nonce)
    identity.id_code                        # "PNONO-01816512375"

(or pass ``nonce_store=store`` to the validator, and ``validate`` consumes the nonce first).

Every refusal raises :class:`TokenValidationError` (a
:class:`cardbridge.errors.CardbridgeError`); ``.code`` is one of these stable strings:

``INVALID_NONCE``
    the nonce does not have 44–128 visible ASCII characters.
``NONCE_UNKNOWN`` / ``NONCE_EXPIRED`` / ``NONCE_USED``
    the store did not issue it (or forgot it) / issued it longer ago than its time to live /
    already saw it consumed. (Redis forgets expired nonces, so RedisNonceStore says
    ``NONCE_UNKNOWN`` for those; a used one it marks, for the time to live.)
``NONCE_STORE_UNAVAILABLE``
    the nonce store (Redis) cannot be reached.
``TOKEN_MALFORMED``
    not 100–10000 characters, not a JSON object, a duplicate or missing field, a field of
    the wrong type, not standard base64.
``TOKEN_FORMAT_UNSUPPORTED``
    ``format`` does not start with ``web-eid:1``.
``TOKEN_ALGORITHM_UNSUPPORTED``
    ``algorithm`` is not ES256/384/512, PS256/384/512 or RS256/384/512.
``CERTIFICATE_MALFORMED``
    the certificate cannot be parsed (even leniently), or has an unsupported key type.
``CERTIFICATE_NO_IDENTITY``
    the subject has no serialNumber.
``CERTIFICATE_WRONG_PURPOSE``
    keyUsage lacks digitalSignature, or extendedKeyUsage is present without clientAuth.
``CERTIFICATE_POLICY_DISALLOWED``
    the certificate has a disallowed policy (default: Estonian Mobile-ID).
``CERTIFICATE_NOT_YET_VALID`` / ``CERTIFICATE_EXPIRED``
    the certificate, or a CA certificate on its chain, is not valid at the validation time.
``CERTIFICATE_UNTRUSTED``
    no valid chain to a trusted CA certificate.
``TOKEN_ALGORITHM_KEY_MISMATCH``
    the algorithm does not fit the key (ES256 for a P-384 key, RS256 for an EC key, an RSA
    key under 2048 bits).
``TOKEN_SIGNATURE_INVALID``
    the signature does not verify over ``H(origin) || H(nonce)``: another site, another
    nonce, or tampering.
``OCSP_UNAVAILABLE``
    no responder, network error, timeout, HTTP error.
``OCSP_INVALID_RESPONSE``
    unparsable or unsuccessful response, or one about another certificate.
``OCSP_NONCE_MISMATCH``
    the response does not echo the request's nonce.
``OCSP_SIGNER_UNTRUSTED``
    signed by neither the CA, a responder the CA delegated to, nor the pinned responder.
``OCSP_STALE``
    ``thisUpdate`` more than 15 minutes from the validation time, or ``nextUpdate`` passed.
``OCSP_REVOKED`` / ``OCSP_UNKNOWN``
    the responder says revoked / unknown.

The subclasses (``SignatureInvalidError``, ``NonceUsedError``, …) are in
:mod:`cardbridge.portal.errors`.
"""

from __future__ import annotations

from pathlib import Path

from cardbridge.portal.errors import NonceError, TokenValidationError
from cardbridge.portal.nonces import InMemoryNonceStore, NonceStore, RedisNonceStore, generate_nonce
from cardbridge.portal.validator import DEFAULT_DISALLOWED_POLICIES, AuthTokenValidator, Identity

JS_CLIENT = Path(__file__).parent / "static" / "cardbridge.js"
"""The JavaScript client for the login page (an ES module): serve it to the page."""

__all__ = [
    "DEFAULT_DISALLOWED_POLICIES",
    "JS_CLIENT",
    "AuthTokenValidator",
    "Identity",
    "InMemoryNonceStore",
    "NonceError",
    "NonceStore",
    "RedisNonceStore",
    "TokenValidationError",
    "generate_nonce",
]
