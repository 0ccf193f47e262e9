"""The Belgian eID card (the Belpic applet, versions 1.7 and 1.8), emulated in Python.

:class:`BelpicCard` turns command APDUs into response APDUs as the Belpic applet does,
from its public reference manuals ("Reference Manual – Belpic V1.7 eID card", A01, and
"Reference Manual – Belpic V1.8 eID card", v1) and the card content description ("Belgian
Electronic Identity Card content", v4.01 and v5.4):

- the ATR of each applet version (as pcsc-tools' ``smartcard_list.txt`` names it):
  applet 1.8 ``3B 7F 96 00 00 80 31 80 65 B0 85 04 01 20 12 0F FF 82 90 00`` ("Belgian eID
  v1.8"), applet 1.7 ``3B 98 13 40 0A A5 03 01 01 01 AD 13 11`` ("Belgium Electronic ID
  card"); both say T=0 only;
- the file system: the MF with EF(DIR) 2F00; DF(BELPIC) DF00 (AID ``A0 00 00 01 77 50 4B 43
  53 2D 31 35``, "PKCS-15") with EF(ODF) 5031, EF(TokenInfo) 5032, EF(AODF) 5034,
  EF(PrKDF) 5035, EF(CDF) 5037 and the certificates 5038 (authentication), 5039
  (non-repudiation, "Signature"), 503A (CA), 503B (root), 503C (RRN); DF(ID) DF01 (AID ``A0
  00 00 01 77 49 64 46 69 6C 65 73``) with EF(ID#RN) 4031, EF(SGN#ID) 4032,
  EF(ID#Address) 4033, EF(SGN#Address) 4034; every EF transparent and readable always;
- SELECT by file identifier (P1 02), path from the MF (P1 08) and AID (P1 04), P2 0C only:
  no FCI, as the card gives none; READ BINARY with 6B00 past the end and 6Cxx when Le asks
  for more than is left; GET RESPONSE after 61xx (T=0: a case-4 command answers 61xx);
- one PIN, PINcardholder (reference 01), 4 to 12 digits in ISO 9564 format 2 (``2L`` then
  BCD digits, ``F`` padding, 8 bytes), 3 tries, 63Cx after a wrong one and 6983 when
  blocked, VERIFY without data for the tries left (no try spent), CHANGE REFERENCE DATA,
  LOG OFF (80 E6), GET CARD DATA (80 E4, with the tries left at P2 01 on applet 1.8);
- the authentication key (reference 82, "PIN once": a VERIFY at any time before) and the
  non-repudiation key (83, "PIN just before": a VERIFY at most one command before each
  signature on applet 1.8, directly before on 1.7; and "PIN mixed": a VERIFY spent on a
  non-repudiation signature does not open the authentication key), selected with MSE SET
  (00 22 41 B6, ``04 80 <algorithm> 84 <key>``) and used with PSO COMPUTE DIGITAL SIGNATURE
  (00 2A 9E 9A);
- applet 1.8: ECDSA (P-384 keys, as on current cards), algorithm references 01/02/04
  (SHA-256/384/512), 08/10/20 (SHA3-256/384/512) and 40 (hash not specified: 20, 28, 32,
  48 or 64 bytes), the signature as plain ``r || s``; applet 1.7: RSA-2048, references 01
  (PKCS#1 v1.5, the caller sends the DigestInfo), 02 (SHA-1), 04 (MD5), 08 (SHA-256),
  10 (PSS SHA-1) and 20 (PSS SHA-256, salt as long as the hash).

Choices the public description leaves open (made here as a real card most likely does,
or as the middleware that works with real cards needs):

- SELECT P1 08 takes the path with or without the MF's 3F00 in front (the manual says
  without; OpenSC's belpic driver sends it with, and works with real cards).
- SELECT P1 02 finds a child of the current DF, the MF, or a DF under the MF (eid-mw walks
  3F00, DF00, 5038 that way).
- The keys belong to DF(BELPIC): MSE SET answers 6A88 unless DF00 (or an EF in it) is
  selected. Both OpenSC and eid-mw select 3F00DF00 before MSE SET.
- "One command" between VERIFY and a non-repudiation PSO (applet 1.8) counts every command
  but GET RESPONSE; a VERIFY without data is a status query and counts as a command.
- A failed PSO with the non-repudiation key still spends the VERIFY before it (manual:
  "Verify, wrong Sign(non-rep) KO, …, Sign(auth) KO").
- The retry counter and the PIN live as long as the emulator object (a reset keeps them);
  the security status, the current file and the security environment end at a reset.
- No PIN unblocking: the real card unblocks only after an administrator's External
  Authenticate (municipality); RESET RETRY COUNTER answers 6982. The retry counter lives
  as long as the emulator runs: a new ``cardbridge dev card --kind belpic`` unblocks.
- Not emulated: INTERNAL AUTHENTICATE with the basic key (81), READ RECORD, the photo, the
  PuK#1 file, the National Register's signatures of the identity files (4032/4034 are
  zero bytes) and its certificate (503C is 2500 zero bytes, as on a card without it), Secure
  Messaging, the card manager (an empty AID answers 6A82), logical channels.
- The development PKI has one CA; it is both EF(Cert#4) "CA" and EF(Cert#6) "Root".

It is an :class:`~cardbridge.emulator.iso7816.Iso7816Card`: the engine's file system and
SELECT (with this card's rules in ``select_target``); its other commands are its own. It
deliberately shares no parsing code with the driver in ``cardbridge.pcsc`` (a bug in a
shared parser would be invisible to tests that run one against the other): only the
instruction bytes of ``cardbridge.iso7816``. It never logs the PIN.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cardbridge.emulator.belgium import BelgianCitizen, CertificateHolder, card_number
from cardbridge.emulator.cardfiles import CardFolder
from cardbridge.emulator.der import bits, der, integer, octets, path, seq, utf8
from cardbridge.emulator.devpki import DevCA, PrivateKey, generate_key
from cardbridge.emulator.iso7816 import (
    DF,
    EF,
    SW_AUTH_BLOCKED,
    SW_CLA_NOT_SUPPORTED,
    SW_COMMAND_NOT_ALLOWED,
    SW_CONDITIONS,
    SW_INCORRECT_P1P2,
    SW_INS_NOT_SUPPORTED,
    SW_LC_INCONSISTENT,
    SW_OK,
    SW_REF_NOT_FOUND,
    SW_SECURITY_STATUS,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
    SW_WRONG_OFFSET,
    CommandApdu,
    Iso7816Card,
    ecdsa_raw,
    rsa_pkcs1_digest,
    rsa_pkcs1_v15,
    rsa_pss,
    sw,
)
from cardbridge.emulator.kinds import AppletKind, PinDefault
from cardbridge.errors import InvalidInputError
from cardbridge.iso7816 import (
    INS_CHANGE_REFERENCE_DATA,
    INS_GET_RESPONSE,
    INS_MSE,
    INS_PSO,
    INS_READ_BINARY,
    INS_RESET_RETRY_COUNTER,
    INS_SELECT,
    INS_VERIFY,
)
from cardbridge.model import Purpose

log = logging.getLogger(__name__)


class AppletVersion(enum.Enum):
    """Which Belpic applet the card runs."""

    V1_7 = "1.7"  # RSA-2048 keys (cards issued until 2020)
    V1_8 = "1.8"  # ECDSA P-384 keys (cards issued since 2020)

    @property
    def version_byte(self) -> int:
        """The applet version byte of GET CARD DATA."""
        return 0x17 if self is AppletVersion.V1_7 else 0x18


ATR_V1_8 = bytes.fromhex("3B 7F 96 00 00 80 31 80 65 B0 85 04 01 20 12 0F FF 82 90 00")
ATR_V1_7 = bytes.fromhex("3B 98 13 40 0A A5 03 01 01 01 AD 13 11")

APPLET_AID = bytes.fromhex("A0 00 00 00 30 29 05 70 00 AD 13 10 01 01 FF")
BELPIC_AID = bytes.fromhex("A0 00 00 01 77 50 4B 43 53 2D 31 35")  # "PKCS-15"
ID_AID = bytes.fromhex("A0 00 00 01 77 49 64 46 69 6C 65 73")  # "IdFiles"

MF = b"\x3f\x00"
DF_BELPIC = b"\xdf\x00"
DF_ID = b"\xdf\x01"
EF_DIR = b"\x2f\x00"
EF_ODF = b"\x50\x31"
EF_TOKENINFO = b"\x50\x32"
EF_AODF = b"\x50\x34"
EF_PRKDF = b"\x50\x35"
EF_CDF = b"\x50\x37"
EF_CERT_AUTH = b"\x50\x38"
EF_CERT_SIGN = b"\x50\x39"
EF_CERT_CA = b"\x50\x3a"
EF_CERT_ROOT = b"\x50\x3b"
EF_CERT_RRN = b"\x50\x3c"
EF_ID_RN = b"\x40\x31"
EF_SGN_ID = b"\x40\x32"
EF_ID_ADDRESS = b"\x40\x33"
EF_SGN_ADDRESS = b"\x40\x34"

CLA_ISO = 0x00
CLA_PROPRIETARY = 0x80
INS_GET_CARD_DATA = 0xE4
INS_LOG_OFF = 0xE6

PIN_REFERENCE = 0x01
PIN_TRIES = 3
PIN_MIN, PIN_MAX = 4, 12
PIN_BLOCK = 8
DEFAULT_PIN = "1234"
KEY_AUTHENTICATION = 0x82
KEY_NON_REPUDIATION = 0x83

CERT_PADDING = 1100  # zero bytes after each certificate (card content, §8)
EMPTY_CERT_FILE = 2500  # a certificate file without a certificate

# Applet 1.8 algorithm references: the DTBS lengths allowed, the hash it is (None: any).
ECDSA_ALGORITHMS: dict[int, tuple[tuple[int, ...], hashes.HashAlgorithm | None]] = {
    0x01: ((32,), hashes.SHA256()),
    0x02: ((48,), hashes.SHA384()),
    0x04: ((64,), hashes.SHA512()),
    0x08: ((32,), hashes.SHA3_256()),
    0x10: ((48,), hashes.SHA3_384()),
    0x20: ((64,), hashes.SHA3_512()),
    0x40: ((20, 28, 32, 48, 64), None),
}
# Applet 1.7: 01 PKCS#1 v1.5 with the DigestInfo from the caller; these add it themselves.
RSA_PKCS1_HASHES: dict[int, hashes.HashAlgorithm] = {
    0x02: hashes.SHA1(),  # noqa: S303 - the card's own
    0x04: hashes.MD5(),  # noqa: S303 - the card's own
    0x08: hashes.SHA256(),
}
RSA_PSS: dict[int, hashes.HashAlgorithm] = {0x10: hashes.SHA1(), 0x20: hashes.SHA256()}  # noqa: S303 - the card's own
RSA_ALGORITHMS = frozenset({0x01, *RSA_PKCS1_HASHES, *RSA_PSS})


_FLAGS_PRIVATE_MODIFIABLE = bits(0, 1)
_FLAGS_MODIFIABLE = bits(1)
_AUTH_ID = octets(b"\x01")


def ef_dir() -> bytes:
    """EF(DIR): the PKCS#15 application's template (card content, §5.2.1)."""
    return der(
        0x61,
        der(0x4F, BELPIC_AID),
        der(0x50, b"BELPIC"),
        der(0x51, MF + DF_BELPIC),
        der(0x73, der(0x06, bytes.fromhex("603802"))),  # 2.16.56.2: a Belpic card
    )


