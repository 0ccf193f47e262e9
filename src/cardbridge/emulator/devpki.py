"""A development PKI: a CA made once per folder, and a synthetic Norwegian citizen.

Nothing here is for production. The CA key lives in the developer's data folder (or a
test's temporary folder), never in the package. The citizen has a *synthetic*
fødselsnummer (the month plus 80, as the Norwegian test population uses), so it can never
be a real person's number.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cardbridge.errors import InvalidInputError
from cardbridge.model import Purpose

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

KEY_CHOICES = ("ec-p256", "ec-p384", "rsa-2048")

_W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def _check_digit(digits: str, weights: tuple[int, ...]) -> int | None:
    rest = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    digit = 0 if rest == 0 else 11 - rest
    return None if digit == 10 else digit


def synthetic_fodselsnummer(birth: dt.date, individual: int = 494) -> str:
    """A synthetic fødselsnummer for ``birth``: month + 80, valid mod-11 check digits.

    ``individual`` (000–999) is tried upwards until both check digits exist.
    """
    for number in range(individual, individual + 1000):
        base = f"{birth.day:02d}{birth.month + 80:02d}{birth.year % 100:02d}{number % 1000:03d}"
        k1 = _check_digit(base, _W1)
        if k1 is None:
            continue
        k2 = _check_digit(base + str(k1), _W2)
        if k2 is None:
            continue
        return f"{base}{k1}{k2}"
    raise InvalidInputError("no valid fødselsnummer for that date")  # pragma: no cover


def is_valid_fodselsnummer(number: str) -> bool:
    """Both mod-11 check digits of an 11-digit fødselsnummer are right."""
    if len(number) != 11 or not number.isdigit():
        return False
    return _check_digit(number[:9], _W1) == int(number[9]) and _check_digit(number[:10], _W2) == int(number[10])


class Person(Protocol):
    """Whoever a development certificate is issued to: their subject name (each country
    puts its own fields there; see ``Citizen`` and the national cards' emulators)."""

    def name(self) -> x509.Name: ...


@dataclass(frozen=True, slots=True)
class Citizen:
    """The synthetic person on an emulated ID card."""

    given_name: str = "Kari"
    surname: str = "Nordmann"
    birth: dt.date = dt.date(1985, 3, 14)

    @property
    def fodselsnummer(self) -> str:
        return synthetic_fodselsnummer(self.birth)

    @property
    def id_code(self) -> str:
        """ETSI EN 319 412-1 semantics identifier: ``PNONO-`` and the fødselsnummer."""
        return "PNONO-" + self.fodselsnummer

    @property
    def common_name(self) -> str:
        return f"{self.given_name} {self.surname}"

    def name(self) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "NO"),
                x509.NameAttribute(NameOID.COMMON_NAME, self.common_name),
                x509.NameAttribute(NameOID.SURNAME, self.surname),
                x509.NameAttribute(NameOID.GIVEN_NAME, self.given_name),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, self.id_code),
            ]
        )


SATU_CHECK_CHARACTERS = "0123456789ABCDEFHJKLMNPRSTUVWXY"


def satu_check_character(number: str) -> str:
    """The check character of a Finnish SATU (sähköinen asiointitunnus, the electronic
    identification number of the population register's certificates): the 8-digit number
    modulo 31, as an index into ``0-9 A-F H J-N P R-Y`` (the henkilötunnus rule)."""
    if len(number) != 8 or not number.isdigit():
        raise InvalidInputError("a SATU number has 8 digits")
    return SATU_CHECK_CHARACTERS[int(number) % 31]


def is_valid_satu(satu: str) -> bool:
    """8 digits and the right check character."""
    return len(satu) == 9 and satu[:8].isdigit() and satu_check_character(satu[:8]) == satu[8]


