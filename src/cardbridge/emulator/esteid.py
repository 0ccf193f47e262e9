"""The Estonian ID card (IDEMIA profile, cards issued since December 2018), emulated.

Built from the card's public chip application description (TD-ID1-Chip-App) as OpenSC
(``card-esteid2018.c``, ``pkcs15-esteid2018.c``) and web-eid's libelectronic-id
(``EIDIDEMIA``) use it:

- ATR ``3B DB 96 00 80 B1 FE 45 1F 83 00 12 23 3F 53 65 49 44 0F 90 00 F1`` (pcsc-tools:
  "Estonia ID-card (eID)"), T=1.
- The MF carries the IAS-ECC application's name ``A0 00 00 00 77 01 08 00 07 00 00 FE 00 00
  01 00`` (SELECT by that name selects the MF). Under it: ``D003`` the document number
  (``04 09`` and 9 characters), DF ``5000`` the personal data file (``5001`` surname …
  ``5008`` expiry, text), DF ``ADF1`` (name ``E8 28 BD 08 0F F2 50 4F 54 20 41 57 50``)
  with ``3401`` the authentication certificate, DF ``ADF2`` (name "QSCD Application") with
  ``341F`` the signing certificate.
- PIN1 (reference 01, global, 4–12 digits), PIN2 (85, local to ADF2, 5–12), PUK (02,
  global, 8–12): ASCII digits padded with FF to 12 bytes, 3 tries each; PIN1 and PIN2 are
  unblocked with the PUK (VERIFY PUK, then RESET RETRY COUNTER P1 03, or P1 02 with a new
  PIN). Tries left: GET DATA ``00 CB 3F FF`` with ``4D 08 70 06 BF 81 <ref & 0F> 02 A0 80``
  answers ``70 1E BF 81 <ref> 1A A0 18 9A 01 <max> 9B 01 <left> A1 10 8C 06 F3 00 00 73 43
  00 9C 06 F3 00 00 73 43 00`` (the tries left at offset 13, the maximum at 10: a card made
  with another limit, :meth:`~cardbridge.emulator.iso7816.Iso7816Card.set_pin_tries`, names
  that one).
- The authentication key (81, ECC P-384, PIN1): MSE SET ``00 22 41 A4`` with ``80 04 FF 20
  08 00 84 01 81`` (OpenSC) or ``80 01 04 84 01 81`` (libelectronic-id), then INTERNAL
  AUTHENTICATE ``00 88 00 00`` with the 48-byte digest. The signing key (9F, ECC P-384,
  PIN2, a VERIFY before each signature): MSE SET ``00 22 41 B6`` with ``80 04 FF 15 08 00 84
  01 9F`` or ``80 01 54 84 01 9F``, then PSO CDS ``00 2A 9E 9A``. Signatures are raw
  ``r || s`` (96 bytes). MSE SET B8 (ECDH with key 81) is accepted; ECDH is not emulated.
- SELECT: by DF name (P1 04), MF (P1 00 without data), child DF (P1 01), EF (P1 02), path
  (P1 08/09); READ BINARY at the end of a file answers ``6B00`` (OpenSC's driver treats
  that as the end).

Choices the public description leaves open, made here:
- The holder is the public test identity of Estonia's test cards, JÕEORG, JAAK-KRISTJAN,
  isikukood 38001085718 (valid check digit), so nothing names a real person; subject
  C=EE, CN="JÕEORG,JAAK-KRISTJAN,38001085718", SN, GN, serialNumber=PNOEE-38001085718 (as
  the 2018 cards have it), issued by cardbridge's development CA (not SK's).
- The authentication certificate has keyUsage digitalSignature + keyAgreement and the
  clientAuth EKU; the signing certificate nonRepudiation.
- The keys are local (bit 8 of 81 and 9F): MSE SET names 81 only in ADF1 and 9F only in
  ADF2 (``6A88`` elsewhere), as both drivers select the key's DF first.
- SELECT by DF name (the IAS-ECC name, ADF1's, ADF2's) ends the security status of every
  PIN (OpenSC logs out by selecting the IAS-ECC application); so does a reset.
- VERIFY without data is answered as ISO 7816-4 says (63Cx / 9000 / 6983) besides the
  GET DATA form.
- A wrong PIN gives 63Cx; the try that blocks gives 63C0; later tries 6983. A PIN outside
  its length (after the padding is removed): 6A80, no try spent; unpadded data: 6700.
- The document number is ``NE`` and seven digits, fixed per card folder; the card's files
  other than those above are not emulated. The Thales profile (cards issued since December
  2025) is :mod:`cardbridge.emulator.esteid_thales`.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cardbridge.emulator.cardfiles import CardFolder
from cardbridge.emulator.devpki import DevCA, citizen_key_usage
from cardbridge.emulator.iso7816 import (
    DF,
    EF,
    SW_INCORRECT_P1P2,
    SW_REF_NOT_FOUND,
    SW_WRONG_DATA,
    SW_WRONG_OFFSET,
    CardKey,
    CommandApdu,
    Iso7816Card,
    Pin,
    sw,
)
from cardbridge.emulator.kinds import AppletKind, PinDefault
from cardbridge.errors import InvalidInputError
from cardbridge.iso7816 import CRT_AT, CRT_CT, CRT_DST, tlv
from cardbridge.model import Purpose

ATR = bytes.fromhex("3BDB960080B1FE451F830012233F536549440F9000F1")
IASECC_AID = bytes.fromhex("A000000077010800070000FE00000100")
ADF1_AID = bytes.fromhex("E828BD080FF2504F5420415750")
ADF2_AID = b"QSCD Application"
FID_DOCUMENT_NUMBER = b"\xd0\x03"
FID_PERSONAL_DATA = b"\x50\x00"
FID_ADF1, FID_ADF2 = b"\xad\xf1", b"\xad\xf2"
FID_AUTH_CERT, FID_SIGN_CERT = b"\x34\x01", b"\x34\x1f"

PIN1_REF, PIN2_REF, PUK_REF = 0x01, 0x85, 0x02
AUTH_KEY_REF, SIGN_KEY_REF = 0x81, 0x9F
PIN_PAD_LENGTH = 12
TRIES = 3
PIN1_DEFAULT, PIN2_DEFAULT, PUK_DEFAULT = "1234", "12345", "17258403"

# MSE SET algorithm references the card takes (OpenSC's and libelectronic-id's forms).
_ALGORITHMS = {
    CRT_AT: {bytes.fromhex("FF200800"), b"\x04"},
    CRT_DST: {bytes.fromhex("FF150800"), b"\x54"},
    CRT_CT: {bytes.fromhex("FF300400")},
}


def isikukood_check_digit(first_ten: str) -> int:
    """The Estonian personal code's check digit (weights 1–9,1; then 3–9,1–3; 10 → 0)."""
    digits = [int(c) for c in first_ten]
    for weights in ((1, 2, 3, 4, 5, 6, 7, 8, 9, 1), (3, 4, 5, 6, 7, 8, 9, 1, 2, 3)):
        rest = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
        if rest != 10:
            return rest
    return 0


