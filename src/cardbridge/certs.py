"""Lenient certificate parsing for what is on a card.

Certificates on real ID cards are not always strict DER, and ``cryptography`` refuses some
of them. asn1crypto parses them leniently, so listing a card and choosing a certificate
never locks a citizen out. Verification (signatures, chains) is done elsewhere, with
``cryptography``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from typing import TypedDict

from asn1crypto import x509 as asn1x509

from cardbridge.errors import InvalidInputError
from cardbridge.model import CertificateInfo, KeyType, Purpose

_CURVE_BITS = {"secp256r1": 256, "secp384r1": 384, "secp521r1": 521}


def parse_certificate(der: bytes, *, key_id: bytes = b"", label: str = "") -> CertificateInfo:
    """Parse DER into :class:`CertificateInfo`; raises InvalidInputError when it cannot."""
    try:
        cert = asn1x509.Certificate.load(der)
        tbs = cert["tbs_certificate"]
        subject = cert.subject
        spki = cert.public_key
        algorithm = spki.algorithm
        key_type: KeyType | str = {"ec": KeyType.EC, "rsa": KeyType.RSA, "rsassa_pss": KeyType.RSA}.get(
            algorithm, algorithm.upper()
        )
        curve = spki.curve[1] if algorithm == "ec" else None
        key_size = _CURVE_BITS.get(curve or "", 0) if algorithm == "ec" else spki.bit_size
        names = subject.native
        info = CertificateInfo(
            der=bytes(der),
            subject=format_name(subject),
            issuer=format_name(cert.issuer),
            serial=format(tbs["serial_number"].native, "x"),
            not_before=utc_time(tbs["validity"]["not_before"].native),
            not_after=utc_time(tbs["validity"]["not_after"].native),
            key_type=key_type,
            key_size=int(key_size),
            curve=curve,
            purpose=certificate_purpose(cert),
            id_code=first_value(names.get("serial_number")),
            **holder_names(names),
            key_id=key_id,
            label=label,
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidInputError(f"The certificate cannot be parsed: {exc}") from exc
    return info


def login_purpose_problem(key_usage: Collection[str], extended_key_usage: Collection[str] | None) -> str | None:
    """The one rule for what a login certificate is, used by both sides: None when a
    certificate with ``key_usage`` and ``extended_key_usage`` (asn1crypto's names; None when
    the extension is absent) is accepted for login, else why not. keyUsage must have
    digitalSignature; extendedKeyUsage must be absent or have clientAuth.

    The token validator (``cardbridge.portal``) accepts a login only with such a
    certificate, and the bridge never signs a caller's hash with the key of one: that
    signature would be a login token for any site."""
    if "digital_signature" not in key_usage:
        return "The certificate's keyUsage does not allow digitalSignature."
    if extended_key_usage is not None and "client_auth" not in extended_key_usage:
        return "The certificate's extendedKeyUsage does not allow clientAuth."
    return None


def _usages(cert: asn1x509.Certificate) -> tuple[frozenset[str], frozenset[str] | None]:
    key_usage = cert.key_usage_value
    eku = cert.extended_key_usage_value
    return (
        frozenset(key_usage.native) if key_usage is not None else frozenset(),
        frozenset(eku.native) if eku is not None else None,
    )


def certificate_purpose(cert: asn1x509.Certificate) -> Purpose:
    """``signing`` when keyUsage has nonRepudiation (even when the certificate is also
    accepted for login: see :func:`allows_login`); ``authentication`` when it passes
    :func:`login_purpose_problem`; else ``other``."""
    usages, eku = _usages(cert)
    if "non_repudiation" in usages:
        return Purpose.SIGNING
    if login_purpose_problem(usages, eku) is None:
        return Purpose.AUTHENTICATION
    return Purpose.OTHER


def allows_login(der: bytes) -> bool:
    """A validator accepts a login made with this certificate's key
    (:func:`login_purpose_problem`). A certificate that cannot be parsed counts as one:
    refusing is the safe side."""
    try:
        usages, eku = _usages(asn1x509.Certificate.load(der))
    except (ValueError, TypeError, KeyError, AttributeError):
        return True
    return login_purpose_problem(usages, eku) is None


def public_key_of(der: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of a certificate (two certificates of one key share it)."""
    try:
        return bytes(asn1x509.Certificate.load(der).public_key.dump())
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidInputError(f"The certificate cannot be parsed: {exc}") from exc


_SHORT_NAMES = {
    "common_name": "CN",
    "country_name": "C",
    "organization_name": "O",
    "organizational_unit_name": "OU",
    "locality_name": "L",
    "state_or_province_name": "ST",
    "surname": "SN",
    "given_name": "GN",
    "serial_number": "serialNumber",
    "organization_identifier": "organizationIdentifier",
    "email_address": "emailAddress",
}


def format_name(name: asn1x509.Name) -> str:
    """A distinguished name in RFC 4514 order (most specific first), e.g. ``CN=…,C=NO``."""
    parts: list[str] = []
    for rdn in reversed(list(name.chosen)):
        for ava in rdn:
            kind = ava["type"].native
            value = ava["value"].native
            text = str(value).replace("\\", "\\\\").replace(",", "\\,").replace("+", "\\+")
            parts.append(f"{_SHORT_NAMES.get(kind, kind)}={text}")
    return ",".join(parts)


class HolderNames(TypedDict):
    """The holder's names in a certificate's subject, read the same way by the bridge
    (:class:`~cardbridge.model.CertificateInfo`) and the validator (``cardbridge.portal``)."""

    common_name: str | None
    given_name: str | None
    surname: str | None
    country: str | None


def holder_names(names: Mapping[str, object]) -> HolderNames:
    """The names in a subject (asn1crypto's ``native`` form), the first of each kind."""
    return HolderNames(
        common_name=first_value(names.get("common_name")),
        given_name=first_value(names.get("given_name")),
        surname=first_value(names.get("surname")),
        country=first_value(names.get("country_name")),
    )


def first_value(value: object) -> str | None:
    """An attribute's value as text: the first when the name has several, else None."""
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)


def utc_time(value: object) -> dt.datetime:
    """A certificate time (asn1crypto's ``native``) as an aware UTC datetime; TypeError
    when it is not a time."""
    if not isinstance(value, dt.datetime):
        raise TypeError("not a time")
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
