"""A PIV card application driver (NIST SP 800-73-4, part 2: the card command interface).

:class:`PivSession` is one class per card application in the yubikey-manager style: it
takes an :class:`~cardbridge.pcsc.apdu.ApduTransport` (bytes in, data and status word
out), never pyscard. Constants are named as in the specification.
"""

from __future__ import annotations

import enum
import gzip
import io
import zlib
from dataclasses import dataclass

from cardbridge.errors import (
    CardError,
    InvalidInputError,
    NoCertificateError,
    PinBlockedError,
    PinIncorrectError,
    PinInvalidLengthError,
    UnsupportedCardError,
    UnsupportedKeyError,
)
from cardbridge.iso7816 import INS_GENERAL_AUTHENTICATE, INS_GET_DATA, INS_SELECT, INS_VERIFY, tlv
from cardbridge.model import DIGEST_INFO_PREFIXES
from cardbridge.pcsc.apdu import SW, ApduError, ApduTransport, Response

AID = bytes.fromhex("A000000308000010000100")  # NIST RID, PIX 00 00 10 00 01 00
AID_SELECT = AID[:9]  # SP 800-73-4 part 2, 3.1.1: the right-truncated AID "A0 00 00 03 08 00 00 10 00"

INS_PUT_DATA = 0xDB
INS_GENERATE_ASYMMETRIC_KEY_PAIR = 0x47

P1_SELECT_BY_NAME = 0x04
P1_VERIFY = 0x00
P1_RESET_SECURITY_STATUS = 0xFF

TAG_OBJECT_ID = 0x5C
TAG_DATA_OBJECT = 0x53
TAG_CERTIFICATE = 0x70
TAG_CERT_INFO = 0x71
TAG_DYNAMIC_AUTH_TEMPLATE = 0x7C
TAG_WITNESS = 0x80
TAG_CHALLENGE = 0x81
TAG_RESPONSE = 0x82
TAG_APT = 0x61
TAG_CHUID_FASCN = 0x30
TAG_CHUID_GUID = 0x34

PIN_LENGTH = 8  # the PIN is sent padded with 0xFF to 8 bytes
PIN_MIN, PIN_MAX = 6, 8
PAD_BYTE = 0xFF
MAX_OBJECT_SIZE = 0x4000


class KeyRef(enum.IntEnum):
    """Key references (SP 800-73-4 part 1, table 4b)."""

    PIN = 0x80  # PIV Card Application PIN
    GLOBAL_PIN = 0x00
    PUK = 0x81
    AUTHENTICATION = 0x9A  # PIV Authentication key
    SIGNATURE = 0x9C  # Digital Signature key
    KEY_MANAGEMENT = 0x9D
    CARD_AUTH = 0x9E


class Algorithm(enum.IntEnum):
    """Cryptographic algorithm identifiers (SP 800-78-4, table 6-2)."""

    RSA_1024 = 0x06
    RSA_2048 = 0x07
    ECC_P256 = 0x11
    ECC_P384 = 0x14


class ObjectId(enum.IntEnum):
    """Data object tags (SP 800-73-4 part 1, table 3)."""

    CCC = 0x5FC107
    CHUID = 0x5FC102
    X509_PIV_AUTHENTICATION = 0x5FC105
    X509_DIGITAL_SIGNATURE = 0x5FC10A
    X509_KEY_MANAGEMENT = 0x5FC10B
    X509_CARD_AUTHENTICATION = 0x5FC101
    KEY_HISTORY = 0x5FC10C
    DISCOVERY = 0x7E


CERTIFICATE_OBJECTS = {
    KeyRef.AUTHENTICATION: ObjectId.X509_PIV_AUTHENTICATION,
    KeyRef.SIGNATURE: ObjectId.X509_DIGITAL_SIGNATURE,
    KeyRef.KEY_MANAGEMENT: ObjectId.X509_KEY_MANAGEMENT,
    KeyRef.CARD_AUTH: ObjectId.X509_CARD_AUTHENTICATION,
}
KEY_LABELS = {
    KeyRef.AUTHENTICATION: "PIV Authentication",
    KeyRef.SIGNATURE: "Digital Signature",
    KeyRef.KEY_MANAGEMENT: "Key Management",
    KeyRef.CARD_AUTH: "Card Authentication",
}


# -- TLV ---------------------------------------------------------------------------------
def parse_tlv(data: bytes) -> list[tuple[int, bytes]]:
    """BER-TLV at one level: a list of (tag, value). Raises CardError when malformed."""
    out: list[tuple[int, bytes]] = []
    i, n = 0, len(data)
    while i < n:
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:
            while True:
                if i >= n:
                    raise CardError("The card sent a truncated TLV tag.")
                tag = (tag << 8) | data[i]
                i += 1
                if not data[i - 1] & 0x80:
                    break
        if i >= n:
            raise CardError("The card sent a truncated TLV length.")
        length = data[i]
        i += 1
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 3 or i + count > n:
                raise CardError("The card sent a bad TLV length.")
            length = int.from_bytes(data[i : i + count], "big")
            i += count
        if i + length > n:
            raise CardError("The card sent a truncated TLV value.")
        out.append((tag, data[i : i + length]))
        i += length
    return out


