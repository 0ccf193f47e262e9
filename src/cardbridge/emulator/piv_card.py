"""The card side of a PIV application (NIST SP 800-73-4), emulated in Python.

:class:`PivApplet` turns command APDUs into response APDUs as a PIV card does: SELECT of
the PIV AID (with the Application Property Template), GET DATA of the discovery object,
CHUID, key history and the certificate containers, VERIFY of the PIV Card Application
PIN (reference 0x80) with a real retry counter, GENERAL AUTHENTICATE with the 9A and 9C
keys, command chaining, GET RESPONSE for long answers and extended length.

It deliberately does not share parsing code with the driver in ``cardbridge.pcsc``: a bug
in a shared TLV parser would be invisible to tests that run the driver against the
emulator. It never logs the PIN.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils

from cardbridge.emulator.devpki import PrivateKey
from cardbridge.emulator.iso7816 import (
    SW_AUTH_BLOCKED,
    SW_CHAINING_NOT_SUPPORTED,
    SW_CLA_NOT_SUPPORTED,
    SW_CONDITIONS,
    SW_FILE_NOT_FOUND,
    SW_INCORRECT_P1P2,
    SW_INS_NOT_SUPPORTED,
    SW_OK,
    SW_REF_NOT_FOUND,
    SW_SECURITY_STATUS,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
    Applet,
    CommandApdu,
    parse_tlv,
)
from cardbridge.iso7816 import INS_GENERAL_AUTHENTICATE, INS_GET_DATA, INS_GET_RESPONSE, INS_SELECT, INS_VERIFY, tlv

log = logging.getLogger(__name__)

PIV_AID = bytes.fromhex("A000000308000010000100")
PIV_AID_PREFIX = bytes.fromhex("A00000030800001000")  # what SELECT may name (partial AID)
PIV_RID = bytes.fromhex("A000000308")

# The ATR: T=1, historical bytes in compact-TLV form: card capabilities (tag 7, 3 bytes:
# selection by full/partial DF name; data coding; command chaining and extended Lc/Le),
# then card issuer's data (tag 5) "cardbrdg".
_ATR_BODY = bytes.fromhex("8E800180") + bytes.fromhex("73C021C0") + b"\x58cardbrdg"


def _with_tck(body: bytes) -> bytes:
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3b" + body + bytes([tck])


ATR = _with_tck(_ATR_BODY)


PIN_REFERENCE = 0x80
PIN_TRIES = 3

ALG_RSA_2048 = 0x07
ALG_ECC_P256 = 0x11
ALG_ECC_P384 = 0x14

KEY_AUTHENTICATION = 0x9A
KEY_SIGNATURE = 0x9C

OBJ_DISCOVERY = bytes.fromhex("7E")
OBJ_CHUID = bytes.fromhex("5FC102")
OBJ_CCC = bytes.fromhex("5FC107")
OBJ_KEY_HISTORY = bytes.fromhex("5FC10C")
OBJ_CERT_9A = bytes.fromhex("5FC105")
OBJ_CERT_9C = bytes.fromhex("5FC10A")


def _sw(sw: int, data: bytes = b"") -> bytes:
    return data + sw.to_bytes(2, "big")


@dataclass
class PivCardData:
    """What is on the card: keys, certificates (DER) and the CHUID identifiers."""

    auth_key: PrivateKey
    auth_cert: bytes
    sign_key: PrivateKey
    sign_cert: bytes
    guid: bytes  # 16 bytes
    fascn: bytes = field(default=bytes.fromhex("D4E739DA739CED39CE739D836858210842108421C84210C3EB"))
    label: str = "cardbridge virtual PIV"


class PivApplet(Applet):
    """The PIV card application. Call :meth:`process` with each command APDU.

    ``on_apdu`` (if given) is called with every command and response — for counting.
    """

    atr = ATR

    def __init__(self, data: PivCardData, pin: str) -> None:
        if not (6 <= len(pin) <= 8 and pin.isdigit()):
            raise ValueError("a PIV PIN is 6 to 8 digits")
        super().__init__()
        self._data = data
        self._pin = pin.encode().ljust(8, b"\xff")
        self.pin_max_tries = PIN_TRIES  # the applet's limit; set_pin_tries for another
        self.pin_tries_left = PIN_TRIES
        self.power_off()

    def set_pin_tries(self, tries: int) -> None:
        """The PIN's retry limit as another card would be personalised (the counter full). A
        PIV card reports the tries left only (VERIFY without data: ``63Cx``), not the limit."""
        if not 1 <= tries <= 15:
            raise ValueError("a retry counter of 1 to 15 tries (63Cx has one hex digit)")
        self.pin_max_tries = self.pin_tries_left = tries

    # -- card state ---------------------------------------------------------------
    def power_off(self) -> None:
        """Lose the volatile state: selection, security status, pending chains."""
        self._selected = False
        self._pin_verified = False
        self._pin_always_ok = False  # 9C: PIN verified immediately before
        self._chain_header: bytes | None = None
        self._chain_data = b""
        self._pending = b""

    def reset(self) -> None:
        self.power_off()

    # -- dispatch -----------------------------------------------------------------
    def respond(self, raw: bytes) -> bytes:
        try:
            apdu = CommandApdu.parse(raw)
        except ValueError:
            return _sw(SW_WRONG_LENGTH)
        if apdu.cla & 0xE0 not in (0x00,) or apdu.cla & 0x0C:
            return _sw(SW_CLA_NOT_SUPPORTED)
        if apdu.ins == INS_GET_RESPONSE:
            return self._answer(self._pending, apdu)
        self._pending = b""
        # Command chaining (CLA bit 0x10): collect data until the last command.
        header = bytes([apdu.cla & ~0x10 & 0xFF, apdu.ins, apdu.p1, apdu.p2])
        if apdu.cla & 0x10:
            if apdu.ins != INS_GENERAL_AUTHENTICATE:
                return _sw(SW_CHAINING_NOT_SUPPORTED)
            if self._chain_header not in (None, header):
                self._chain_header, self._chain_data = None, b""
                return _sw(SW_CONDITIONS)
            self._chain_header = header
            self._chain_data += apdu.data
            return _sw(SW_OK)
        if self._chain_header is not None:
            if self._chain_header != header:
                self._chain_header, self._chain_data = None, b""
                return _sw(SW_CONDITIONS)
            apdu = CommandApdu(apdu.cla, apdu.ins, apdu.p1, apdu.p2, self._chain_data + apdu.data, apdu.le, True)
            self._chain_header, self._chain_data = None, b""
        if apdu.ins == INS_SELECT:
            return self._select(apdu)
        if not self._selected:
            return _sw(SW_INS_NOT_SUPPORTED if apdu.ins not in (INS_GET_DATA, INS_VERIFY) else SW_FILE_NOT_FOUND)
        handler = {
            INS_GET_DATA: self._get_data,
            INS_VERIFY: self._verify,
            INS_GENERAL_AUTHENTICATE: self._general_authenticate,
        }.get(apdu.ins)
        if handler is None:
            return _sw(SW_INS_NOT_SUPPORTED)
        # Any command other than GENERAL AUTHENTICATE after a VERIFY spends "PIN always".
        if apdu.ins != INS_GENERAL_AUTHENTICATE:
            self._pin_always_ok = False
        return handler(apdu)

    def _answer(self, data: bytes, apdu: CommandApdu) -> bytes:
        """Return ``data``: all of it when Le allows, else in 256-byte parts with 61xx."""
        limit = apdu.le if apdu.le is not None else (65536 if apdu.extended else 256)
        if len(data) <= limit:
            self._pending = b""
            return _sw(SW_OK, data)
        part, self._pending = data[:limit], data[limit:]
        remaining = len(self._pending)
        return _sw(0x6100 | (remaining if remaining < 256 else 0), part)

    # -- SELECT -------------------------------------------------------------------
    def _select(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 != 0x04:
            return _sw(SW_FILE_NOT_FOUND)
        aid = apdu.data
        if len(aid) < len(PIV_RID) or not PIV_AID.startswith(aid):
            return _sw(SW_FILE_NOT_FOUND)
        self._selected = True
        self._pin_verified = False
        self._pin_always_ok = False
        algorithms = b"".join(tlv(0x80, bytes([alg])) for alg in (ALG_RSA_2048, ALG_ECC_P256, ALG_ECC_P384))
        apt = tlv(
            0x61,
            tlv(0x4F, PIV_AID[5:])
            + tlv(0x79, tlv(0x4F, PIV_RID))
            + tlv(0x50, self._data.label.encode())
            + tlv(0xAC, algorithms + tlv(0x06, b"\x00")),
        )
        return self._answer(apt, apdu)

    # -- GET DATA -----------------------------------------------------------------
    def _objects(self) -> dict[bytes, bytes]:
        chuid = (
            tlv(0x30, self._data.fascn)
            + tlv(0x34, self._data.guid)
            + tlv(0x35, b"20351231")
            + tlv(0x3E, b"")
            + tlv(0xFE, b"")
        )
        return {
            OBJ_DISCOVERY: tlv(0x7E, tlv(0x4F, PIV_AID) + tlv(0x5F2F, b"\x40\x00")),
            OBJ_CHUID: tlv(0x53, chuid),
            OBJ_KEY_HISTORY: tlv(0x53, tlv(0xC1, b"\x00") + tlv(0xC2, b"\x00") + tlv(0xFE, b"")),
            OBJ_CERT_9A: tlv(0x53, tlv(0x70, self._data.auth_cert) + tlv(0x71, b"\x00") + tlv(0xFE, b"")),
            OBJ_CERT_9C: tlv(0x53, tlv(0x70, self._data.sign_cert) + tlv(0x71, b"\x00") + tlv(0xFE, b"")),
        }

    def _get_data(self, apdu: CommandApdu) -> bytes:
        if (apdu.p1, apdu.p2) != (0x3F, 0xFF):
            return _sw(SW_INCORRECT_P1P2)
        try:
            items = parse_tlv(apdu.data)
        except ValueError:
            return _sw(SW_WRONG_DATA)
        if len(items) != 1 or items[0][0] != 0x5C:
            return _sw(SW_WRONG_DATA)
        value = self._objects().get(items[0][1])
        if value is None:
            return _sw(SW_FILE_NOT_FOUND)
        return self._answer(value, apdu)

    # -- VERIFY -------------------------------------------------------------------
    def _verify(self, apdu: CommandApdu) -> bytes:
        if apdu.p2 != PIN_REFERENCE:
            return _sw(SW_REF_NOT_FOUND)
        if apdu.p1 == 0xFF:  # reset the security status
            if apdu.data:
                return _sw(SW_WRONG_DATA)
            self._pin_verified = self._pin_always_ok = False
            return _sw(SW_OK)
        if apdu.p1 != 0x00:
            return _sw(SW_INCORRECT_P1P2)
        if not apdu.data:  # status only: spends no try
            if self._pin_verified:
                return _sw(SW_OK)
            if self.pin_tries_left == 0:
                return _sw(SW_AUTH_BLOCKED)
            return _sw(0x63C0 | self.pin_tries_left)
        if self.pin_tries_left == 0:
            return _sw(SW_AUTH_BLOCKED)
        if len(apdu.data) != 8:
            return _sw(SW_WRONG_DATA)
        if apdu.data == self._pin:
            self.pin_tries_left = self.pin_max_tries
            self._pin_verified = self._pin_always_ok = True
            return _sw(SW_OK)
        self.pin_tries_left -= 1
        self._pin_verified = self._pin_always_ok = False
        return _sw(0x63C0 | self.pin_tries_left)

    # -- GENERAL AUTHENTICATE -----------------------------------------------------
    def _general_authenticate(self, apdu: CommandApdu) -> bytes:
        key_ref, alg = apdu.p2, apdu.p1
        if key_ref == KEY_AUTHENTICATION:
            key, allowed = self._data.auth_key, self._pin_verified
        elif key_ref == KEY_SIGNATURE:
            key, allowed = self._data.sign_key, self._pin_verified and self._pin_always_ok
        else:
            return _sw(SW_REF_NOT_FOUND)
        self._pin_always_ok = False
        if alg != _alg_of(key):
            return _sw(SW_INCORRECT_P1P2)
        try:
            outer = parse_tlv(apdu.data)
            if len(outer) != 1 or outer[0][0] != 0x7C:
                return _sw(SW_WRONG_DATA)
            inner = dict(parse_tlv(outer[0][1]))
        except ValueError:
            return _sw(SW_WRONG_DATA)
        if 0x82 not in inner or inner[0x82] != b"" or 0x81 not in inner:
            return _sw(SW_WRONG_DATA)
        if not allowed:
            return _sw(SW_SECURITY_STATUS)
        challenge = inner[0x81]
        try:
            signature = _raw_sign(key, challenge)
        except ValueError:
            return _sw(SW_WRONG_DATA)
        return self._answer(tlv(0x7C, tlv(0x82, signature)), apdu)


def _alg_of(key: PrivateKey) -> int:
    if isinstance(key, rsa.RSAPrivateKey):
        return ALG_RSA_2048
    return ALG_ECC_P256 if key.curve.key_size == 256 else ALG_ECC_P384


def _raw_sign(key: PrivateKey, challenge: bytes) -> bytes:
    """What the PIV card computes: raw RSA on a full-length block, or ECDSA (DER) on a hash."""
    if isinstance(key, rsa.RSAPrivateKey):
        size = key.key_size // 8
        if len(challenge) != size:
            raise ValueError("the RSA block must be the modulus length")
        numbers = key.private_numbers()
        m = int.from_bytes(challenge, "big")
        n = numbers.public_numbers.n
        if m >= n:
            raise ValueError("block too large")
        return pow(m, numbers.d, n).to_bytes(size, "big")
    size = (key.curve.key_size + 7) // 8
    digest = challenge[:size].rjust(size, b"\x00")
    chosen: hashes.HashAlgorithm = hashes.SHA256() if size == 32 else hashes.SHA384()
    return key.sign(digest, ec.ECDSA(utils.Prehashed(chosen)))


def public_key_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