def ef_odf() -> bytes:
    """EF(ODF): where the PrKDF, CDF and AODF are."""
    return (
        der(0xA0, path(MF, DF_BELPIC, EF_PRKDF))
        + der(0xA4, path(MF, DF_BELPIC, EF_CDF))
        + der(0xA8, path(MF, DF_BELPIC, EF_AODF))
    )


def ef_tokeninfo(serial: bytes, version: AppletVersion) -> bytes:
    """EF(TokenInfo): version 0, the chip serial, label BELPIC, the personalisation versions."""
    perso = 0x04 if version is AppletVersion.V1_8 else 0x03
    return seq(
        integer(0),
        octets(serial),
        der(0x80, b"BELPIC"),
        bits(2, 3),  # prnGeneration, eidCompliant
        der(0x9E, bytes([0x00, perso, 0x00, 0x40])),  # graphical, electrical, interface, RFU
    )


def ef_aodf() -> bytes:
    """EF(AODF): the one PIN, "Basic PIN", reference 1, BCD, 4 digits at least, 8 bytes, FF."""
    return seq(
        seq(utf8("Basic PIN"), _FLAGS_PRIVATE_MODIFIABLE),
        seq(_AUTH_ID),
        der(
            0xA1,
            seq(
                bits(4, 5),  # initialized, needs-padding
                der(0x0A, b"\x00"),  # bcd
                integer(PIN_MIN),
                integer(PIN_BLOCK),
                der(0x80, bytes([PIN_REFERENCE])),
                octets(b"\xff"),
                path(MF),
            ),
        ),
    )


