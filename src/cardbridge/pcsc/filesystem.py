"""A shared base for ISO 7816-4 file-system cards (the national ID cards).

:class:`FileSystemSession` is the card commands such cards share (SELECT by DF name, path
or file identifier, READ BINARY of a whole EF, VERIFY and its tries-left form, MSE SET,
PSO COMPUTE DIGITAL SIGNATURE, INTERNAL AUTHENTICATE), over an
:class:`~cardbridge.pcsc.apdu.ApduTransport` and nothing else.

:class:`FileSystemToken` is a :class:`~cardbridge.pcsc.cardtoken.CardToken` described by
data: the application's AID (:attr:`FileSystemToken.aid`, confirmed by SELECT), and one
:class:`KeySpec` per key (its certificate's file, its PIN as a :class:`PinSpec`, the MSE SET
template and the signing command). A national driver is then a subclass with those class
attributes and, where its card differs, an override of one hook (:meth:`~FileSystemToken.enter`,
:meth:`~FileSystemToken.read_serial`, :meth:`~FileSystemToken.pin_state`,
:meth:`~FileSystemToken.compute_signature`, :meth:`~FileSystemToken.logout`).

Log out: after a VERIFY the token logs out with the card's own command (by default SELECT of
the application again, which ends its security status), not with SCARD_RESET_CARD, so the
card is not reset under other programs. If that fails the card is reset on disconnect.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from cardbridge.errors import (
    CardbridgeError,
    CardError,
    InvalidInputError,
    NoCertificateError,
    PinBlockedError,
    PinError,
    PinIncorrectError,
    PinInvalidLengthError,
    UnsupportedCardError,
    UnsupportedKeyError,
)
from cardbridge.iso7816 import (
    CRT_AT,
    INS_INTERNAL_AUTHENTICATE,
    INS_MSE,
    INS_PSO,
    INS_READ_BINARY,
    INS_SELECT,
    INS_VERIFY,
)
from cardbridge.model import (
    CURVE_HASHES,
    CertificateInfo,
    CryptoAlgorithm,
    KeyType,
    Padding,
    PinStatus,
    Purpose,
    SignatureAlgorithm,
)
from cardbridge.pcsc.apdu import SW, ApduError, ApduTransport, Response
from cardbridge.pcsc.cardtoken import CardSlot, CardToken, SignRequest, parse_or_warn
from cardbridge.pcsc.pinstate import PinCounters
from cardbridge.pcsc.piv import check_verify, ecdsa_der_to_raw, parse_tlv

log = logging.getLogger(__name__)
T = TypeVar("T")

P1_SELECT_MF_DF_EF = 0x00
P1_SELECT_CHILD_DF = 0x01
P1_SELECT_DF_NAME = 0x04
P1_SELECT_PATH_FROM_MF = 0x08
P1_SELECT_PATH_FROM_DF = 0x09
P2_FCP = 0x04
P2_FCI = 0x00
P2_NO_DATA = 0x0C
MSE_SET_COMPUTE = 0x41  # P1 of MSE SET for computation (sign, authenticate)
PSO_CDS_P1P2 = (0x9E, 0x9A)

MAX_EF_SIZE = 0x4000
FORMAT_2_LENGTH = 8  # an ISO 9564 format-2 PIN block
_NOT_APPLICATION = (SW.FILE_NOT_FOUND, SW.FUNCTION_NOT_SUPPORTED, SW.INS_NOT_SUPPORTED, SW.CLA_NOT_SUPPORTED)


class SignCommand(enum.Enum):
    """How the card is asked to sign once the key is set with MSE SET."""

    INTERNAL_AUTHENTICATE = "internal-authenticate"
    PSO_CDS = "pso-cds"


@dataclass(frozen=True, slots=True)
class Location:
    """Where something is: an application (SELECT by DF name) and/or a path of FIDs
    (from the MF when there is no AID, else from the application)."""

    aid: bytes = b""
    path: bytes = b""


class PinEncoding(enum.Enum):
    """How VERIFY carries the PIN."""

    PADDED = "padded"  # the typed characters, padded to ``pad_length`` with ``pad_byte``
    FORMAT_2 = "iso9564-2"  # ISO 9564 format 2: 2L, BCD digits, F padding, 8 bytes


@dataclass(frozen=True, slots=True)
class PinSpec:
    """A PIN as the card keeps it."""

    reference: int
    name: str  # what the card and its country call it: "PIN1", "PIN2", "PIN-koodi", …
    min_length: int
    max_length: int
    location: Location = Location()  # where to be before VERIFY
    pad_length: int = 0  # pad to this many bytes (0: sent as typed)
    pad_byte: int = 0xFF
    encoding: PinEncoding = PinEncoding.PADDED


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One key, its certificate and its PIN."""

    purpose: Purpose
    label: str
    key_id: bytes  # CertificateInfo.key_id of its certificate
    key_reference: int
    certificate: Location  # the EF with the certificate
    pin: PinSpec
    location: Location  # where to be for MSE SET and the signing command
    sign_command: SignCommand
    mse_template: int = CRT_AT  # P2 of MSE SET
    mse_data: bytes = b""  # the CRT's data (algorithm 80…, key 84…); empty: no MSE SET
    digest_length: int = 0  # the digest cut or left-padded to this many bytes (0: as it is)
    le: int = 0  # Le of the signing command (0: everything)