def is_valid_isikukood(code: str) -> bool:
    return len(code) == 11 and code.isdigit() and isikukood_check_digit(code[:10]) == int(code[10])


@dataclass(frozen=True, slots=True)
class EstonianCitizen:
    """The holder as the 2018 cards name them (a :class:`~cardbridge.emulator.devpki.Person`)."""

    given_name: str = "JAAK-KRISTJAN"
    surname: str = "JÕEORG"
    isikukood: str = "38001085718"
    sex: str = "M"
    birth: dt.date = dt.date(1980, 1, 8)

    @property
    def id_code(self) -> str:
        """ETSI EN 319 412-1 semantics identifier: ``PNOEE-`` and the isikukood."""
        return "PNOEE-" + self.isikukood

    @property
    def common_name(self) -> str:
        return f"{self.surname},{self.given_name},{self.isikukood}"

    def name(self) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "EE"),
                x509.NameAttribute(NameOID.COMMON_NAME, self.common_name),
                x509.NameAttribute(NameOID.SURNAME, self.surname),
                x509.NameAttribute(NameOID.GIVEN_NAME, self.given_name),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, self.id_code),
            ]
        )


@dataclass(frozen=True, slots=True)
class EsteidData:
    """What is on one card: keys, certificates (DER), the document number and the holder."""

    auth_key: ec.EllipticCurvePrivateKey
    auth_cert: bytes
    sign_key: ec.EllipticCurvePrivateKey
    sign_cert: bytes
    document_number: str
    holder: EstonianCitizen


