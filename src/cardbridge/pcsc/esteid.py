"""The Estonian ID card (IDEMIA profile, issued since December 2018): a direct driver.

The card's application is IAS-ECC (AID ``A0 00 00 00 77 01 08 00 07 00 00 FE 00 00 01
00``, the MF's name); the authentication key (81, ECC P-384, PIN1) and its certificate
(``3401``) live in ADF1, the signing key (9F, PIN2, a VERIFY before every signature) and its
certificate (``341F``) in ADF2 ("QSCD Application"). PINs are ASCII digits padded with FF to
12 bytes: PIN1 (reference 01) 4–12 digits, PIN2 (85, local to ADF2) 5–12, 3 tries each as
issued. The driver assumes no limit: the card names it (``9A``) beside the tries left
(``9B``) in its PIN information, which the first dialog on a card presence reads, and after
a right PIN the count shown is that limit (:mod:`cardbridge.pcsc.pinstate`).

APDUs of a warm login (the certificate cached by the document number): GET DATA of PIN1's
tries left (``4D 08 70 06 BF 81 …``, where the last logout left the card; SELECT first only
when the card says no), then SELECT ADF1, VERIFY PIN1, MSE SET (A4, key 81), INTERNAL
AUTHENTICATE, and SELECT of the IAS-ECC application to log out (the card ends the PIN's
status then, as OpenSC logs out; no SCARD_RESET_CARD).

The Thales profile (cards issued since December 2025) is :class:`EsteidThalesToken`, driver
``esteid-thales``: the Thales application of the Finnish v4 card with the Estonian objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from cardbridge.errors import CardError
from cardbridge.iso7816 import CRT_AT, CRT_DST, INS_GET_DATA
from cardbridge.model import (
    SIGNING_HASHES,
    CertificateInfo,
    CryptoAlgorithm,
    HashFunction,
    KeyType,
    Padding,
    PinKind,
    PinStatus,
    Purpose,
    SignatureAlgorithm,
)
from cardbridge.pcsc.apdu import ApduTransport
from cardbridge.pcsc.cardtoken import CardSlot
from cardbridge.pcsc.filesystem import (
    FileSystemSession,
    FileSystemToken,
    KeySpec,
    Location,
    PinSpec,
    PinState,
    SignCommand,
)
from cardbridge.pcsc.fineid import FineidToken
from cardbridge.pcsc.piv import find_tlv, parse_tlv

IASECC_AID = bytes.fromhex("A000000077010800070000FE00000100")
ADF1_AID = bytes.fromhex("E828BD080FF2504F5420415750")
ADF2_AID = b"QSCD Application"
DOCUMENT_NUMBER = Location(aid=IASECC_AID, path=b"\xd0\x03")
PIN_PAD_LENGTH = 12

PIN1 = PinSpec(0x01, "PIN1", 4, 12, location=Location(aid=ADF1_AID), pad_length=PIN_PAD_LENGTH)
PIN2 = PinSpec(0x85, "PIN2", 5, 12, location=Location(aid=ADF2_AID), pad_length=PIN_PAD_LENGTH)
SIGNATURE_INPUT = 48  # the card signs a 48-byte value (P-384): shorter hashes left-padded


def _key(purpose: Purpose, label: str, reference: int, certificate: bytes, pin: PinSpec, algorithm: str) -> KeySpec:
    """A key of the card: its certificate's path under the IAS-ECC application, used where
    its PIN is, with MSE SET naming the card's algorithm (``80 04 <algorithm>``) and the key
    (``84 01 <reference>``)."""
    authentication = purpose is Purpose.AUTHENTICATION
    return KeySpec(
        purpose=purpose,
        label=label,
        key_id=b"\x01" if authentication else b"\x02",
        key_reference=reference,
        certificate=Location(aid=IASECC_AID, path=certificate),
        pin=pin,
        location=pin.location,
        sign_command=SignCommand.INTERNAL_AUTHENTICATE if authentication else SignCommand.PSO_CDS,
        mse_template=CRT_AT if authentication else CRT_DST,
        mse_data=bytes.fromhex("8004" + algorithm + "8401") + bytes([reference]),
        digest_length=SIGNATURE_INPUT,
    )


AUTHENTICATION = _key(Purpose.AUTHENTICATION, "Isikutuvastus", 0x81, b"\xad\xf1\x34\x01", PIN1, "FF200800")
SIGNING = _key(Purpose.SIGNING, "Allkirjastamine", 0x9F, b"\xad\xf2\x34\x1f", PIN2, "FF150800")
_PIN_INFO = {0x01: Location(aid=IASECC_AID), 0x85: Location(aid=ADF2_AID)}


class EsteidToken(FileSystemToken):
    """An Estonian ID card (IDEMIA, 2018) in one reader (a :class:`model.Token`)."""

    driver = "esteid"
    aid = IASECC_AID
    keys = (AUTHENTICATION, SIGNING)
    read_chunk = 0xE9  # what OpenSC found the card answers at most

    def read_serial(self, transport: ApduTransport) -> str:
        """SELECT the IAS-ECC application and read the document number (the serial)."""
        fs = self.session(transport)
        fs.select_aid(IASECC_AID)
        fs.select_path(DOCUMENT_NUMBER.path, from_mf=False)
        raw = fs.read_ef(11, chunk=11)
        number = find_tlv(raw, 0x04) if raw[:1] == b"\x04" else None
        if not number or not number.isalnum():
            raise CardError("The card's document number cannot be read.")
        return number.decode("ascii")

    def pin_state(self, fs: FileSystemSession, pin: PinSpec) -> PinState:
        """GET DATA of the PIN's information: tries left (9B) and the maximum (9A)."""
        query = bytes.fromhex("4D087006BF81") + bytes([pin.reference & 0x0F]) + bytes.fromhex("02A080")
        # Where the last call left the card (the logout selects the IAS-ECC application, where
        # PIN1's information is) first; else from where the card's description reads it.
        response = fs.send(INS_GET_DATA, 0x3F, 0xFF, query)
        if not response.ok:
            fs.enter(_PIN_INFO[pin.reference])
            response = fs.send(INS_GET_DATA, 0x3F, 0xFF, query)
        data = response.check()
        try:
            outer = find_tlv(data, 0x70) or b""
            (_, inner), *_ = parse_tlv(outer)
            info = dict(parse_tlv(find_tlv(inner, 0xA0) or b""))
        except (CardError, ValueError) as exc:
            raise CardError("The card's PIN information cannot be read.") from exc
        left = info.get(0x9B)
        if left is None or len(left) != 1:
            raise CardError("The card's PIN information has no tries left.")
        limit = info.get(0x9A)  # the card's own retry limit (libelectronic-id's EIDIDEMIA reads it)
        maximum = limit[0] if limit is not None and len(limit) == 1 and limit[0] >= left[0] else None
        return PinState(left[0], left[0] == 0, maximum=maximum)

    def supported_algorithms(self, certificate: CertificateInfo) -> Sequence[SignatureAlgorithm]:
        if certificate.key_type != KeyType.EC or certificate.curve != "secp384r1":
            return ()
        if certificate.purpose is Purpose.SIGNING:  # the card signs any hash, cut or padded to 48 bytes
            return tuple(SignatureAlgorithm(CryptoAlgorithm.ECC, h, Padding.NONE) for h in SIGNING_HASHES)
        return (SignatureAlgorithm(CryptoAlgorithm.ECC, HashFunction.SHA384, Padding.NONE),)

    def logout(self, fs: FileSystemSession, key: KeySpec) -> None:
        fs.select_aid(IASECC_AID)


