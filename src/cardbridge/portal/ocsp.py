"""Asking an OCSP responder whether the citizen's certificate is revoked (RFC 6960).

The responder is the one in the certificate's Authority Information Access extension, or a
designated responder the portal configures together with its pinned certificate. Each
request carries a fresh nonce (RFC 8954) that the response must echo. A response counts
only when:

- it is signed by the issuing CA, by a responder certificate that CA issued with
  id-kp-OCSPSigning (AIA mode), or by the pinned certificate (designated mode);
- it answers for exactly this certificate (issuer name and key hash, serial number);
- its ``thisUpdate`` is within the allowed skew (15 minutes) of the validation time, and
  its ``nextUpdate``, if any, has not passed;
- the status is ``good``: ``revoked`` and ``unknown`` are refused.

HTTP goes through :mod:`urllib` (the validator is synchronous), with a total time limit
(5 s by default), ``http``/``https`` URLs only, and a cap on the response size.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from asn1crypto import x509 as asn1x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from cardbridge.portal.errors import (
    OcspInvalidResponseError,
    OcspNonceMismatchError,
    OcspRevokedError,
    OcspSignerUntrustedError,
    OcspStaleError,
    OcspUnavailableError,
    OcspUnknownError,
)

DEFAULT_TIMEOUT = 5.0
DEFAULT_ALLOWED_SKEW = dt.timedelta(minutes=15)
MAX_RESPONSE_BYTES = 256 * 1024
NONCE_BYTES = 32


@dataclass(frozen=True, slots=True)
class OcspConfig:
    """How to ask for a certificate's status."""

    url: str | None = None  # a designated responder; None: the certificate's AIA responder
    responder_certificate: x509.Certificate | None = None  # pinned; required with ``url``
    timeout: float = DEFAULT_TIMEOUT
    allowed_skew: dt.timedelta = DEFAULT_ALLOWED_SKEW
    require_nonce: bool = True


def _check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OcspUnavailableError(f"The OCSP responder URL is not http(s): {url!r}.")
    return url


def _key_hash(public_key_der_bit_string: bytes) -> bytes:
    return hashlib.sha1(public_key_der_bit_string, usedforsecurity=False).digest()


def _crypto_key_hash(key: object) -> bytes:
    """SHA-1 of the subjectPublicKey BIT STRING (RFC 6960 ResponderID byKey)."""
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return b""
    return x509.SubjectKeyIdentifier.from_public_key(key).digest


def _verify_signed(
    public_key: object,
    signature: bytes,
    data: bytes,
    hash_algorithm: hashes.HashAlgorithm | None,
    signature_oid: x509.ObjectIdentifier,
) -> bool:
    """Whether ``signature`` over ``data`` verifies with ``public_key`` (ECDSA or RSA)."""
    if hash_algorithm is None:
        return False
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(public_key, rsa.RSAPublicKey):
            if signature_oid == SignatureAlgorithmOID.RSASSA_PSS:
                pad: padding.AsymmetricPadding = padding.PSS(
                    mgf=padding.MGF1(hash_algorithm), salt_length=padding.PSS.AUTO
                )
            else:
                pad = padding.PKCS1v15()
            public_key.verify(signature, data, pad, hash_algorithm)
        else:
            return False
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        return False
    return True


