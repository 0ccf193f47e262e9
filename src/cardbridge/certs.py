"""Lenient certificate parsing for what is on a card.

Certificates on real ID cards are not always strict DER, and ``cryptography`` refuses some
of them. asn1crypto parses them leniently, so listing a card and choosing a certificate
never locks a citizen out. Verification (signatures, chains) is done elsewhere, with
``cryptography``.
"""

from __future__ import annotations

import datetime as dt

from asn1crypto import x509 as asn1x509

from cardbridge.errors import InvalidInputError
from cardbridge.model import CertificateInfo, Purpose

_CURVE_BITS = {"secp256r1": 256, "secp384r1": 384, "secp521r1": 521}


def parse_certificate(der: bytes, *, key_id: bytes = b"", label: str = "") -> CertificateInfo:
    """Parse DER into :class:`CertificateInfo`; raises InvalidInputError when it cannot."""
    try:
        cert = asn1x509.Certificate.load(der)
        tbs = cert["tbs_certificate"]
        subject = cert.subject
        spki = cert.public_key
        algorithm = spki.algorithm
        key_type = {"ec": "EC", "rsa": "RSA", "rsassa_pss": "RSA"}.get(algorithm, algorithm.upper())
        curve = spki.curve[1] if algorithm == "ec" else None
        key_size = _CURVE_BITS.get(curve or "", 0) if algorithm == "ec" else spki.bit_size
        names = subject.native
        info = CertificateInfo(
            der=bytes(der),
            subject=format_name(subject),
            issuer=format_name(cert.issuer),
            serial=format(tbs["serial_number"].native, "x"),
            not_before=_utc(tbs["validity"]["not_before"].native),
            not_after=_utc(tbs["validity"]["not_after"].native),
            key_type=key_type,
            key_size=int(key_size),
            curve=curve,
            purpose=certificate_purpose(cert),
            common_name=_first(names.get("common_name")),
            given_name=_first(names.get("given_name")),
            surname=_first(names.get("surname")),
            id_code=_first(names.get("serial_number")),
            country=_first(names.get("country_name")),
            key_id=key_id,
            label=label,
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidInputError(f"The certificate cannot be parsed: {exc}") from exc
    return info


def certificate_purpose(cert: asn1x509.Certificate) -> Purpose:
    """``signing`` when keyUsage has nonRepudiation; ``authentication`` when it has
    digitalSignature and extendedKeyUsage is absent or has clientAuth; else ``other``."""
    key_usage = cert.key_usage_value
    usages = set(key_usage.native) if key_usage is not None else set()
    if "non_repudiation" in usages:
        return Purpose.SIGNING
    if "digital_signature" in usages:
        eku = cert.extended_key_usage_value
        if eku is None or "client_auth" in eku.native:
            return Purpose.AUTHENTICATION
    return Purpose.OTHER


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


def _first(value: object) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