# -- the Thales profile (cards issued since December 2025) -------------------------------------
THALES_AID = bytes.fromhex("A000000063504B43532D3135")
_THALES_APP = Location(aid=THALES_AID)
THALES_PIN1 = PinSpec(0x81, "PIN1", 4, 12, _THALES_APP, pad_length=PIN_PAD_LENGTH, pad_byte=0x00)
THALES_PIN2 = PinSpec(0x82, "PIN2", 5, 12, _THALES_APP, pad_length=PIN_PAD_LENGTH, pad_byte=0x00)
THALES_DOCUMENT_NUMBER = bytes.fromhex("DFDD5007")
THALES_AUTHENTICATION = KeySpec(
    purpose=Purpose.AUTHENTICATION,
    label="Isikutuvastus",
    key_id=b"\x01",
    key_reference=0x01,
    certificate=Location(path=bytes.fromhex("ADF13411")),  # from the MF, after read_serial's SELECT
    pin=THALES_PIN1,
    location=_THALES_APP,
    sign_command=SignCommand.PSO_CDS,
    mse_template=CRT_DST,
)
THALES_SIGNING = KeySpec(
    purpose=Purpose.SIGNING,
    label="Allkirjastamine",
    key_id=b"\x02",
    key_reference=0x05,
    certificate=Location(path=bytes.fromhex("ADF23421")),
    pin=THALES_PIN2,
    location=_THALES_APP,
    sign_command=SignCommand.PSO_CDS,
    mse_template=CRT_DST,
)