@dataclass(frozen=True, slots=True)
class FinnishCitizen:
    """A synthetic holder of a Finnish ID card, named as the population register's
    certificates (FINEID S2) name their holders: ``C=FI``, ``serialNumber`` = the SATU
    (no ETSI ``PNOFI-`` prefix: the Finnish certificates carry the bare SATU),
    ``GN``, ``SN`` and ``CN = "SURNAME GIVENNAME SATU"``, names in capitals. The SATU is in
    the 999… range the population register uses for its test cards, so it is never a
    real person's number."""

    given_name: str = "MAIJA"
    surname: str = "MEIKÄLÄINEN"
    number: str = "99912345"

    @property
    def satu(self) -> str:
        return self.number + satu_check_character(self.number)

    @property
    def id_code(self) -> str:
        return self.satu

    @property
    def common_name(self) -> str:
        return f"{self.surname} {self.given_name} {self.satu}"

    def name(self) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "FI"),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, self.satu),
                x509.NameAttribute(NameOID.GIVEN_NAME, self.given_name),
                x509.NameAttribute(NameOID.SURNAME, self.surname),
                x509.NameAttribute(NameOID.COMMON_NAME, self.common_name),
            ]
        )


def citizen_key_usage(
    *,
    digital_signature: bool = False,
    non_repudiation: bool = False,
    key_agreement: bool = False,
    key_encipherment: bool = False,
    data_encipherment: bool = False,
) -> x509.KeyUsage:
    """The keyUsage of a citizen's certificate: the usages named, no other."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=non_repudiation,
        key_encipherment=key_encipherment,
        data_encipherment=data_encipherment,
        key_agreement=key_agreement,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def generate_key(kind: str) -> PrivateKey:
    """A software key of ``kind`` (one of KEY_CHOICES)."""
    if kind == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise InvalidInputError(f"Unknown key type {kind!r}; choose one of {', '.join(KEY_CHOICES)}.")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class DevCA:
    """The development certificate authority."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    folder: Path

    CERT_FILE = "dev-ca.pem"
    KEY_FILE = "dev-ca-key.pem"

    @property
    def cert_path(self) -> Path:
        return self.folder / self.CERT_FILE

    @classmethod
    def load_or_create(cls, folder: Path) -> DevCA:
        """Load the CA in ``folder``, or make it there (key file mode 0600)."""
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        cert_path, key_path = folder / cls.CERT_FILE, folder / cls.KEY_FILE
        if cert_path.exists() and key_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise InvalidInputError(f"{key_path} is not an EC key")
            return cls(key, x509.load_pem_x509_certificate(cert_path.read_bytes()), folder)
        key = ec.generate_private_key(ec.SECP384R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "NO"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cardbridge development"),
                x509.NameAttribute(NameOID.COMMON_NAME, "cardbridge Development ID Card CA"),
            ]
        )
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA384())
        )
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(key, cert, folder)

    def issue(
        self,
        public_key: PublicKey,
        citizen: Person,
        purpose: Purpose,
        *,
        not_before: dt.datetime | None = None,
        days: int = 3 * 365,
        key_usage: x509.KeyUsage | None = None,
        extended_key_usage: list[x509.ObjectIdentifier] | None = None,
        extensions: Sequence[x509.ExtensionType] = (),
    ) -> x509.Certificate:
        """A citizen certificate for ``public_key``: authentication (digitalSignature,
        clientAuth) or signing (nonRepudiation). ``key_usage`` and ``extended_key_usage``
        override the defaults (tests make wrong certificates with them); ``extensions`` are
        added, not critical (an OCSP address, certificate policies, …)."""
        start = not_before or (_now() - dt.timedelta(days=1))
        if key_usage is None:
            auth = purpose is Purpose.AUTHENTICATION
            key_usage = citizen_key_usage(digital_signature=auth, non_repudiation=not auth)
        if extended_key_usage is None and purpose is Purpose.AUTHENTICATION:
            extended_key_usage = [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (
            x509.CertificateBuilder()
            .subject_name(citizen.name())
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if extended_key_usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage(extended_key_usage), critical=False)
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(self.key, hashes.SHA384())