def _valid_at(cert: x509.Certificate, at: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= at <= cert.not_valid_after_utc


class OcspChecker:
    """Checks one certificate's status per call; holds no state between calls."""

    def __init__(self, config: OcspConfig) -> None:
        if (config.url is None) != (config.responder_certificate is None):
            raise ValueError("A designated OCSP responder needs both its URL and its pinned certificate.")
        if config.url is not None:
            _check_url(config.url)
        if not config.timeout > 0:
            raise ValueError("The OCSP timeout must be positive.")
        self.config = config

    def check(self, subject: asn1x509.Certificate, issuer: asn1x509.Certificate, at: dt.datetime) -> None:
        """Raise an OcspError unless the responder says ``good`` in a valid, fresh response."""
        url = self._url(subject)
        nonce = secrets.token_bytes(NONCE_BYTES)
        serial = int(subject.serial_number)
        issuer_name_hash = hashlib.sha1(issuer.subject.dump(), usedforsecurity=False).digest()
        issuer_key_hash = _key_hash(issuer.public_key["public_key"].contents[1:])
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate_by_hash(issuer_name_hash, issuer_key_hash, serial, hashes.SHA1())  # noqa: S303 - CertID
            .add_extension(x509.OCSPNonce(nonce), critical=False)
            .build()
            .public_bytes(serialization.Encoding.DER)
        )
        body = self._post(url, request)
        try:
            response = ocsp.load_der_ocsp_response(body)
        except ValueError as exc:
            raise OcspInvalidResponseError(f"The OCSP response cannot be parsed: {exc}") from exc
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise OcspInvalidResponseError(f"The OCSP responder answered {response.response_status.name}.")
        try:
            self._check_signer(response, issuer, issuer_key_hash, at)
            self._check_nonce(response, nonce)
            single = self._find_single(response, serial, issuer_name_hash, issuer_key_hash)
        except ValueError as exc:  # cryptography parses some parts lazily
            raise OcspInvalidResponseError(f"The OCSP response is malformed: {exc}") from exc
        self._check_times(single, at)
        status = single.certificate_status
        if status is ocsp.OCSPCertStatus.REVOKED:
            when = single.revocation_time_utc
            raise OcspRevokedError(
                "The certificate is revoked.", revokedAt=when.isoformat() if when is not None else None
            )
        if status is not ocsp.OCSPCertStatus.GOOD:
            raise OcspUnknownError("The OCSP responder does not know the certificate.")

    def _url(self, subject: asn1x509.Certificate) -> str:
        if self.config.url is not None:
            return self.config.url
        for url in subject.ocsp_urls:
            if urllib.parse.urlsplit(url).scheme in ("http", "https"):
                return _check_url(url)
        raise OcspUnavailableError("The certificate names no OCSP responder and none is configured.")

    def _post(self, url: str, request: bytes) -> bytes:
        deadline = time.monotonic() + self.config.timeout
        http_request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s)
            url,
            data=request,
            method="POST",
            headers={"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"},
        )
        try:
            with urllib.request.urlopen(http_request, timeout=self.config.timeout) as reply:  # noqa: S310
                if reply.status != 200:
                    raise OcspUnavailableError(f"The OCSP responder answered HTTP {reply.status}.")
                chunks: list[bytes] = []
                size = 0
                while True:
                    if time.monotonic() > deadline:
                        raise OcspUnavailableError("The OCSP responder did not answer in time.")
                    chunk = reply.read(16384)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise OcspUnavailableError("The OCSP response is too large.")
                    chunks.append(chunk)
        except OcspUnavailableError:
            raise
        except urllib.error.HTTPError as exc:
            raise OcspUnavailableError(f"The OCSP responder answered HTTP {exc.code}.") from exc
        except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, bad URLs
            raise OcspUnavailableError(f"The OCSP responder cannot be reached: {exc}") from exc
        return b"".join(chunks)

    def _check_signer(
        self, response: ocsp.OCSPResponse, issuer: asn1x509.Certificate, issuer_key_hash: bytes, at: dt.datetime
    ) -> None:
        tbs, signature = response.tbs_response_bytes, response.signature
        hash_algorithm, oid = response.signature_hash_algorithm, response.signature_algorithm_oid
        pinned = self.config.responder_certificate
        if pinned is not None:
            key = pinned.public_key()
            if not self._names_signer(response, _crypto_key_hash(key), pinned.subject.public_bytes()):
                raise OcspSignerUntrustedError("The OCSP response is not from the pinned responder.")
            if not _valid_at(pinned, at):
                raise OcspSignerUntrustedError("The pinned OCSP responder certificate is not valid now.")
            if not _verify_signed(key, signature, tbs, hash_algorithm, oid):
                raise OcspSignerUntrustedError("The OCSP response's signature does not verify with the pinned key.")
            return
        issuer_key = serialization.load_der_public_key(issuer.public_key.dump())
        if self._names_signer(response, issuer_key_hash, issuer.subject.dump()):
            if not _verify_signed(issuer_key, signature, tbs, hash_algorithm, oid):
                raise OcspSignerUntrustedError("The OCSP response's signature does not verify with the CA's key.")
            return
        for cert in response.certificates:
            key = cert.public_key()
            if not self._names_signer(response, _crypto_key_hash(key), cert.subject.public_bytes()):
                continue
            if asn1x509.Name.load(cert.issuer.public_bytes()) != issuer.subject or not _verify_signed(
                issuer_key,
                cert.signature,
                cert.tbs_certificate_bytes,
                cert.signature_hash_algorithm,
                cert.signature_algorithm_oid,
            ):
                raise OcspSignerUntrustedError("The OCSP responder's certificate was not issued by the CA.")
            try:
                eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            except x509.ExtensionNotFound:
                eku = x509.ExtendedKeyUsage([])
            if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
                raise OcspSignerUntrustedError("The OCSP responder's certificate lacks id-kp-OCSPSigning.")
            if not _valid_at(cert, at):
                raise OcspSignerUntrustedError("The OCSP responder's certificate is not valid now.")
            if not _verify_signed(key, signature, tbs, hash_algorithm, oid):
                raise OcspSignerUntrustedError("The OCSP response's signature does not verify.")
            return
        raise OcspSignerUntrustedError("The OCSP response is signed neither by the CA nor by a responder it named.")

    @staticmethod
    def _names_signer(response: ocsp.OCSPResponse, key_hash: bytes, name_der: bytes) -> bool:
        if response.responder_key_hash is not None:
            return bool(key_hash) and hmac.compare_digest(response.responder_key_hash, key_hash)
        if response.responder_name is not None:
            return bool(asn1x509.Name.load(response.responder_name.public_bytes()) == asn1x509.Name.load(name_der))
        return False  # pragma: no cover - a ResponderID is one of the two

    def _check_nonce(self, response: ocsp.OCSPResponse, nonce: bytes) -> None:
        try:
            echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            if self.config.require_nonce:
                raise OcspNonceMismatchError("The OCSP response does not echo the request's nonce.") from None
            return
        if not hmac.compare_digest(echoed, nonce):
            raise OcspNonceMismatchError("The OCSP response carries another nonce than the request.")

    @staticmethod
    def _find_single(
        response: ocsp.OCSPResponse, serial: int, name_hash: bytes, key_hash: bytes
    ) -> ocsp.OCSPSingleResponse:
        for single in response.responses:
            if (
                single.serial_number == serial
                and isinstance(single.hash_algorithm, hashes.SHA1)
                and single.issuer_name_hash == name_hash
                and single.issuer_key_hash == key_hash
            ):
                return single
        raise OcspInvalidResponseError("The OCSP response is not about the certificate asked for.")

    def _check_times(self, single: ocsp.OCSPSingleResponse, at: dt.datetime) -> None:
        skew = self.config.allowed_skew
        this_update = single.this_update_utc
        if not at - skew <= this_update <= at + skew:
            raise OcspStaleError(
                f"The OCSP response's thisUpdate {this_update.isoformat()} is more than {skew} "
                "from the validation time."
            )
        next_update = single.next_update_utc
        if next_update is not None and next_update < at - skew:
            raise OcspStaleError(f"The OCSP response's nextUpdate {next_update.isoformat()} has passed.")