class EsteidThalesToken(FineidToken):
    """An Estonian ID card of the Thales profile (2025) in one reader: the Thales application
    the Finnish v4 card runs (its commands are :class:`FineidToken`'s: GET DATA of a PIN's
    tries left, MSE SET, PSO HASH, PSO CDS, SELECT of the application to log out) with the
    Estonian card's objects: PIN1 81 (4-12 digits), PIN2 82 (5-12), 3 tries as issued (the
    card does not report the limit: see :class:`FineidToken`), padded with 00;
    the authentication key 01 (``ADF1/3411``), the signing key 05 (``ADF2/3421``); the
    document number in ``DFDD/5007`` (the cache key). As OpenSC master's
    ``card-esteid2025.c`` and libelectronic-id's ``EstEIDThales``.

    A card whose PIN1 is not active yet is not activated at all: the Web eID app neither
    logs in nor signs with it ("Authentication and signing with the ID-card isn't possible
    yet. ID-card must be activated in the Police and Border Guard Board's self-service
    portal"; libelectronic-id checks PIN1's ``pinActive`` for the Estonian Thales card only).
    So the signing PIN's status says PIN_NOT_ACTIVE with PIN1's advice then
    (:attr:`~cardbridge.model.PinStatus.not_active_pin`), and PIN2 is never asked for nor
    sent. What PIN1's state costs before a signature (:meth:`pin_status`): nothing when the
    card told PIN1's tries within the counters' life (:mod:`cardbridge.pcsc.pinstate`: a
    count is kept only for an active PIN, e.g. after a login on this card presence); else
    one more GET DATA of PIN1 (and its GET RESPONSE on T=0) in the transaction that reads
    PIN2's state, the application selected for it; when PIN2's count is kept and PIN1's is
    not, a transaction of its own (SELECT of the application, GET DATA). The Finnish card
    is unchanged: its PIN2 signs whatever PIN1's state."""

    driver = "esteid-thales"
    aid = THALES_AID
    keys = (THALES_AUTHENTICATION, THALES_SIGNING)

    def __init__(self, slot: CardSlot) -> None:
        super().__init__(slot)
        self._ask_pin1 = False  # pin_state reads PIN1 too (while pin_status reads PIN2)
        self._pin1: PinState | None = None  # what it read

    def pin_status(self, certificate: CertificateInfo) -> PinStatus:
        """The PIN's status; for the signing PIN also whether PIN1 is active (see the class)."""
        if self.key_for(certificate).pin.reference != THALES_PIN2.reference:
            return super().pin_status(certificate)
        self._ask_pin1, self._pin1 = True, None
        try:
            status = super().pin_status(certificate)
        finally:
            self._ask_pin1 = False
        pin1, self._pin1 = self._pin1, None
        if status.not_active:
            return status  # PIN2's own advice
        if pin1 is None:
            if self.pin_counters.get(THALES_PIN1.reference) is not None:
                return status  # PIN1 told its tries lately: it is active
            pin1 = self.transact(lambda transport: self._read_pin1(self.session(transport), select=True))
        if pin1.active:
            return status
        return replace(status, not_active=True, not_active_pin=PinKind.AUTHENTICATION, name=THALES_PIN1.name)

    def pin_state(self, fs: FileSystemSession, pin: PinSpec) -> PinState:
        state = super().pin_state(fs, pin)
        if (
            self._ask_pin1
            and pin.reference == THALES_PIN2.reference
            and self.pin_counters.get(THALES_PIN1.reference) is None
        ):
            self._pin1 = self._read_pin1(fs, select=False)  # the application is selected: GET DATA only
        return state

    def _read_pin1(self, fs: FileSystemSession, *, select: bool) -> PinState:
        """PIN1's state; its tries are kept when it is active (as a login's read keeps them)."""
        if select:
            self.enter(fs, THALES_PIN1.location)
        state = self.read_pin_state(fs, THALES_PIN1)
        self.pin_counters.put(THALES_PIN1.reference, state.retries_left if state.active else None)
        return state

    def read_serial(self, transport: ApduTransport) -> str:
        """SELECT the application, then the document number (9 characters)."""
        fs = self.session(transport)
        fs.select_aid(THALES_AID)
        fs.select_path(THALES_DOCUMENT_NUMBER)
        number = fs.read_ef(9, chunk=9)
        if len(number) != 9 or not number.isalnum():
            raise CardError("The card's document number cannot be read.")
        return number.decode("ascii")
