"""DER for the PKCS#15 files of the emulated cards (EF(DIR), ODF, TokenInfo, AODF, PrKDF,
CDF): only the few types those files need, each as X.690 encodes it."""

from __future__ import annotations

from cardbridge.iso7816 import tlv


def der(tag: int, *parts: bytes) -> bytes:
    """A DER element: ``tag`` around the parts."""
    return tlv(tag, b"".join(parts))


def seq(*parts: bytes) -> bytes:
    return der(0x30, *parts)


def utf8(text: str) -> bytes:
    return der(0x0C, text.encode())


def octets(value: bytes) -> bytes:
    return der(0x04, value)


def integer(value: int) -> bytes:
    """A non-negative INTEGER in the fewest bytes (a leading 00 when the top bit is set)."""
    return der(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big"))


def bits(*named: int) -> bytes:
    """A BIT STRING of named bits (bit 0 first; DER: no trailing zero bits)."""
    if not named:
        return der(0x03, b"\x00")
    top = max(named)
    value = bytearray(top // 8 + 1)
    for bit in named:
        value[bit // 8] |= 0x80 >> (bit % 8)
    return der(0x03, bytes([7 - top % 8]), bytes(value))


def path(*fids: bytes) -> bytes:
    """A PKCS#15 Path: a SEQUENCE with the FIDs in an OCTET STRING."""
    return seq(octets(b"".join(fids)))
