"""APDU encoding and the transport rules every card needs (pure: no pyscard here).

A :class:`Connection` is one method, bytes in and bytes (data + SW1 SW2) out.
:class:`ApduTransport` puts the ISO 7816-4 rules on top of it:

- ``61xx``: more data waits; fetch it with GET RESPONSE (T=0, and cards that chain
  long answers the same way over T=1);
- ``6Cxx``: wrong Le; send the same command again with Le = xx;
- command chaining (CLA bit 0x10) when the data is longer than one short APDU and the
  card has no extended length;
- extended length (Lc/Le on three bytes) when the card says it supports it.

APDUs are logged at :data:`TRACE` (below DEBUG), and the data of VERIFY, CHANGE
REFERENCE DATA and RESET RETRY COUNTER is never logged.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Protocol

from cardbridge.errors import CardError
from cardbridge.iso7816 import INS_GET_RESPONSE, SECRET_INS
from cardbridge.logsetup import TRACE

log = logging.getLogger("cardbridge.pcsc.apdu")

CLA_CHAINING = 0x10
SHORT_MAX_DATA = 255
SHORT_MAX_LE = 256
EXTENDED_MAX_DATA = 65535
EXTENDED_MAX_LE = 65536
_MAX_GET_RESPONSE = 64  # a card that keeps saying 61xx forever is broken


class SW(enum.IntEnum):
    """Status words (ISO 7816-4) the drivers look at."""

    OK = 0x9000
    WRONG_LENGTH = 0x6700
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    CONDITIONS_NOT_SATISFIED = 0x6985
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    INCORRECT_P1P2 = 0x6A86
    REFERENCE_NOT_FOUND = 0x6A88
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00


class Connection(Protocol):
    """A card connection: one command APDU in, the response's data and status word out
    (:func:`split_response` makes them from the bytes a reader returns)."""

    def transmit(self, apdu: bytes) -> tuple[bytes, int]: ...


def split_response(raw: bytes) -> tuple[bytes, int]:
    """A response APDU's data and status word (ISO 7816-4: the last two bytes are SW1 SW2).
    Fewer than two bytes is a broken answer: CardError."""
    if len(raw) < 2:
        raise CardError("The card sent a response shorter than a status word.")
    return bytes(raw[:-2]), int.from_bytes(raw[-2:], "big")


class ApduError(CardError):
    """The card answered with a status word the caller did not expect."""

    def __init__(self, sw: int, message: str | None = None) -> None:
        super().__init__(message or f"The card answered {sw:04X}.", sw=f"{sw:04X}")
        self.sw = sw


@dataclass(frozen=True, slots=True)
class Response:
    """A response APDU: data and status word."""

    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def ok(self) -> bool:
        return self.sw == SW.OK

    def check(self) -> bytes:
        """The data when the SW is 9000, else ApduError."""
        if self.sw != SW.OK:
            raise ApduError(self.sw)
        return self.data


def encode_apdu(
    cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None, *, extended: bool = False
) -> bytes:
    """Encode a command APDU (cases 1–4). ``le`` is the number of bytes expected
    (256 short / 65536 extended means "as many as there are"); None means no Le field."""
    for value in (cla, ins, p1, p2):
        if not 0 <= value <= 0xFF:
            raise ValueError("header bytes are 0..255")
    header = bytes((cla, ins, p1, p2))
    if not extended:
        if len(data) > SHORT_MAX_DATA or (le is not None and not 1 <= le <= SHORT_MAX_LE):
            raise ValueError("too long for a short APDU")
        body = (bytes([len(data)]) + data) if data else b""
        if le is not None:
            body += bytes([le & 0xFF])
        return header + body
    if len(data) > EXTENDED_MAX_DATA or (le is not None and not 1 <= le <= EXTENDED_MAX_LE):
        raise ValueError("too long for an extended APDU")
    if data:
        body = b"\x00" + len(data).to_bytes(2, "big") + data
        if le is not None:
            body += (le & 0xFFFF).to_bytes(2, "big")
    elif le is not None:
        body = b"\x00" + (le & 0xFFFF).to_bytes(2, "big")
    else:
        body = b""
    return header + body


def _describe(apdu: bytes) -> str:
    if len(apdu) > 4 and apdu[1] in SECRET_INS:
        return apdu[:4].hex(" ").upper() + " <redacted>"
    return apdu.hex(" ").upper()


class ApduTransport:
    """ISO 7816-4 transport rules over a :class:`Connection`.

    ``extended``: the card takes extended Lc/Le (from its ATR or its driver); without it,
    long data goes by command chaining and long answers by GET RESPONSE.
    ``count`` counts the APDUs sent (GET RESPONSE and chained parts included).
    """

    def __init__(self, connection: Connection, *, extended: bool = False) -> None:
        self.connection = connection
        self.extended = extended
        self.count = 0

    def _exchange(self, apdu: bytes) -> Response:
        if log.isEnabledFor(TRACE):
            log.log(TRACE, "> %s", _describe(apdu))
        self.count += 1
        response = Response(*self.connection.transmit(apdu))
        if log.isEnabledFor(TRACE):
            log.log(TRACE, "< %s %04X", response.data.hex(" ").upper(), response.sw)
        return response

    def send(self, cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = 0) -> Response:
        """Send one command and return the whole answer.

        ``le=0`` (the default) asks for everything the card has; ``le=None`` sends no Le
        (for commands that return no data, e.g. VERIFY).
        """
        if len(data) > SHORT_MAX_DATA and not self.extended:
            return self._send_chained(cla, ins, p1, p2, data, le)
        extended = self.extended and (len(data) > SHORT_MAX_DATA or le == 0 or (le is not None and le > SHORT_MAX_LE))
        le_field = (EXTENDED_MAX_LE if extended else SHORT_MAX_LE) if le == 0 else le
        return self._send_one(encode_apdu(cla, ins, p1, p2, data, le_field, extended=extended), cla)

    def _send_chained(self, cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None) -> Response:
        parts = [data[i : i + SHORT_MAX_DATA] for i in range(0, len(data), SHORT_MAX_DATA)]
        for part in parts[:-1]:
            response = self._exchange(encode_apdu(cla | CLA_CHAINING, ins, p1, p2, part))
            if response.sw != SW.OK:
                return response
        last_le = SHORT_MAX_LE if le == 0 else le
        return self._send_one(encode_apdu(cla, ins, p1, p2, parts[-1], last_le), cla)

    def _send_one(self, apdu: bytes, cla: int) -> Response:
        response = self._exchange(apdu)
        if response.sw1 == 0x6C and _has_short_le(apdu):  # wrong Le: send again with the right one
            response = self._exchange(apdu[:-1] + bytes([response.sw & 0xFF]))
        data = bytearray(response.data)
        rounds = 0
        while response.sw1 == 0x61:
            rounds += 1
            if rounds > _MAX_GET_RESPONSE:
                raise CardError("The card keeps announcing more data (61xx).")
            more = response.sw & 0xFF
            response = self._exchange(encode_apdu(cla & 0x03, INS_GET_RESPONSE, 0, 0, b"", more or SHORT_MAX_LE))
            if response.sw1 == 0x6C:
                response = self._exchange(
                    encode_apdu(cla & 0x03, INS_GET_RESPONSE, 0, 0, b"", (response.sw & 0xFF) or 256)
                )
            data += response.data
        return Response(bytes(data), response.sw)


def _has_short_le(apdu: bytes) -> bool:
    """Whether a short APDU ends with an Le byte (case 2 or 4)."""
    body = apdu[4:]
    if not body:
        return False
    if len(body) == 1:
        return True
    if body[0] == 0:  # extended: not corrected by 6Cxx (short-only mechanism)
        return False
    return len(body) == 1 + body[0] + 1
