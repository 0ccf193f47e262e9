"""A synthetic Belgian citizen for the emulated Belgian eID card.

The national register number (rijksregisternummer / numéro de registre national) is
YYMMDD, a three-digit day sequence (odd for men, even for women: 001–997 and 002–998)
and two check digits: 97 minus the first nine digits mod 97, with a 2 in front of them for
people born in 2000 or later. The emulator's citizen has the sequence number 999, which
the National Register never gives, so the number — valid in form and check digits — is no
real person's.

Real Belgian eID certificates name the holder as ``C=BE``, ``CN=<first given name>
<SURNAME> (Authentication)`` (or ``(Signature)``), ``SN=<surname>``, ``GN=<given names>``
and ``serialNumber=<the 11 digits>`` (no ETSI ``PNOBE-`` prefix).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from cardbridge.model import Purpose

SYNTHETIC_SEQUENCE = 999  # never given: men 001–997, women 002–998


def national_number_check(first9: str, birth_year: int) -> int:
    """The check digits for the first nine digits of a national register number."""
    base = int(("2" if birth_year >= 2000 else "") + first9)
    return 97 - base % 97


def national_number(birth: dt.date, sequence: int) -> str:
    """The 11-digit national register number for a birth date and day sequence."""
    if not 0 <= sequence <= 999:
        raise ValueError("the day sequence has three digits")
    first9 = f"{birth:%y%m%d}{sequence:03d}"
    return f"{first9}{national_number_check(first9, birth.year):02d}"


def is_valid_national_number(number: str) -> bool:
    """Eleven digits whose check digits fit a birth in the 1900s or from 2000 on."""
    if len(number) != 11 or not number.isdigit():
        return False
    check = int(number[9:])
    return check in (97 - int(number[:9]) % 97, 97 - int("2" + number[:9]) % 97)


def card_number(serial: int) -> str:
    """A 12-digit eID card number: ten digits and their remainder mod 97 (97 for 0)."""
    first10 = f"{serial % 10**10:010d}"
    return f"{first10}{int(first10) % 97 or 97:02d}"


@dataclass(frozen=True, slots=True)
class BelgianCitizen:
    """The synthetic holder of an emulated Belgian eID card."""

    given_names: str = "Jan Pieter"
    surname: str = "Peeters"
    birth: dt.date = dt.date(1990, 7, 21)
    gender: str = "M"  # as the ID file writes it: M, or V/F/W (999 is odd: a man's sequence)
    birth_place: str = "Leuven"
    street: str = "Naamsestraat 22"
    zip_code: str = "3000"
    municipality: str = "Leuven"

    @property
    def national_number(self) -> str:
        return national_number(self.birth, SYNTHETIC_SEQUENCE)

    @property
    def first_given_name(self) -> str:
        return self.given_names.split()[0]

    def common_name(self, purpose: Purpose) -> str:
        role = "Signature" if purpose is Purpose.SIGNING else "Authentication"
        return f"{self.first_given_name} {self.surname} ({role})"

    def subject(self, purpose: Purpose) -> x509.Name:
        """The certificate subject as on real Belgian eID certificates."""
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "BE"),
                x509.NameAttribute(NameOID.COMMON_NAME, self.common_name(purpose)),
                x509.NameAttribute(NameOID.SURNAME, self.surname),
                x509.NameAttribute(NameOID.GIVEN_NAME, self.given_names),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, self.national_number),
            ]
        )


@dataclass(frozen=True, slots=True)
class CertificateHolder:
    """The citizen as one certificate names them (a ``devpki.Person``)."""

    citizen: BelgianCitizen
    purpose: Purpose

    def name(self) -> x509.Name:
        return self.citizen.subject(self.purpose)