def ef_prkdf(version: AppletVersion, key_bits: int) -> bytes:
    """EF(PrKDF): "Authentication" (ID 02, sign, key 82) and "Signature" (ID 03,
    nonRepudiation, key 83, userConsent 1); EC keys on applet 1.8, RSA on 1.7."""

    def key(label: str, key_id: int, usage: bytes, reference: int, consent: bool) -> bytes:
        common = seq(utf8(label), _FLAGS_PRIVATE_MODIFIABLE, _AUTH_ID, *((integer(1),) if consent else ()))
        key_attributes = seq(octets(bytes([key_id])), usage, bits(0, 2, 3, 4), der(0x02, bytes([0x00, reference])))
        type_attributes = der(0xA1, seq(seq(octets(MF + DF_BELPIC)), integer(key_bits)))
        if version is AppletVersion.V1_8:
            return der(0xA0, common, key_attributes, type_attributes)  # privateECKey [0]
        return seq(common, key_attributes, type_attributes)  # privateRSAKey

    return key("Authentication", 2, bits(2), KEY_AUTHENTICATION, False) + key(
        "Signature", 3, bits(9), KEY_NON_REPUDIATION, True
    )


def ef_cdf() -> bytes:
    """EF(CDF): Authentication (02), Signature (03), CA (04) and Root (06)."""

    def cert(label: str, cert_id: int, fid: bytes, authority: bool) -> bytes:
        attributes = [octets(bytes([cert_id]))]
        if authority:
            attributes.append(der(0x01, b"\xff"))
        attributes.append(der(0x83, b"\x00"))  # implicitTrust FALSE
        return seq(
            seq(utf8(label), _FLAGS_MODIFIABLE, _AUTH_ID),
            seq(*attributes),
            der(0xA1, seq(path(MF, DF_BELPIC, fid))),
        )

    return (
        cert("Authentication", 2, EF_CERT_AUTH, False)
        + cert("Signature", 3, EF_CERT_SIGN, False)
        + cert("CA", 4, EF_CERT_CA, True)
        + cert("Root", 6, EF_CERT_ROOT, True)
    )


