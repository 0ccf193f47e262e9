"""The portal-side validator of Web eID ``web-eid:1`` auth tokens.

Checks, in order (the first that fails raises its TokenValidationError):

1. the nonce: 44–128 visible ASCII characters; consumed from ``nonce_store`` if one is set;
2. the token: 100–10000 characters, a JSON object without duplicate keys; ``format``
   starts with ``web-eid:1``; ``unverifiedCertificate``, ``algorithm``, ``signature`` are
   strings (``appVersion`` too, when present); the two binary fields are standard base64;
3. ``algorithm`` is one of ES/PS/RS 256/384/512;
4. the certificate parses (leniently: asn1crypto, but its signature BIT STRING must have
   0 unused bits), has a subject serialNumber, keyUsage
   digitalSignature and extendedKeyUsage absent or with clientAuth, and none of the
   disallowed policies;
5. the certificate is valid at ``at``, and chains to a trusted CA (pyhanko-certvalidator);
6. ``algorithm`` fits the key (ES256/P-256, ES384/P-384, ES512/P-521; RS*/PS* and RSA of
   at least ``min_rsa_key_size`` bits);
7. the signature verifies over ``H(origin) || H(nonce)`` (ECDSA signatures are raw r||s);
8. if OCSP is on, the responder says ``good`` (see :mod:`cardbridge.portal.ocsp`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from cardbridge import strictjson
from cardbridge.authtoken import NONCE_MAX_LENGTH, NONCE_MIN_LENGTH, check_nonce, check_origin, signing_input
from cardbridge.errors import ConfigError, InvalidInputError, InvalidNonceError, InvalidOriginError
from cardbridge.model import CryptoAlgorithm, HashFunction, Padding, SignatureAlgorithm
from cardbridge.portal._certificate import (
    ChainValidator,
    PublicKey,
    SubjectCertificate,
    TrustedCertificate,
    check_policies,
    check_purpose,
    check_validity,
    load_trusted_certificates,
    parse_subject_certificate,
)
from cardbridge.portal.errors import (
    AlgorithmKeyMismatchError,
    AlgorithmUnsupportedError,
    NonceError,
    SignatureInvalidError,
    TokenFormatError,
    TokenMalformedError,
    TokenValidationError,
)
from cardbridge.portal.nonces import NonceStore
from cardbridge.portal.ocsp import DEFAULT_ALLOWED_SKEW, DEFAULT_TIMEOUT, OcspChecker, OcspConfig

TOKEN_MIN_LENGTH = 100
TOKEN_MAX_LENGTH = 10000
SUPPORTED_FORMAT_PREFIX = "web-eid:1"

# Estonian Mobile-ID certificates (ESTEID-SK 2015): not ID cards, refused by Web eID too.
DEFAULT_DISALLOWED_POLICIES: frozenset[str] = frozenset(
    {
        "1.3.6.1.4.1.10015.1.3",
        "1.3.6.1.4.1.10015.1.3.1",
        "1.3.6.1.4.1.10015.1.3.2",
        "1.3.6.1.4.1.10015.1.3.3",
    }
)

_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    HashFunction.SHA256: hashes.SHA256,
    HashFunction.SHA384: hashes.SHA384,
    HashFunction.SHA512: hashes.SHA512,
}
_STRING_FIELDS = ("unverifiedCertificate", "algorithm", "signature", "format")
# What check_nonce accepts, as one regular expression: the fast path for valid nonces.
_VALID_NONCE = re.compile(rf"[\x21-\x7e]{{{NONCE_MIN_LENGTH},{NONCE_MAX_LENGTH}}}")


@dataclass(frozen=True, slots=True)
class Identity:
    """The citizen a valid token proves, read from the authentication certificate."""

    id_code: str  # subject serialNumber, e.g. PNONO-01816512375, PNOEE-38001085718
    given_name: str | None
    surname: str | None
    common_name: str | None
    country: str | None
    certificate: bytes  # the authentication certificate, DER exactly as the token carried it
    algorithm: str  # the JWS name the token was signed with


def _b64(value: str, field: str) -> bytes:
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise TokenMalformedError(f"The token's {field} is not standard base64.") from exc
    if not data:
        raise TokenMalformedError(f"The token's {field} is empty.")
    return data


@dataclass(frozen=True, slots=True)
class _Fields:
    certificate: bytes
    algorithm: str
    signature: bytes


def parse_token(token: object) -> _Fields:
    """Length, JSON object, format, field types and base64; raises TokenValidationError."""
    if isinstance(token, str):
        text = token
    elif isinstance(token, dict | Mapping):
        try:
            text = json.dumps(dict(token), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise TokenMalformedError("The token cannot be serialized as JSON.") from exc
    else:
        raise TokenMalformedError(f"The token must be a JSON string or a dict, not {type(token).__name__}.")
    if not TOKEN_MIN_LENGTH <= len(text) <= TOKEN_MAX_LENGTH:
        raise TokenMalformedError(
            f"The token must have {TOKEN_MIN_LENGTH} to {TOKEN_MAX_LENGTH} characters, not {len(text)}."
        )
    if isinstance(token, str):
        try:  # the project's one strict reader: no duplicate keys, NaN, deep nesting or huge numbers
            data = strictjson.loads(text)
        except strictjson.StrictJsonError as exc:
            raise TokenMalformedError(f"The token is not valid JSON: {exc}") from exc
    else:
        data = token
    if not isinstance(data, dict | Mapping):
        raise TokenMalformedError("The token is not a JSON object.")
    for field in _STRING_FIELDS:
        if field not in data:
            raise TokenMalformedError(f"The token has no {field}.")
        if not isinstance(data[field], str):
            raise TokenMalformedError(f"The token's {field} is not a string.")
    if "appVersion" in data and not isinstance(data["appVersion"], str):
        raise TokenMalformedError("The token's appVersion is not a string.")
    if not data["format"].startswith(SUPPORTED_FORMAT_PREFIX):
        raise TokenFormatError(f"The token format {data['format'][:40]!r} is not supported.")
    return _Fields(
        certificate=_b64(data["unverifiedCertificate"], "unverifiedCertificate"),
        algorithm=data["algorithm"],
        signature=_b64(data["signature"], "signature"),
    )


_ALGORITHMS = {
    name: SignatureAlgorithm.from_jws(name)
    for name in (f"{kind}{bits}" for kind in ("ES", "PS", "RS") for bits in ("256", "384", "512"))
}


def parse_algorithm(name: str) -> SignatureAlgorithm:
    """ES/PS/RS 256/384/512, else AlgorithmUnsupportedError."""
    algorithm = _ALGORITHMS.get(name)
    if algorithm is None:
        raise AlgorithmUnsupportedError(f"The algorithm {name[:20]!r} is not supported.")
    return algorithm


def check_key_fits(algorithm: SignatureAlgorithm, key: PublicKey, *, min_rsa_key_size: int) -> None:
    """ES256 needs a P-256 key, ES384 P-384, ES512 P-521; RS*/PS* need RSA."""
    name = algorithm.jws
    if isinstance(key, ec.EllipticCurvePublicKey):
        if _CURVES.get(name) != key.curve.name:
            raise AlgorithmKeyMismatchError(f"{name} does not fit the certificate's {key.curve.name} key.")
        return
    if algorithm.crypto != CryptoAlgorithm.RSA:
        raise AlgorithmKeyMismatchError(f"{name} does not fit the certificate's RSA key.")
    if key.key_size < min_rsa_key_size:
        raise AlgorithmKeyMismatchError(f"The certificate's RSA key has {key.key_size} bits, fewer than allowed.")


def verify_signature(key: PublicKey, algorithm: SignatureAlgorithm, signature: bytes, message: bytes) -> None:
    """Verify ``signature`` over ``message``; ECDSA signatures are raw ``r || s``."""
    hash_algorithm = _HASHES[algorithm.hash_function]()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            half = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * half:
                raise SignatureInvalidError(f"An {algorithm.jws} signature has {2 * half} bytes, not {len(signature)}.")
            der = encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
            key.verify(der, message, ec.ECDSA(hash_algorithm))
        elif algorithm.padding == Padding.PSS:
            pss = padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=padding.PSS.DIGEST_LENGTH)
            key.verify(signature, message, pss, hash_algorithm)
        else:
            key.verify(signature, message, padding.PKCS1v15(), hash_algorithm)
    except (InvalidSignature, ValueError) as exc:
        raise SignatureInvalidError("The token's signature does not verify for this origin and nonce.") from exc


def _load_pinned(certificate: TrustedCertificate) -> x509.Certificate:
    if isinstance(certificate, x509.Certificate):
        return certificate
    try:
        if certificate.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(certificate)
        return x509.load_der_x509_certificate(certificate)
    except ValueError as exc:
        raise ConfigError(f"The OCSP responder certificate cannot be loaded: {exc}") from exc


class AuthTokenValidator:
    """Validates auth tokens for one site; thread-safe; reuse one instance."""

    def __init__(
        self,
        site_origin: str,
        trusted_ca_certificates: Iterable[TrustedCertificate],
        *,
        allow_http_localhost: bool = False,
        disallowed_policies: Iterable[str] = DEFAULT_DISALLOWED_POLICIES,
        min_rsa_key_size: int = 2048,
        ocsp_check: bool = False,
        ocsp_url: str | None = None,
        ocsp_responder_certificate: TrustedCertificate | None = None,
        ocsp_timeout: float = DEFAULT_TIMEOUT,
        ocsp_allowed_skew: dt.timedelta = DEFAULT_ALLOWED_SKEW,
        ocsp_require_nonce: bool = True,
        nonce_store: NonceStore | None = None,
        chain_cache_size: int = 1024,
    ) -> None:
        """``site_origin``: the portal's own origin, as a browser serializes it.

        ``trusted_ca_certificates``: the CAs that issue citizens' authentication
        certificates (DER or PEM bytes, or cryptography certificates).
        ``disallowed_policies``: certificate policy OIDs to refuse (default: Estonian
        Mobile-ID). ``ocsp_check``: ask the certificate's AIA responder, or the designated
        ``ocsp_url`` whose certificate ``ocsp_responder_certificate`` is pinned.
        ``nonce_store``: if given, ``validate`` consumes the nonce from it first.
        ``chain_cache_size``: certificates whose chain result is remembered (0: none).
        """
        try:
            self.site_origin = check_origin(site_origin, allow_http_localhost=allow_http_localhost)
        except InvalidOriginError as exc:
            raise ConfigError(f"The site origin is invalid: {exc.message}") from exc
        self._chain = ChainValidator(load_trusted_certificates(trusted_ca_certificates), cache_size=chain_cache_size)
        disallowed = frozenset(disallowed_policies)
        bad = sorted(oid for oid in disallowed if not isinstance(oid, str) or not _OID.match(oid))
        if bad:
            raise ConfigError(f"Not dotted OIDs: {bad!r}.")
        self.disallowed_policies = disallowed
        self.min_rsa_key_size = min_rsa_key_size
        self.nonce_store = nonce_store
        self._ocsp: OcspChecker | None = None
        if ocsp_url is not None or ocsp_responder_certificate is not None:
            if not ocsp_check:
                raise ConfigError("An OCSP responder is configured but ocsp_check is off.")
            if ocsp_url is None or ocsp_responder_certificate is None:
                raise ConfigError("A designated OCSP responder needs both ocsp_url and ocsp_responder_certificate.")
        if ocsp_check:
            config = OcspConfig(
                url=ocsp_url,
                responder_certificate=None
                if ocsp_responder_certificate is None
                else _load_pinned(ocsp_responder_certificate),
                timeout=ocsp_timeout,
                allowed_skew=ocsp_allowed_skew,
                require_nonce=ocsp_require_nonce,
            )
            try:
                self._ocsp = OcspChecker(config)
            except (ValueError, TokenValidationError) as exc:
                raise ConfigError(str(exc)) from exc
        # Parsed certificates that passed the purpose, identity and policy checks.
        self._parsed: dict[bytes, SubjectCertificate] = {}
        self._parsed_limit = max(chain_cache_size, 0)
        self._parsed_lock = threading.Lock()

    def validate(self, token: str | Mapping[str, Any], nonce: str, at: dt.datetime | None = None) -> Identity:
        """The citizen's identity if ``token`` answers ``nonce`` for this site; else raise.

        ``token`` is the JSON the login page posted (a string, or the object already
        decoded). ``at`` is the validation time (aware datetime; default now). Every
        refusal is a TokenValidationError with a stable ``code``.
        """
        moment = _moment(at)
        if not isinstance(nonce, str) or not _VALID_NONCE.fullmatch(nonce):
            try:
                check_nonce(nonce)
            except InvalidNonceError as exc:
                raise NonceError(exc.message) from exc
            raise NonceError("The challenge nonce is invalid.")  # pragma: no cover - check_nonce agrees
        if self.nonce_store is not None:
            self.nonce_store.consume(nonce)
        fields = parse_token(token)
        algorithm = parse_algorithm(fields.algorithm)
        cert = self._certificate(fields.certificate)
        check_validity(cert.not_before, cert.not_after, moment, "The certificate")
        chain = self._chain.validate(cert, moment)
        check_key_fits(algorithm, cert.public_key, min_rsa_key_size=self.min_rsa_key_size)
        message = signing_input(self.site_origin, nonce, algorithm.hash_function)
        verify_signature(cert.public_key, algorithm, fields.signature, message)
        if self._ocsp is not None:
            self._ocsp.check(cert.asn1, chain.issuer, moment)
        return Identity(
            id_code=cert.id_code,
            given_name=cert.given_name,
            surname=cert.surname,
            common_name=cert.common_name,
            country=cert.country,
            certificate=cert.der,
            algorithm=algorithm.jws,
        )

    def _certificate(self, der: bytes) -> SubjectCertificate:
        with self._parsed_lock:
            cert = self._parsed.get(der)
        if cert is not None:
            return cert
        cert = parse_subject_certificate(der)
        check_purpose(cert)
        check_policies(cert, self.disallowed_policies)
        if self._parsed_limit:
            with self._parsed_lock:
                while len(self._parsed) >= self._parsed_limit:
                    del self._parsed[next(iter(self._parsed))]  # the oldest first
                self._parsed[der] = cert
        return cert


def _moment(at: dt.datetime | None) -> dt.datetime:
    if at is None:
        return dt.datetime.now(dt.UTC)
    if not isinstance(at, dt.datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInputError("The validation time must be an aware datetime.")
    return at.astimezone(dt.UTC)