@dataclass(frozen=True, slots=True)
class PinState:
    """What the card says about a PIN without spending a try."""

    retries_left: int | None
    blocked: bool
    verified: bool = False
    active: bool = True  # False: the holder must change (activate) the PIN before it is used
    maximum: int | None = None  # the PIN's retry limit, where the card's answer gives it


class FileSystemSession:
    """ISO 7816-4 commands over one transport (inside one transaction)."""

    def __init__(self, transport: ApduTransport, *, cla: int = 0x00) -> None:
        self.transport = transport
        self.cla = cla

    def send(self, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = 0) -> Response:
        return self.transport.send(self.cla, ins, p1, p2, data, le)

    # -- SELECT ----------------------------------------------------------------------------
    def select_aid(self, aid: bytes, *, p2: int = P2_NO_DATA) -> bytes:
        """SELECT by DF name; UnsupportedCardError when the card has no such application."""
        response = self.send(INS_SELECT, P1_SELECT_DF_NAME, p2, aid, None if p2 == P2_NO_DATA else 0)
        if response.sw in _NOT_APPLICATION:
            raise UnsupportedCardError(f"The card has no application {aid.hex().upper()}.", sw=f"{response.sw:04X}")
        return response.check()

    def select_mf(self) -> None:
        self.send(INS_SELECT, P1_SELECT_MF_DF_EF, P2_NO_DATA, b"", None).check()

    def select_path(self, path: bytes, *, from_mf: bool = True, fcp: bool = False) -> bytes:
        """SELECT by path (FIDs without the MF's 3F00) from the MF or the current DF;
        returns the FCP when ``fcp``. NoCertificateError-free: ApduError(6A82) when absent."""
        p1 = P1_SELECT_PATH_FROM_MF if from_mf else P1_SELECT_PATH_FROM_DF
        return self.send(INS_SELECT, p1, P2_FCP if fcp else P2_NO_DATA, path, 0 if fcp else None).check()

    def select_fid(self, fid: bytes, *, fcp: bool = False) -> bytes:
        return self.send(INS_SELECT, P1_SELECT_MF_DF_EF, P2_FCP if fcp else P2_NO_DATA, fid, 0 if fcp else None).check()

    def enter(self, location: Location) -> None:
        """Go to ``location``: its application, then its path (DFs)."""
        if location.aid:
            self.select_aid(location.aid)
        if location.path:
            self.select_path(location.path, from_mf=not location.aid)

    # -- READ BINARY -----------------------------------------------------------------------
    def read_binary(self, offset: int, length: int) -> Response:
        if not 0 <= offset <= 0x7FFF:
            raise InvalidInputError("READ BINARY offset out of range")
        return self.send(INS_READ_BINARY, offset >> 8, offset & 0xFF, b"", length)

    def read_ef(self, size: int | None = None, *, chunk: int = 0xFF) -> bytes:
        """The whole selected EF: ``size`` bytes (from its FCP) or until the card has no more."""
        data = bytearray()
        limit = min(size if size is not None else MAX_EF_SIZE, MAX_EF_SIZE)
        while len(data) < limit:
            want = min(chunk, limit - len(data))
            response = self.read_binary(len(data), want)
            if response.sw in (0x6B00, 0x6282) and size is None:  # past the end / end reached early
                data += response.data
                break
            part = response.check()
            data += part
            if not part or (size is None and len(part) < want):
                break
        return bytes(data)

    def read_file(self, location: Location, *, chunk: int = 0xFF) -> bytes:
        """SELECT the EF at ``location`` (asking for its FCP) and read all of it."""
        if location.aid:
            self.select_aid(location.aid)
        fcp = self.select_path(location.path, from_mf=not location.aid, fcp=True) if location.path else b""
        return self.read_ef(fcp_size(fcp), chunk=chunk)

    # -- PINs ------------------------------------------------------------------------------
    def pin_state(self, reference: int) -> PinState:
        """VERIFY without data: the tries left, spending none (63Cx, 9000, 6983)."""
        response = self.send(INS_VERIFY, 0x00, reference, b"", None)
        if response.sw == SW.OK:
            return PinState(None, False, True)
        if response.sw1 == 0x63 and response.sw & 0xF0 == 0xC0:
            tries = response.sw & 0x0F
            return PinState(tries, tries == 0)
        if response.sw == SW.AUTH_METHOD_BLOCKED:
            return PinState(0, True)
        raise ApduError(response.sw, f"The card answered {response.sw:04X} to a PIN status query.")

    def verify(self, pin: PinSpec, value: bytearray) -> None:
        """VERIFY ``value`` (checked against the PIN's length rules, encoded as the card
        keeps it). Sent once, never retried; the encoded copy is wiped."""
        if not pin.min_length <= len(value) <= pin.max_length:
            raise PinInvalidLengthError(
                f"The {pin.name} must have {pin.min_length} to {pin.max_length} digits.",
                minLength=pin.min_length,
                maxLength=pin.max_length,
            )
        data = encode_pin(pin, value)
        try:
            response = self.send(INS_VERIFY, 0x00, pin.reference, bytes(data), None)
        finally:
            data[:] = b"\x00" * len(data)
        check_verify(response)

    # -- security environment and signing ------------------------------------------------
    def mse_set(self, template: int, data: bytes) -> None:
        response = self.send(INS_MSE, MSE_SET_COMPUTE, template, data, None)
        if response.sw in (SW.REFERENCE_NOT_FOUND, SW.INCORRECT_P1P2, SW.WRONG_DATA):
            raise UnsupportedKeyError("The card has no such key or algorithm.", sw=f"{response.sw:04X}")
        response.check()

    def compute(self, command: SignCommand, data: bytes, le: int = 0) -> bytes:
        if command is SignCommand.PSO_CDS:
            response = self.send(INS_PSO, *PSO_CDS_P1P2, data, le)
        else:
            response = self.send(INS_INTERNAL_AUTHENTICATE, 0x00, 0x00, data, le)
        if response.sw == SW.SECURITY_STATUS_NOT_SATISFIED:
            raise CardError("The card wants the PIN again before it signs.", sw=f"{response.sw:04X}")
        if response.sw == SW.AUTH_METHOD_BLOCKED:
            raise PinBlockedError("The PIN is blocked.", retries_left=0)
        return response.check()