# -- the identity files ----------------------------------------------------------------------
def simple_tlv(tag: int, value: bytes) -> bytes:
    """The card's simplified TLV: a tag byte, the length in FF-continued bytes, the value."""
    n = len(value)
    return bytes([tag]) + b"\xff" * (n // 255) + bytes([n % 255]) + value


_MONTHS_NL = ("JAN", "FEB", "MAAR", "APR", "MEI", "JUN", "JUL", "AUG", "SEP", "OKT", "NOV", "DEC")


@dataclass(frozen=True, slots=True)
class CardFacts:
    """What identifies the card itself: the chip serial and the card's number and dates."""

    chip_serial: bytes  # 16 bytes: GET CARD DATA's serial, TokenInfo's serial
    card_number: str
    valid_from: dt.date
    valid_until: dt.date


def ef_id_rn(who: BelgianCitizen, card: CardFacts, version: AppletVersion) -> bytes:
    """EF(ID#RN), the identity file (file structure version 2 on applet 1.8, 1 before)."""
    birth = f"{who.birth.day:02d} {_MONTHS_NL[who.birth.month - 1]} {who.birth.year}"
    fields = [
        (0x00, b"\x02" if version is AppletVersion.V1_8 else b"\x01"),
        (0x01, card.card_number.encode()),
        (0x02, card.chip_serial),
        (0x03, f"{card.valid_from:%d.%m.%Y}".encode()),
        (0x04, f"{card.valid_until:%d.%m.%Y}".encode()),
        (0x05, who.municipality.encode()),
        (0x06, who.national_number.encode()),
        (0x07, who.surname.encode()),
        (0x08, who.given_names.encode()),
        (0x09, b""),
        (0x0A, b"Belg"),
        (0x0B, who.birth_place.encode()),
        (0x0C, birth.encode()),
        (0x0D, who.gender.encode()),
        (0x0E, b""),
        (0x0F, b"1"),  # document type: Belgian citizen
        (0x10, b"0"),  # special status: none
    ]
    return b"".join(simple_tlv(tag, value) for tag, value in fields)


def ef_id_address(who: BelgianCitizen) -> bytes:
    """EF(ID#Address): street and number, postal code, municipality."""
    fields = [
        (0x00, b"\x01"),
        (0x01, who.street.encode()),
        (0x02, who.zip_code.encode()),
        (0x03, who.municipality.encode()),
    ]
    return b"".join(simple_tlv(tag, value) for tag, value in fields)


# -- the PIN ------------------------------------------------------------------------------------
def encode_pin(pin: str) -> bytes:
    """ISO 9564 format 2 as the card keeps it: ``2L``, the digits in BCD, F padding, 8 bytes."""
    if not (PIN_MIN <= len(pin) <= PIN_MAX and pin.isdigit()):
        raise InvalidInputError("A Belgian eID PIN has 4 to 12 digits.")
    return bytes([0x20 | len(pin)]) + bytes.fromhex(pin + "F" * (14 - len(pin)))


def pin_block_well_formed(block: bytes) -> bool:
    """Whether 8 bytes are a format-2 PIN block with 4 to 12 digits."""
    if len(block) != PIN_BLOCK or block[0] >> 4 != 2:
        return False
    length = block[0] & 0x0F
    nibbles = block[1:].hex().upper()
    return PIN_MIN <= length <= PIN_MAX and nibbles[:length].isdigit() and set(nibbles[length:]) <= {"F"}


# -- the card --------------------------------------------------------------------------------------
@dataclass
class BelpicCardData:
    """What is on the card: the applet, keys, certificates (DER), holder and card facts."""

    version: AppletVersion
    auth_key: PrivateKey
    auth_cert: bytes
    sign_key: PrivateKey
    sign_cert: bytes
    ca_cert: bytes
    citizen: BelgianCitizen
    card: CardFacts

    @property
    def atr(self) -> bytes:
        return ATR_V1_8 if self.version is AppletVersion.V1_8 else ATR_V1_7


Handler = Callable[[CommandApdu], bytes]

# GET CARD DATA after the 16-byte serial and the chip's five bytes: applet version, global
# OS version (2 bytes), applet interface version, PKCS#1 support, key exchange version,
# life cycle (0F: personalized) — the reference manuals' values.
_CARD_DATA_TAIL = {
    AppletVersion.V1_8: bytes([0x18, 0x00, 0x01, 0x00, 0x00, 0x02, 0x0F]),
    AppletVersion.V1_7: bytes([0x17, 0x00, 0x03, 0x00, 0x21, 0x01, 0x0F]),
}


class BelpicCard(Iso7816Card):
    """The Belpic applet on a T=0 card, over the engine's file system (:class:`DF`,
    :class:`EF`), command parsing (:class:`CommandApdu`) and SELECT (with the card's own
    rules in :meth:`select_target`); its other commands are the card's own."""

    def __init__(self, data: BelpicCardData, pin: str = DEFAULT_PIN) -> None:
        self.data = data
        self.version = data.version
        super().__init__(data.atr)
        self._pin = encode_pin(pin)
        self.pin_max_tries = PIN_TRIES  # the applet's limit; set_pin_tries for another
        self.pin_tries_left = PIN_TRIES
        self.mf = self._build()
        self.power_off()

    def set_pin_tries(self, tries: int) -> None:
        """PINcardholder's retry limit as another profile would set it (the counter full). No
        command of the applet reports the limit: VERIFY without data and GET CARD DATA (P2 01)
        give the tries left only."""
        if not 1 <= tries <= 15:
            raise ValueError("a retry counter of 1 to 15 tries (63Cx has one hex digit)")
        self.pin_max_tries = self.pin_tries_left = tries

    # -- the file system ----------------------------------------------------------------------
    def _build(self) -> DF:
        d = self.data

        def cert_file(der: bytes) -> bytes:
            return der + b"\x00" * CERT_PADDING if der else b"\x00" * EMPTY_CERT_FILE

        signature_size = 104 if self.version is AppletVersion.V1_8 else 256  # DER P-384 / RSA
        mf = DF(MF)
        mf.add(EF(EF_DIR, ef_dir()))
        belpic = DF(DF_BELPIC, BELPIC_AID)
        for fid, content in (
            (EF_ODF, ef_odf()),
            (EF_TOKENINFO, ef_tokeninfo(d.card.chip_serial, self.version)),
            (EF_AODF, ef_aodf()),
            (EF_PRKDF, ef_prkdf(self.version, _key_bits(d.auth_key))),
            (EF_CDF, ef_cdf()),
            (EF_CERT_AUTH, cert_file(d.auth_cert)),
            (EF_CERT_SIGN, cert_file(d.sign_cert)),
            (EF_CERT_CA, cert_file(d.ca_cert)),
            (EF_CERT_ROOT, cert_file(d.ca_cert)),
            (EF_CERT_RRN, cert_file(b"")),
        ):
            belpic.add(EF(fid, content))
        identity = DF(DF_ID, ID_AID)
        for fid, content in (
            (EF_ID_RN, ef_id_rn(d.citizen, d.card, self.version)),
            (EF_SGN_ID, b"\x00" * signature_size),
            (EF_ID_ADDRESS, ef_id_address(d.citizen)),
            (EF_SGN_ADDRESS, b"\x00" * signature_size),
        ):
            identity.add(EF(fid, content))
        mf.add(belpic)
        mf.add(identity)
        return mf

    # -- card state ---------------------------------------------------------------------------
    def power_off(self) -> None:
        """Lose the volatile state: current file, PIN status, security environment, answer."""
        super().power_off()
        self.se_key: int | None = None
        self.se_algorithm = 0
        self._auth_open = False  # "PIN once" granted to the authentication key
        self._fresh_verify = False  # a VERIFY that a non-repudiation signature may still use
        self._since_verify = 0

    @property
    def pin_verified(self) -> bool:
        return self._auth_open or self._fresh_verify

    # -- dispatch ------------------------------------------------------------------------------
    def respond(self, raw: bytes) -> bytes:
        try:
            apdu = CommandApdu.parse(raw)
        except ValueError:
            return sw(SW_WRONG_LENGTH)
        if apdu.extended:
            return sw(SW_WRONG_LENGTH)  # T=0: short APDUs only
        if (apdu.cla, apdu.ins) == (CLA_ISO, INS_GET_RESPONSE):
            return self._get_response(apdu)
        self._pending = b""
        handlers: dict[tuple[int, int], Handler] = {
            (CLA_ISO, INS_SELECT): self.select,
            (CLA_ISO, INS_READ_BINARY): self._read_binary,
            (CLA_ISO, INS_VERIFY): self._verify,
            (CLA_ISO, INS_CHANGE_REFERENCE_DATA): self._change_reference_data,
            (CLA_ISO, INS_RESET_RETRY_COUNTER): self._reset_retry_counter,
            (CLA_ISO, INS_MSE): self._mse,
            (CLA_ISO, INS_PSO): self._pso,
            (CLA_PROPRIETARY, INS_GET_CARD_DATA): self._get_card_data,
            (CLA_PROPRIETARY, INS_LOG_OFF): self._log_off,
        }
        handler = handlers.get((apdu.cla, apdu.ins))
        if handler is None:
            known = {ins for _cla, ins in handlers}
            return sw(SW_CLA_NOT_SUPPORTED if apdu.ins in known else SW_INS_NOT_SUPPORTED)
        if apdu.ins not in (INS_VERIFY, INS_PSO):
            self._one_more_command()
        return handler(apdu)

    def _one_more_command(self) -> None:
        """A command after a successful VERIFY: once it is more than a non-repudiation
        signature may have in between (one on applet 1.8, none on 1.7), that VERIFY opens
        the authentication key ("PIN once")."""
        if not self._fresh_verify:
            return
        self._since_verify += 1
        if self._since_verify > (1 if self.version is AppletVersion.V1_8 else 0):
            self._fresh_verify = False
            self._auth_open = True

    def _case4(self, data: bytes) -> bytes:
        """T=0: a case-4 command's answer waits for GET RESPONSE."""
        self._pending = data
        return sw(0x6100 | (len(data) if len(data) < 256 else 0))

    def _get_response(self, apdu: CommandApdu) -> bytes:
        if (apdu.p1, apdu.p2) != (0, 0):
            return sw(SW_WRONG_OFFSET)
        if not self._pending:
            return sw(SW_CONDITIONS)
        want = apdu.le if apdu.le is not None else 256
        data = self._pending
        if want > len(data):
            return sw(0x6C00 | len(data))  # the answer waits for a GET RESPONSE with that Le
        self._pending = data[want:]
        rest = len(self._pending)
        if rest:
            return sw(0x6100 | (rest if rest < 256 else 0), data[:want])
        return sw(SW_OK, data)

    # -- SELECT -----------------------------------------------------------------------------------
    def select_target(self, apdu: CommandApdu) -> DF | EF | int | None:
        """The card's SELECT: by AID (P1 04; the applet's own AID is the MF and starts a new
        session), by FID (P1 02: a child of the current DF, or a DF under the MF) or by path
        from the MF (P1 08, with or without 3F00); P2 0C only (the card gives no FCI)."""
        if apdu.p2 != 0x0C:
            return SW_INCORRECT_P1P2
        if apdu.p1 == 0x04:
            if apdu.data == APPLET_AID:
                self.power_off()  # the applet selected again: a new session
                return self.mf
            return self.find_df_by_name(apdu.data)
        if apdu.p1 == 0x02:
            return self._fid_here(apdu.data) if len(apdu.data) == 2 else SW_LC_INCONSISTENT
        if apdu.p1 == 0x08:
            return self._by_path(self.mf, apdu.data) if apdu.data and not len(apdu.data) % 2 else SW_LC_INCONSISTENT
        return SW_INCORRECT_P1P2

    def _fid_here(self, fid: bytes) -> DF | EF | None:
        if fid == MF:
            return self.mf
        found = self.current_df.child(fid)
        if found is not None:
            return found
        sibling = self.mf.child(fid)
        return sibling if isinstance(sibling, DF) else None

    # -- READ BINARY --------------------------------------------------------------------------------
    def _read_binary(self, apdu: CommandApdu) -> bytes:
        if apdu.data:
            return sw(SW_WRONG_LENGTH)
        if apdu.p1 & 0x80:
            return sw(SW_WRONG_OFFSET)  # no short EF identifiers
        if self.current_ef is None:
            return sw(SW_COMMAND_NOT_ALLOWED)
        content = self.current_ef.data
        offset = (apdu.p1 << 8) | apdu.p2
        if offset >= len(content):
            return sw(SW_WRONG_OFFSET)  # offset outside the EF
        want = apdu.le if apdu.le is not None else 256
        left = len(content) - offset
        if want > left:
            return sw(0x6C00 | left)  # Le too long: only this many bytes
        return sw(SW_OK, content[offset : offset + want])

    # -- PIN ----------------------------------------------------------------------------------------
    def _lose_pin_status(self) -> None:
        self._auth_open = self._fresh_verify = False

    def _verify(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 != 0x00:
            self._one_more_command()
            return sw(SW_INCORRECT_P1P2)
        if apdu.p2 != PIN_REFERENCE:
            self._one_more_command()
            return sw(SW_REF_NOT_FOUND)
        if not apdu.data:  # the PIN's state; no try spent
            self._one_more_command()
            if self.pin_tries_left == 0:
                return sw(SW_AUTH_BLOCKED)
            return sw(SW_OK if self.pin_verified else 0x63C0 | self.pin_tries_left)
        if self.pin_tries_left == 0:
            return sw(SW_AUTH_BLOCKED)
        if len(apdu.data) != PIN_BLOCK:
            return sw(SW_WRONG_LENGTH)
        self._one_more_command()  # a VERIFY before this one waits no longer
        if apdu.data == self._pin:
            self.pin_tries_left = self.pin_max_tries
            self._fresh_verify, self._since_verify = True, 0
            return sw(SW_OK)
        self.pin_tries_left -= 1
        self._lose_pin_status()  # a wrong PIN ends every PIN access condition
        return sw(0x63C0 | self.pin_tries_left)

    def _change_reference_data(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 != 0x00:
            return sw(SW_INCORRECT_P1P2)
        if apdu.p2 != PIN_REFERENCE:
            return sw(SW_REF_NOT_FOUND)
        if len(apdu.data) != 2 * PIN_BLOCK:
            return sw(SW_WRONG_LENGTH)
        if self.pin_tries_left == 0:
            return sw(SW_AUTH_BLOCKED)
        old, new = apdu.data[:PIN_BLOCK], apdu.data[PIN_BLOCK:]
        if not (pin_block_well_formed(old) and pin_block_well_formed(new)):
            return sw(SW_WRONG_DATA)
        self._lose_pin_status()
        if old != self._pin:
            self.pin_tries_left -= 1
            return sw(0x63C0 | self.pin_tries_left)
        self._pin = bytes(new)
        self.pin_tries_left = self.pin_max_tries
        self._auth_open = True
        return sw(SW_OK)

    def _reset_retry_counter(self, apdu: CommandApdu) -> bytes:
        return sw(SW_SECURITY_STATUS)  # the administrator's role (External Authenticate) only

    def _log_off(self, apdu: CommandApdu) -> bytes:
        if (apdu.p1, apdu.p2) != (0, 0):
            return sw(SW_WRONG_OFFSET)
        if apdu.data:
            return sw(SW_WRONG_LENGTH)
        self._lose_pin_status()
        return sw(SW_OK)

    # -- signing --------------------------------------------------------------------------------------
    def _mse(self, apdu: CommandApdu) -> bytes:
        if (apdu.p1, apdu.p2) != (0x41, 0xB6):
            return sw(SW_WRONG_OFFSET)
        data = apdu.data
        if len(data) != 5:
            return sw(SW_WRONG_LENGTH)
        if data[0] != 0x04 or data[1] != 0x80 or data[3] != 0x84:
            return sw(SW_WRONG_DATA)
        algorithm, key = data[2], data[4]
        known = ECDSA_ALGORITHMS if self.version is AppletVersion.V1_8 else RSA_ALGORITHMS
        if algorithm not in known:
            return sw(SW_WRONG_DATA)
        if key not in (KEY_AUTHENTICATION, KEY_NON_REPUDIATION) or self.current_df.fid != DF_BELPIC:
            return sw(SW_REF_NOT_FOUND)
        self.se_key, self.se_algorithm = key, algorithm
        return sw(SW_OK)

    def _pso(self, apdu: CommandApdu) -> bytes:
        if (apdu.p1, apdu.p2) != (0x9E, 0x9A):
            self._one_more_command()
            return sw(SW_WRONG_OFFSET)
        if self.se_key is None:
            self._one_more_command()
            return sw(SW_CONDITIONS)
        if self.pin_tries_left == 0:
            return sw(SW_AUTH_BLOCKED)
        if self.se_key == KEY_NON_REPUDIATION:
            allowed = self._fresh_verify
            self._fresh_verify = False  # "PIN just before": each signature spends its VERIFY
            key = self.data.sign_key
        else:
            if self._fresh_verify:
                self._fresh_verify, self._auth_open = False, True
            allowed = self._auth_open
            key = self.data.auth_key
        if not allowed:
            return sw(SW_SECURITY_STATUS)
        try:
            signature = card_signature(key, self.se_algorithm, apdu.data)
        except ValueError:
            return sw(SW_WRONG_LENGTH)
        return self._case4(signature)

    # -- GET CARD DATA ---------------------------------------------------------------------------------
    def _get_card_data(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 != 0 or apdu.p2 not in (0, 1) or (apdu.p2 == 1 and self.version is AppletVersion.V1_7):
            return sw(SW_WRONG_OFFSET)
        # serial, component code, OS number and version, softmask number and version, …
        tail = _CARD_DATA_TAIL[self.version]
        card_data = self.data.card.chip_serial + bytes([0x12, 0x01, 0x01, 0x01, 0x01]) + tail
        if apdu.p2 == 1:
            card_data += bytes([self.pin_tries_left, 0xFF, 0xFF])
        if (apdu.le if apdu.le is not None else 256) != len(card_data):
            return sw(0x6C00 | len(card_data))
        return sw(SW_OK, card_data)


def _key_bits(key: PrivateKey) -> int:
    return key.key_size if isinstance(key, rsa.RSAPrivateKey) else key.curve.key_size


def card_signature(key: PrivateKey, algorithm: int, dtbs: bytes) -> bytes:
    """What the card computes for PSO CDS: ECDSA as ``r || s`` over the hash sent, or an RSA
    signature (PKCS#1 v1.5 padding added on the card; PSS for references 10 and 20).
    ValueError when the data's length does not fit the algorithm."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        lengths, _named = ECDSA_ALGORITHMS[algorithm]
        if len(dtbs) not in lengths:
            raise ValueError("the hash's length does not fit the algorithm")
        return ecdsa_raw(key, dtbs)
    if algorithm in RSA_PSS:
        return rsa_pss(key, dtbs, RSA_PSS[algorithm])
    if algorithm in RSA_PKCS1_HASHES:
        return rsa_pkcs1_digest(key, dtbs, RSA_PKCS1_HASHES[algorithm])
    return rsa_pkcs1_v15(key, dtbs)


# -- making and keeping a card ---------------------------------------------------------------------
KEYS = ("ec-p384", "rsa-2048")  # applet 1.8 (the default), applet 1.7


def _version_for(key: str) -> AppletVersion:
    return AppletVersion.V1_8 if key == "ec-p384" else AppletVersion.V1_7


def load_or_create_belpic(
    folder: Path,
    *,
    key: str = KEYS[0],
    reader: int = 0,
    ca: DevCA | None = None,
    citizen: BelgianCitizen | None = None,
) -> BelpicCardData:
    """The card's keys, certificates and facts, made once in ``folder/belpic-card-READER``
    (mode 0700). The CA is ``folder/ca`` unless ``ca`` is given; another
    ``key`` than the stored one (another applet version) makes a new card."""
    if key not in KEYS:
        raise InvalidInputError(f"A Belgian eID card has no {key} key; choose one of {', '.join(KEYS)}.")
    store = CardFolder(folder / f"belpic-card-{reader}")
    authority = ca or DevCA.load_or_create(folder / "ca")
    person = citizen or BelgianCitizen()
    ca_der = authority.certificate.public_bytes(serialization.Encoding.DER)
    stored = store.load()
    if stored is not None and stored[1].get("key") == key and stored[1].get("ca") == str(authority.cert_path):
        keys, meta = stored
        facts = CardFacts(
            bytes.fromhex(meta["chip"]),
            meta["cardNumber"],
            dt.date.fromisoformat(meta["validFrom"]),
            dt.date.fromisoformat(meta["validUntil"]),
        )
        return BelpicCardData(
            _version_for(key), keys.auth_key, keys.auth_cert, keys.sign_key, keys.sign_cert, ca_der, person, facts
        )
    auth_key, sign_key = generate_key(key), generate_key(key)
    auth_cert = authority.issue(
        auth_key.public_key(), CertificateHolder(person, Purpose.AUTHENTICATION), Purpose.AUTHENTICATION
    )
    sign_cert = authority.issue(sign_key.public_key(), CertificateHolder(person, Purpose.SIGNING), Purpose.SIGNING)
    today = dt.date.today()
    # 2 bytes reserved for the chip maker's integrator, 2 for the chip maker, 12 unique.
    facts = CardFacts(
        bytes.fromhex("534C") + b"\x00\x01" + secrets.token_bytes(12),
        card_number(secrets.randbelow(10**10)),
        today,
        today.replace(year=today.year + 10)
        if not (today.month == 2 and today.day == 29)
        else today + dt.timedelta(days=3652),
    )
    meta = {
        "kind": "belpic",
        "key": key,
        "ca": str(authority.cert_path),
        "chip": facts.chip_serial.hex(),
        "cardNumber": facts.card_number,
        "validFrom": facts.valid_from.isoformat(),
        "validUntil": facts.valid_until.isoformat(),
    }
    keys = store.save(auth_key, auth_cert, sign_key, sign_cert, meta)
    return BelpicCardData(
        _version_for(key), keys.auth_key, keys.auth_cert, keys.sign_key, keys.sign_cert, ca_der, person, facts
    )


def _make_card(folder: Path, reader: int, key: str, pins: Mapping[str, str]) -> BelpicCard:
    encode_pin(pins["pin"])  # InvalidInputError for a PIN the card would not take, before any file is made
    return BelpicCard(load_or_create_belpic(folder, key=key, reader=reader), pins["pin"])


# ``cardbridge dev card --kind belpic``: applet 1.8 with ``--key ec-p384`` (the default),
# applet 1.7 with ``--key rsa-2048``.
BELPIC_KIND = AppletKind(
    name="belpic",
    title="Belgian eID card (Belpic)",
    pins=(PinDefault("pin", "PIN", DEFAULT_PIN),),
    keys=KEYS,
    make=_make_card,
)
