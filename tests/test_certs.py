import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from cardbridge.certs import parse_certificate
from cardbridge.emulator.devpki import Citizen, DevCA, generate_key
from cardbridge.errors import InvalidInputError
from cardbridge.model import Purpose


def _ku(**on: bool) -> x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{n: on.get(n, False) for n in names})


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> DevCA:
    return DevCA.load_or_create(tmp_path_factory.mktemp("ca"))


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_authentication_certificate_fields(ca: DevCA) -> None:
    key = generate_key("ec-p256")
    info = parse_certificate(_der(ca.issue(key.public_key(), Citizen(), Purpose.AUTHENTICATION)), key_id=b"\x01")
    assert info.purpose is Purpose.AUTHENTICATION
    assert (info.key_type, info.key_size, info.curve) == ("EC", 256, "secp256r1")
    assert info.given_name == "Kari" and info.surname == "Nordmann" and info.country == "NO"
    assert info.id_code == Citizen().id_code
    assert info.holder_name == "Kari Nordmann"
    assert info.subject.startswith("serialNumber=PNONO-")
    assert info.not_before < dt.datetime.now(dt.UTC) < info.not_after
    assert info.key_id == b"\x01"


@pytest.mark.parametrize(
    ("key_usage", "eku", "purpose"),
    [
        (_ku(digital_signature=True), None, Purpose.AUTHENTICATION),
        (
            _ku(digital_signature=True, key_agreement=True),
            [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION],
            Purpose.AUTHENTICATION,
        ),
        (_ku(digital_signature=True), [ExtendedKeyUsageOID.EMAIL_PROTECTION], Purpose.OTHER),
        (_ku(content_commitment=True), None, Purpose.SIGNING),
        (_ku(digital_signature=True, content_commitment=True), None, Purpose.SIGNING),
        (_ku(key_encipherment=True), None, Purpose.OTHER),
    ],
)
def test_purpose(
    ca: DevCA, key_usage: x509.KeyUsage, eku: list[x509.ObjectIdentifier] | None, purpose: Purpose
) -> None:
    key = generate_key("ec-p256")
    cert = ca.issue(key.public_key(), Citizen(), Purpose.OTHER, key_usage=key_usage, extended_key_usage=eku)
    assert parse_certificate(_der(cert)).purpose is purpose


def test_rsa_key_size(ca: DevCA) -> None:
    key = generate_key("rsa-2048")
    info = parse_certificate(_der(ca.issue(key.public_key(), Citizen(), Purpose.SIGNING)))
    assert (info.key_type, info.key_size, info.curve) == ("RSA", 2048, None)


def test_garbage_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        parse_certificate(b"\x30\x03\x02\x01\x01")


def test_ca_is_made_once(tmp_path: Path) -> None:
    first = DevCA.load_or_create(tmp_path)
    second = DevCA.load_or_create(tmp_path)
    assert first.certificate == second.certificate
    assert (tmp_path / DevCA.KEY_FILE).stat().st_mode & 0o077 == 0