def encode_pin(pin: PinSpec, value: bytearray) -> bytearray:
    """The VERIFY data for ``value`` (a new buffer: the caller wipes it)."""
    if pin.encoding is PinEncoding.FORMAT_2:
        if any(not 0x30 <= c <= 0x39 for c in value):
            raise PinInvalidLengthError(f"The {pin.name} has digits only.")
        block = bytearray([0x20 | len(value)]) + bytearray([0xFF] * (FORMAT_2_LENGTH - 1))
        for i, c in enumerate(value):  # two BCD digits a byte, the first in the high nibble
            shift = 4 if i % 2 == 0 else 0
            block[1 + i // 2] = (block[1 + i // 2] & ~(0x0F << shift) & 0xFF) | ((c - 0x30) << shift)
        return block
    data = bytearray(value)
    if pin.pad_length > len(data):
        data += bytes([pin.pad_byte]) * (pin.pad_length - len(data))
    return data


def fcp_size(fcp: bytes) -> int | None:
    """The file size in an FCP template (tag 62: 80 = data bytes, else 81), if any."""
    try:
        items = parse_tlv(fcp)
        if len(items) != 1 or items[0][0] not in (0x62, 0x6F):
            return None
        inner = dict(parse_tlv(items[0][1]))
    except CardError:
        return None
    value = inner.get(0x80) or inner.get(0x81)
    return int.from_bytes(value, "big") if value else None


def der_length(data: bytes) -> int | None:
    """The length of the DER SEQUENCE at the start of ``data`` (a certificate EF is often
    longer than its certificate, padded with 00 or FF)."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 3 or len(data) < 2 + count:
        return None
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big")


def signature_to_raw(signature: bytes, field_bytes: int) -> bytes:
    """A card's ECDSA signature as raw ``r || s``: kept when it is already that long, else
    parsed as DER."""
    if len(signature) == 2 * field_bytes:
        return signature
    return ecdsa_der_to_raw(signature, field_bytes)


class FileSystemToken(CardToken):
    """A card with an ISO 7816-4 file system, described by :attr:`aid` and :attr:`keys`.

    The tries left of each PIN are kept in :attr:`pin_counters` (see
    :mod:`cardbridge.pcsc.pinstate`: when a count is used without asking the card, and what
    happens when another program uses the card between two logins).
    """

    aid: ClassVar[bytes] = b""
    keys: ClassVar[tuple[KeySpec, ...]] = ()
    read_chunk: ClassVar[int] = 0xFF  # READ BINARY size

    def __init__(self, slot: CardSlot) -> None:
        super().__init__(slot)
        self.pin_counters = PinCounters()
        self.card_shared = False  # another PC/SC client held the card at the last pin_status

    # -- model.Token -----------------------------------------------------------------------
    def pin_status(self, certificate: CertificateInfo) -> PinStatus:
        """The PIN's tries left: as the card said them last (no APDU) when that is still
        good (:mod:`cardbridge.pcsc.pinstate`), else read from the card."""
        pin = self.key_for(certificate).pin
        # A blocked PIN (0) is asked again: a PUK may have unblocked it since.
        tries = self.pin_counters.get(pin.reference) or None
        self.card_shared = self.other_client()
        if self.card_shared:
            self.pin_counters.forget()  # another program has the card open: ask the card
            tries = None
        if tries is None:
            state = self.transact(lambda transport: self.pin_state(self.session(transport), pin))
            # A PIN not active yet is asked about again next time (the holder may change it).
            self.pin_counters.put(pin.reference, state.retries_left if state.active else None)
            if state.maximum is not None:
                self.pin_counters.learn_maximum(pin.reference, state.maximum)
        else:
            state = PinState(tries, tries == 0)  # the card told it, from a VERIFY or an active PIN
        return PinStatus(
            retries_left=state.retries_left,
            final_try=state.retries_left == 1,
            blocked=state.blocked,
            not_active=not state.active,
            min_length=pin.min_length,
            max_length=pin.max_length,
            name=pin.name,
        )

    def supported_algorithms(self, certificate: CertificateInfo) -> Sequence[SignatureAlgorithm]:
        if certificate.key_type == KeyType.EC:
            hash_function = CURVE_HASHES.get(certificate.curve or "")
            return (SignatureAlgorithm(CryptoAlgorithm.ECC, hash_function, Padding.NONE),) if hash_function else ()
        return ()

    def sign_on_card(self, transport: ApduTransport, request: SignRequest) -> bytes:
        """:meth:`before_verify`, VERIFY, the key's location (when not the PIN's),
        :meth:`compute_signature`, the card's :meth:`logout` after a VERIFY, and (once per PIN
        and card presence) :meth:`learn_maximum`."""
        key = self.key_for(request.certificate)
        fs = self.session(transport)
        self.before_verify(fs, key, request)
        self.verify_pin(fs, key.pin, request.pin)
        try:
            if key.location != key.pin.location:
                self.enter(fs, key.location)
            signature = self.compute_signature(fs, key, request)
        finally:
            self.log_out(request, lambda: self.logout(fs, key))
        if not request.reset:  # logged out with the card's own command
            self.learn_maximum(fs, key.pin)
        return signature

    def check_key(self, certificate: CertificateInfo) -> None:
        self.key_for(certificate)

    def transact(self, step: Callable[[ApduTransport], T], *, reset: bool | Callable[[], bool] = False) -> T:
        """:meth:`CardToken.transact`; any failure but a PIN the card refused forgets the
        PINs' counts (a removal, a reset, a card error: the next dialog asks the card)."""
        try:
            return super().transact(step, reset=reset)
        except PinError:
            raise
        except BaseException:
            self.pin_counters.forget()
            raise

    def verify_pin(self, fs: FileSystemSession, pin: PinSpec, value: bytearray) -> None:
        """VERIFY (once, never retried), and keep the tries left the card's answer gives:
        ``63Cx`` x, ``6983`` none, ``9000`` the maximum — the one the card told
        (:meth:`PinCounters.verified`: until it has, the count is forgotten)."""
        try:
            fs.verify(pin, value)
        except PinBlockedError:
            self.pin_counters.put(pin.reference, 0)
            raise
        except PinIncorrectError as exc:
            self.pin_counters.put(pin.reference, exc.retries_left)
            raise
        except BaseException:
            self.pin_counters.forget(pin.reference)
            raise
        self.pin_counters.verified(pin.reference)

    def learn_maximum(self, fs: FileSystemSession, pin: PinSpec) -> None:
        """After the card's ``9000`` to a VERIFY, when it has not told the PIN's retry limit
        in this card presence: read the PIN's state in the same transaction (after the
        logout, which ends the security status but leaves the counter). The right PIN put the
        counter back at its maximum (ISO 7816-4), and no other program can send a command
        inside the transaction, so the count the card now gives is its own limit (or the card
        names it, as the Estonian IDEMIA card does in ``9A``). One read per PIN and card
        presence — in that login only; later logins show the count without asking. A failed
        read forgets the count (the next dialog asks the card); the signature stands."""
        if self.pin_counters.maximum(pin.reference) is not None:
            return
        try:
            state = self.pin_state(fs, pin)
        except CardbridgeError as exc:
            log.info("The card did not tell the %s's tries left after the right PIN (%s)", pin.name, exc.code)
            self.pin_counters.forget(pin.reference)
            return
        maximum = state.maximum if state.maximum is not None else state.retries_left
        if maximum is None or maximum <= 0 or state.blocked or not state.active:
            self.pin_counters.forget(pin.reference)
            return
        self.pin_counters.learn_maximum(pin.reference, maximum)
        self.pin_counters.put(pin.reference, state.retries_left)

    # -- hooks a driver may override -----------------------------------------------------
    def session(self, transport: ApduTransport) -> FileSystemSession:
        return FileSystemSession(transport)

    def enter(self, fs: FileSystemSession, location: Location) -> None:
        fs.enter(location)

    def before_verify(self, fs: FileSystemSession, key: KeySpec, request: SignRequest) -> None:
        """Before a signature's VERIFY: go where the PIN is."""
        self.enter(fs, key.pin.location)

    def read_serial(self, transport: ApduTransport) -> str:
        """SELECT the application (the card's confirmation); no serial by default."""
        self.session(transport).select_aid(self.aid)
        return ""

    def read_certificates(self, transport: ApduTransport) -> list[CertificateInfo]:
        fs = self.session(transport)
        out: list[CertificateInfo] = []
        for key in self.keys:
            try:
                der = self.read_certificate(fs, key)
            except ApduError as exc:
                if exc.sw == SW.FILE_NOT_FOUND:
                    continue
                raise
            cert = parse_or_warn(der, key.key_id, key.label) if der is not None else None
            if cert is not None:
                out.append(cert)
        return out

    def read_certificate(self, fs: FileSystemSession, key: KeySpec) -> bytes | None:
        """The DER certificate of ``key`` (None when its file holds none): the whole EF,
        cut to the certificate's DER length."""
        raw = fs.read_file(key.certificate, chunk=self.read_chunk)
        size = der_length(raw)
        if size is None or size > len(raw):
            log.warning("The %s certificate file holds no certificate", key.label)
            return None
        return raw[:size]

    def pin_state(self, fs: FileSystemSession, pin: PinSpec) -> PinState:
        self.enter(fs, pin.location)
        return fs.pin_state(pin.reference)

    def compute_signature(self, fs: FileSystemSession, key: KeySpec, request: SignRequest) -> bytes:
        """After VERIFY: MSE SET (when the key has a CRT) and the signing command."""
        if key.mse_data:
            fs.mse_set(key.mse_template, key.mse_data)
        # ECDSA uses the hash's leftmost bits: a longer hash is cut, a shorter one left-padded.
        digest = request.digest
        data = digest[: key.digest_length].rjust(key.digest_length, b"\x00") if key.digest_length else digest
        signature = fs.compute(key.sign_command, data, key.le)
        field_bytes = (request.certificate.key_size + 7) // 8
        return signature_to_raw(signature, field_bytes)

    def logout(self, fs: FileSystemSession, key: KeySpec) -> None:
        """End the PIN's security status: SELECT the application again."""
        fs.select_aid(key.pin.location.aid or self.aid)

    # -- helpers -------------------------------------------------------------------------
    def key_for(self, certificate: CertificateInfo) -> KeySpec:
        for key in self.keys:
            if key.key_id == certificate.key_id:
                return key
        raise NoCertificateError("The certificate is not from this card.")