class EsteidCard(Iso7816Card):
    """The IDEMIA Estonian ID card's chip application (see the module's docstring)."""

    read_at_end_sw = SW_WRONG_OFFSET

    def __init__(self, data: EsteidData, *, pin1: str, pin2: str, puk: str) -> None:
        super().__init__(ATR)
        for value, low, what in ((pin1, 4, "PIN1"), (pin2, 5, "PIN2"), (puk, 8, "PUK")):
            if not (low <= len(value) <= 12 and value.isdigit()):
                raise InvalidInputError(f"The {what} of an Estonian ID card has {low} to 12 digits.")
        self.data = data
        self.mf.name = IASECC_AID
        self.mf.add(EF(FID_DOCUMENT_NUMBER, tlv(0x04, data.document_number.encode())))
        personal = self.mf.add(DF(FID_PERSONAL_DATA))
        assert isinstance(personal, DF)
        holder = data.holder
        expiry = dt.date.today().replace(day=1) + dt.timedelta(days=5 * 365)
        fields = [
            holder.surname,
            holder.given_name,
            holder.sex,
            "EST",
            f"{holder.birth:%d %m %Y} EST",
            holder.isikukood,
            data.document_number,
            f"{expiry:%d %m %Y}",
        ]
        for i, text in enumerate(fields, start=1):
            personal.add(EF(bytes([0x50, i]), text.encode()))
        adf1 = self.mf.add(DF(FID_ADF1, name=ADF1_AID))
        adf2 = self.mf.add(DF(FID_ADF2, name=ADF2_AID))
        assert isinstance(adf1, DF) and isinstance(adf2, DF)
        adf1.add(EF(FID_AUTH_CERT, data.auth_cert))
        adf2.add(EF(FID_SIGN_CERT, data.sign_cert))
        self.puk = self.add_pin(Pin(PUK_REF, puk.encode(), 8, 12, TRIES, PIN_PAD_LENGTH))
        self.pin1 = self.add_pin(Pin(PIN1_REF, pin1.encode(), 4, 12, TRIES, PIN_PAD_LENGTH, unblocked_by=PUK_REF))
        self.pin2 = self.add_pin(
            Pin(PIN2_REF, pin2.encode(), 5, 12, TRIES, PIN_PAD_LENGTH, unblocked_by=PUK_REF, df=adf2)
        )
        self.add_key(CardKey(AUTH_KEY_REF, data.auth_key, PIN1_REF, operations=frozenset({CRT_AT, CRT_CT}), df=adf1))
        self.add_key(
            CardKey(SIGN_KEY_REF, data.sign_key, PIN2_REF, pin_always=True, operations=frozenset({CRT_DST}), df=adf2)
        )

    def handle(self, apdu: CommandApdu) -> bytes:
        if apdu.ins == 0xCB:
            return self.get_data(apdu)
        return super().handle(apdu)

    def algorithm_ok(self, template: int, key: CardKey, algorithm: bytes | None) -> bool:
        return algorithm is not None and algorithm in _ALGORITHMS.get(template, set())

    def get_data(self, apdu: CommandApdu) -> bytes:
        """GET DATA (odd form) of a PIN's information (tries left and maximum)."""
        if (apdu.p1, apdu.p2) != (0x3F, 0xFF):
            return sw(SW_INCORRECT_P1P2)
        data = apdu.data
        if len(data) != 10 or data[:6] != bytes.fromhex("4D087006BF81") or data[7:] != bytes.fromhex("02A080"):
            return sw(SW_WRONG_DATA)
        reference = {0x01: PIN1_REF, 0x02: PUK_REF, 0x05: PIN2_REF}.get(data[6])
        pin = self.find_pin(reference) if reference is not None else None
        if pin is None:
            return sw(SW_REF_NOT_FOUND)
        body = tlv(0xA0, tlv(0x9A, bytes([pin.max_tries])) + tlv(0x9B, bytes([pin.tries_left])))
        body += tlv(0xA1, tlv(0x8C, bytes.fromhex("F30000734300")) + tlv(0x9C, bytes.fromhex("F30000734300")))
        return self.answer(tlv(0x70, tlv(bytes([0xBF, 0x81, data[6]]), body)), apdu)


# -- making a card ------------------------------------------------------------------------
def load_or_create_esteid(folder: Path, *, reader: int = 0, ca: DevCA | None = None) -> EsteidData:
    """The card's keys and certificates, made once in ``folder/esteid-card-READER`` with the
    development CA in ``folder/ca`` (the one every emulated card uses)."""
    store = CardFolder(folder / f"esteid-card-{reader}")
    holder = EstonianCitizen()
    stored = store.load()
    if stored is not None:
        keys, meta = stored
        if not isinstance(keys.auth_key, ec.EllipticCurvePrivateKey) or not isinstance(
            keys.sign_key, ec.EllipticCurvePrivateKey
        ):
            raise InvalidInputError(f"{store.path} holds no EC keys")
        return EsteidData(keys.auth_key, keys.auth_cert, keys.sign_key, keys.sign_cert, meta["document"], holder)
    authority = ca or DevCA.load_or_create(folder / "ca")
    auth_key, sign_key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    auth_cert = authority.issue(
        auth_key.public_key(),
        holder,
        Purpose.AUTHENTICATION,
        key_usage=citizen_key_usage(digital_signature=True, key_agreement=True),
        extended_key_usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    sign_cert = authority.issue(sign_key.public_key(), holder, Purpose.SIGNING)
    document = "NE" + str(int.from_bytes(os.urandom(4), "big") % 10_000_000).rjust(7, "0")
    store.save(auth_key, auth_cert, sign_key, sign_cert, {"document": document, "ca": str(authority.cert_path)})
    der = serialization.Encoding.DER
    return EsteidData(auth_key, auth_cert.public_bytes(der), sign_key, sign_cert.public_bytes(der), document, holder)


KIND = AppletKind(
    name="esteid",
    title="Estonian ID card (IDEMIA, 2018)",
    pins=(
        PinDefault("pin", "PIN1", PIN1_DEFAULT),
        PinDefault("pin2", "PIN2", PIN2_DEFAULT),
        PinDefault("puk", "PUK", PUK_DEFAULT),
    ),
    keys=("ec-p384",),
    make=lambda folder, reader, key, pins: EsteidCard(
        load_or_create_esteid(folder, reader=reader), pin1=pins["pin"], pin2=pins["pin2"], puk=pins["puk"]
    ),
)