def find_tlv(data: bytes, tag: int) -> bytes | None:
    for t, value in parse_tlv(data):
        if t == tag:
            return value
    return None


def _object_tag_bytes(object_id: int) -> bytes:
    return object_id.to_bytes((object_id.bit_length() + 7) // 8, "big")


# -- signature helpers -------------------------------------------------------------------


def pkcs1_v15_block(digest: bytes, hash_function: str, key_bytes: int) -> bytes:
    """EMSA-PKCS1-v1_5 (RFC 8017, 9.2): 00 01 FF… 00 DigestInfo, for raw RSA on the card."""
    prefix = DIGEST_INFO_PREFIXES.get(hash_function)
    if prefix is None or len(digest) != prefix[-1]:
        raise InvalidInputError(f"The digest does not fit {hash_function}.")
    t = prefix + digest
    if key_bytes < len(t) + 11:
        raise UnsupportedKeyError("The RSA key is too short for this hash.")
    return b"\x00\x01" + b"\xff" * (key_bytes - len(t) - 3) + b"\x00" + t


def ecdsa_der_to_raw(der: bytes, field_bytes: int) -> bytes:
    """An ECDSA-Sig-Value (SEQUENCE of r, s) as raw ``r || s``, each ``field_bytes`` long."""
    try:
        items = parse_tlv(der)
        if len(items) != 1 or items[0][0] != 0x30:
            raise CardError("The card's ECDSA signature is not a DER SEQUENCE.")
        parts = parse_tlv(items[0][1])
    except CardError:
        raise
    if len(parts) != 2 or any(tag != 0x02 for tag, _ in parts):
        raise CardError("The card's ECDSA signature is not two INTEGERs.")
    out = b""
    for _, value in parts:
        number = int.from_bytes(value, "big", signed=True)
        if number <= 0 or number.bit_length() > field_bytes * 8:
            raise CardError("The card's ECDSA signature has an out-of-range value.")
        out += number.to_bytes(field_bytes, "big")
    return out


# -- the session ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PinState:
    """The PIN as an empty VERIFY reports it (spends no try)."""

    verified: bool
    retries_left: int | None
    blocked: bool


@dataclass(frozen=True, slots=True)
class Chuid:
    """The Card Holder Unique Identifier's identifying parts."""

    fascn: bytes
    guid: bytes

    @property
    def serial(self) -> str:
        """A card serial number for display: the GUID, else the FASC-N, in hex."""
        if self.guid and any(self.guid):
            return self.guid.hex().upper()
        return self.fascn.hex().upper()


class PivSession:
    """The PIV card application on one card.

    Create it inside a PC/SC transaction: it SELECTs the application first (``select=True``).
    """

    def __init__(self, transport: ApduTransport, *, select: bool = True) -> None:
        self.transport = transport
        self.application_property_template = b""
        if select:
            self.select()

    def select(self) -> bytes:
        """SELECT the PIV application; returns the Application Property Template."""
        response = self.transport.send(0x00, INS_SELECT, P1_SELECT_BY_NAME, 0x00, AID_SELECT)
        if response.sw in (SW.FILE_NOT_FOUND, SW.FUNCTION_NOT_SUPPORTED, SW.INS_NOT_SUPPORTED, SW.CLA_NOT_SUPPORTED):
            raise UnsupportedCardError("The card has no PIV application.", sw=f"{response.sw:04X}")
        self.application_property_template = response.check()
        return self.application_property_template

    def get_data(self, object_id: int) -> bytes | None:
        """GET DATA: the value inside the object's 0x53 (0x7E for the discovery object); None if absent."""
        tag = _object_tag_bytes(object_id)
        response = self.transport.send(0x00, INS_GET_DATA, 0x3F, 0xFF, tlv(TAG_OBJECT_ID, tag))
        if response.sw == SW.FILE_NOT_FOUND:
            return None
        data = response.check()
        if len(data) > MAX_OBJECT_SIZE:
            raise CardError("A PIV data object is larger than expected.")
        outer = TAG_DATA_OBJECT if object_id != ObjectId.DISCOVERY else ObjectId.DISCOVERY
        value = find_tlv(data, outer)
        if value is None:
            raise CardError(f"PIV object {object_id:X} is not wrapped in tag {outer:X}.")
        return value

    def read_chuid(self) -> Chuid | None:
        value = self.get_data(ObjectId.CHUID)
        if value is None:
            return None
        items = dict(parse_tlv(value))
        return Chuid(items.get(TAG_CHUID_FASCN, b""), items.get(TAG_CHUID_GUID, b""))

    def read_certificate(self, key: KeyRef) -> bytes | None:
        """The DER certificate in the key's certificate object (decompressed); None if absent."""
        value = self.get_data(CERTIFICATE_OBJECTS[key])
        if not value:
            return None
        items = dict(parse_tlv(value))
        cert = items.get(TAG_CERTIFICATE)
        if not cert:
            return None
        info = items.get(TAG_CERT_INFO, b"\x00")
        if info and info[0] & 0x01:  # CertInfo: compressed (gzip)
            try:
                cert = _bounded_gunzip(cert)
            except (OSError, EOFError, zlib.error) as exc:
                raise CardError("A compressed certificate on the card cannot be read.") from exc
        return cert

    def pin_state(self) -> PinState:
        """VERIFY without data: the retry counter, spending no try."""
        response = self.transport.send(0x00, INS_VERIFY, P1_VERIFY, KeyRef.PIN, b"", le=None)
        if response.sw == SW.OK:
            return PinState(True, None, False)
        if response.sw1 == 0x63 and response.sw & 0xF0 == 0xC0:
            tries = response.sw & 0x0F
            return PinState(False, tries, tries == 0)
        if response.sw == SW.AUTH_METHOD_BLOCKED:
            return PinState(False, 0, True)
        raise ApduError(response.sw, f"The card answered {response.sw:04X} to a PIN status query.")

    def verify_pin(self, pin: bytearray) -> None:
        """VERIFY the PIV Card Application PIN. Sent once, never retried."""
        if not PIN_MIN <= len(pin) <= PIN_MAX:
            raise PinInvalidLengthError(f"The PIN must have {PIN_MIN} to {PIN_MAX} digits.")
        data = bytearray(pin) + bytearray([PAD_BYTE] * (PIN_LENGTH - len(pin)))
        try:
            response = self.transport.send(0x00, INS_VERIFY, P1_VERIFY, KeyRef.PIN, bytes(data), le=None)
        finally:
            data[:] = b"\x00" * len(data)
        check_verify(response)

    def reset_security_status(self) -> None:
        """VERIFY with P1=FF: log out (SP 800-73-4)."""
        self.transport.send(0x00, INS_VERIFY, P1_RESET_SECURITY_STATUS, KeyRef.PIN, b"", le=None)

    def general_authenticate(self, key: KeyRef, algorithm: Algorithm, challenge: bytes) -> bytes:
        """GENERAL AUTHENTICATE with a challenge: the card's signature (DER for ECDSA,
        the raw RSA result for RSA)."""
        template = tlv(TAG_DYNAMIC_AUTH_TEMPLATE, tlv(TAG_RESPONSE, b"") + tlv(TAG_CHALLENGE, challenge))
        response = self.transport.send(0x00, INS_GENERAL_AUTHENTICATE, algorithm, key, template)
        if response.sw == SW.SECURITY_STATUS_NOT_SATISFIED:
            raise CardError("The card wants the PIN again before it signs.", sw=f"{response.sw:04X}")
        if response.sw in (SW.INCORRECT_P1P2, SW.REFERENCE_NOT_FOUND, SW.FILE_NOT_FOUND):
            raise UnsupportedKeyError("The card has no such key or algorithm.", sw=f"{response.sw:04X}")
        outer = find_tlv(response.check(), TAG_DYNAMIC_AUTH_TEMPLATE)
        signature = find_tlv(outer, TAG_RESPONSE) if outer is not None else None
        if not signature:
            raise CardError("The card's GENERAL AUTHENTICATE answer has no response.")
        return signature


def check_verify(response: Response) -> None:
    """Turn a VERIFY status word into the PIN errors."""
    sw = response.sw
    if sw == SW.OK:
        return
    if sw >> 8 == 0x63 and sw & 0xF0 == 0xC0:
        tries = sw & 0x0F
        if tries == 0:
            raise PinBlockedError("The PIN is blocked.", retries_left=0)
        raise PinIncorrectError("The PIN is incorrect.", retries_left=tries)
    if sw == SW.AUTH_METHOD_BLOCKED:
        raise PinBlockedError("The PIN is blocked.", retries_left=0)
    if sw in (SW.WRONG_DATA, SW.WRONG_LENGTH):
        raise PinInvalidLengthError("The card refused the PIN's length or format.")
    raise ApduError(sw)


def _bounded_gunzip(data: bytes, limit: int = 0x8000) -> bytes:
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
        out = fh.read(limit + 1)
    if len(out) > limit:
        raise OSError("decompressed certificate too large")
    return out


def no_certificate(key: KeyRef) -> NoCertificateError:
    return NoCertificateError(f"The card has no {KEY_LABELS[key]} certificate.")
