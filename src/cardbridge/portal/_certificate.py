"""The subject certificate of a token: lenient parsing, purpose and policy checks, chain.

Certificates on real ID cards are not always strict DER (``cryptography`` refuses some),
so they are parsed with asn1crypto and their chain is built and checked by
pyhanko-certvalidator, which works on asn1crypto objects. Only the public key goes to
``cryptography``, loaded from the SubjectPublicKeyInfo bytes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import threading
from collections import OrderedDict
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from asn1crypto import pem
from asn1crypto import x509 as asn1x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import ExpiredError, NotYetValidError
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from cardbridge.certs import first_value, holder_names, login_purpose_problem, utc_time
from cardbridge.errors import ConfigError
from cardbridge.portal.errors import (
    CertificateExpiredError,
    CertificateMalformedError,
    CertificateNoIdentityError,
    CertificateNotYetValidError,
    CertificatePolicyError,
    CertificatePurposeError,
    CertificateUntrustedError,
)

log = logging.getLogger(__name__)

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
TrustedCertificate = bytes | x509.Certificate

_T = TypeVar("_T")

# Revocation is checked by cardbridge's own OCSP client (cardbridge.portal.ocsp), with the
# nonce and time rules of Web eID; the chain check itself never fetches anything.
_NO_REVOCATION = CertRevTrustPolicy(
    RevocationCheckingPolicy(
        ee_certificate_rule=RevocationCheckingRule.NO_CHECK,
        intermediate_ca_cert_rule=RevocationCheckingRule.NO_CHECK,
    )
)


@dataclass(frozen=True, slots=True)
class SubjectCertificate:
    """A parsed authentication certificate and what the validator needs from it."""

    der: bytes
    asn1: asn1x509.Certificate
    public_key: PublicKey
    id_code: str
    given_name: str | None
    surname: str | None
    common_name: str | None
    country: str | None
    not_before: dt.datetime
    not_after: dt.datetime
    policies: frozenset[str]
    key_usage: frozenset[str]  # asn1crypto names: "digital_signature", …
    extended_key_usage: frozenset[str] | None  # None: the extension is absent


def parse_subject_certificate(der: bytes) -> SubjectCertificate:
    """Parse leniently (asn1crypto) and load the key; raises CertificateMalformedError."""
    try:
        cert = asn1x509.Certificate.load(der, strict=True)
        tbs = cert["tbs_certificate"]
        validity = tbs["validity"]
        not_before = utc_time(validity["not_before"].native)
        not_after = utc_time(validity["not_after"].native)
        names = cert.subject.native
        if not isinstance(names, dict):
            raise TypeError("the subject is not a name")
        _ = cert.issuer.native, tbs["serial_number"].native
        key = serialization.load_der_public_key(cert.public_key.dump())
        policies_ext = cert.certificate_policies_value
        policies = frozenset(p["policy_identifier"].dotted for p in policies_ext) if policies_ext else frozenset()
        key_usage_ext = cert.key_usage_value
        key_usage = frozenset(key_usage_ext.native) if key_usage_ext is not None else frozenset()
        eku_ext = cert.extended_key_usage_value
        eku = frozenset(eku_ext.native) if eku_ext is not None else None
        _ = cert.ocsp_urls
        signature_contents = cert["signature_value"].contents
    except Exception as exc:  # asn1crypto parses lazily and raises many kinds of errors
        raise CertificateMalformedError(f"The certificate cannot be parsed: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise CertificateMalformedError(f"The certificate's key type is not supported: {type(key).__name__}.")
    # The signature is a whole number of octets: its BIT STRING must say 0 unused bits. A
    # count of k makes asn1crypto drop the last k bits, and a signature ending in zero bits
    # would still verify for bytes nobody signed in that form.
    if not signature_contents or signature_contents[0] != 0:
        raise CertificateMalformedError("The certificate's signature is a BIT STRING with unused bits (not DER).")
    id_code = first_value(names.get("serial_number"))
    if not id_code:
        raise CertificateNoIdentityError("The certificate's subject has no serialNumber (identification code).")
    return SubjectCertificate(
        der=der,
        asn1=cert,
        public_key=key,
        id_code=id_code,
        **holder_names(names),
        not_before=not_before,
        not_after=not_after,
        policies=policies,
        key_usage=key_usage,
        extended_key_usage=eku,
    )


def check_purpose(cert: SubjectCertificate) -> None:
    """keyUsage must have digitalSignature; extendedKeyUsage must be absent or have clientAuth
    (``cardbridge.certs.login_purpose_problem``: the bridge refuses to sign a caller's hash
    with the key of any certificate this accepts)."""
    problem = login_purpose_problem(cert.key_usage, cert.extended_key_usage)
    if problem is not None:
        raise CertificatePurposeError(problem)


def check_policies(cert: SubjectCertificate, disallowed: frozenset[str]) -> None:
    """Refuse a certificate with any of the ``disallowed`` policy OIDs (dotted)."""
    found = sorted(cert.policies & disallowed)
    if found:
        raise CertificatePolicyError(f"The certificate has a disallowed policy: {', '.join(found)}.", policies=found)


def check_validity(not_before: dt.datetime, not_after: dt.datetime, at: dt.datetime, what: str) -> None:
    if at < not_before:
        raise CertificateNotYetValidError(f"{what} is not valid before {not_before.isoformat()}.")
    if at > not_after:
        raise CertificateExpiredError(f"{what} expired at {not_after.isoformat()}.")


def load_trusted_certificates(certificates: Iterable[TrustedCertificate]) -> list[asn1x509.Certificate]:
    """DER or PEM bytes (a PEM bundle may hold several) or cryptography certificates."""
    out: list[asn1x509.Certificate] = []
    for item in certificates:
        if isinstance(item, x509.Certificate):
            blobs = [item.public_bytes(serialization.Encoding.DER)]
        elif isinstance(item, bytes | bytearray | memoryview):
            data = bytes(item)
            if pem.detect(data):
                blobs = [der for kind, _, der in pem.unarmor(data, multiple=True) if kind == "CERTIFICATE"]
            else:
                blobs = [data]
        else:
            raise ConfigError(
                f"A trusted CA certificate must be bytes or an x509.Certificate, not {type(item).__name__}."
            )
        for der in blobs:
            try:
                cert = asn1x509.Certificate.load(der, strict=True)
                _ = cert.subject.native, cert.public_key.native
            except Exception as exc:
                raise ConfigError(f"A trusted CA certificate cannot be parsed: {exc}") from exc
            out.append(cert)
    if not out:
        raise ConfigError("At least one trusted CA certificate is needed.")
    return out


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to its end from synchronous code, even under a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from a coroutine (e.g. an aiohttp handler): asyncio.run would refuse, so run
    # the chain check on a thread of its own. It blocks the caller's loop, as any
    # synchronous call does; portals should call validate() in an executor.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cardbridge-chain") as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass(frozen=True, slots=True)
class ValidatedChain:
    """A chain pyhanko-certvalidator accepted, and when every certificate in it is valid."""

    issuer: asn1x509.Certificate
    valid_from: dt.datetime
    valid_until: dt.datetime


class ChainValidator:
    """Builds and checks the chain to a trusted CA with pyhanko-certvalidator.

    Results are cached per certificate (LRU, ``cache_size`` entries; 0 turns it off) with
    the time window in which every certificate on the path is valid: a chain does not
    depend on the validation time otherwise (revocation is checked separately).
    """

    def __init__(self, trusted: Sequence[asn1x509.Certificate], *, cache_size: int = 1024) -> None:
        self._trusted = list(trusted)
        self._cache_size = cache_size
        self._cache: OrderedDict[bytes, ValidatedChain] = OrderedDict()
        self._lock = threading.Lock()

    def validate(self, cert: SubjectCertificate, at: dt.datetime) -> ValidatedChain:
        with self._lock:
            hit = self._cache.get(cert.der)
            if hit is not None:
                self._cache.move_to_end(cert.der)
        if hit is not None and hit.valid_from <= at <= hit.valid_until:
            return hit
        chain = self._validate(cert, at)
        if self._cache_size > 0:
            with self._lock:
                self._cache[cert.der] = chain
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return chain

    def _validate(self, cert: SubjectCertificate, at: dt.datetime) -> ValidatedChain:
        async def run() -> Any:
            context = ValidationContext(
                trust_roots=self._trusted,
                moment=at,
                allow_fetching=False,
                revinfo_policy=_NO_REVOCATION,
            )
            validator = CertificateValidator(cert.asn1, validation_context=context)
            return await validator.async_validate_path()

        try:
            path = _run(run())
        except ExpiredError as exc:
            raise CertificateExpiredError(f"A certificate in the chain has expired: {exc}") from exc
        except NotYetValidError as exc:
            raise CertificateNotYetValidError(f"A certificate in the chain is not valid yet: {exc}") from exc
        except Exception as exc:  # PathBuildingError, PathValidationError, and anything on odd input
            log.debug("chain validation failed", exc_info=True)
            raise CertificateUntrustedError(f"The certificate does not chain to a trusted CA: {exc}") from exc
        certs = list(path.iter_certs(include_root=True))
        if len(certs) < 2:  # the leaf is itself one of the trusted certificates
            raise CertificateUntrustedError("The certificate is itself a trusted CA certificate.")
        starts = [utc_time(c["tbs_certificate"]["validity"]["not_before"].native) for c in certs]
        ends = [utc_time(c["tbs_certificate"]["validity"]["not_after"].native) for c in certs]
        chain = ValidatedChain(issuer=certs[-2], valid_from=max(starts), valid_until=min(ends))
        check_validity(chain.valid_from, chain.valid_until, at, "A certificate in the chain")
        return chain
