"""ISO/IEC 7816-4 names that both sides of the card interface use: the drivers
(:mod:`cardbridge.pcsc`) and the emulated cards (:mod:`cardbridge.emulator`).

Instruction bytes, the control reference templates of MSE SET, the commands whose data is
a secret (never logged, never kept), and BER-TLV encoding. Pure: it imports nothing, so
the emulator needs no PC/SC package and the drivers no emulator.

Parsing stays on each side on purpose: the emulated cards are the drivers' test oracle,
and a bug in a parser both used would be invisible to the tests that run one against the
other.
"""

from __future__ import annotations

INS_SELECT = 0xA4
INS_READ_BINARY = 0xB0
INS_VERIFY = 0x20
INS_CHANGE_REFERENCE_DATA = 0x24
INS_RESET_RETRY_COUNTER = 0x2C
INS_MSE = 0x22
INS_PSO = 0x2A
INS_INTERNAL_AUTHENTICATE = 0x88
INS_GENERAL_AUTHENTICATE = 0x87
INS_GET_RESPONSE = 0xC0
INS_GET_DATA = 0xCB

CRT_AT = 0xA4  # MSE SET: authentication template
CRT_DST = 0xB6  # digital signature template
CRT_CT = 0xB8  # confidentiality template

SECRET_INS = frozenset({INS_VERIFY, INS_CHANGE_REFERENCE_DATA, INS_RESET_RETRY_COUNTER})


def tlv(tag: int | bytes, value: bytes) -> bytes:
    """BER-TLV with a definite length (short form, 81 or 82); a tag of one or more bytes."""
    tag_bytes = tag if isinstance(tag, bytes) else tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n <= 0xFF:
        length = bytes([0x81, n])
    else:
        length = b"\x82" + n.to_bytes(2, "big")
    return tag_bytes + length + value
