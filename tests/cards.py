"""What the tests of the emulated cards and their drivers share: a command APDU to an
emulated card in process, an in-process connection for a driver, and the check of a card's
signature."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from cardbridge.emulator.iso7816 import Applet
from cardbridge.pcsc.apdu import split_response

_HASHES: dict[int, hashes.HashAlgorithm] = {32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}


def send(card: Applet, apdu: str | bytes, data: bytes = b"") -> tuple[bytes, int]:
    """The card's answer (data, status word) to ``apdu`` (hex, spaces allowed); ``data``, when
    given, goes in after the header with its Lc (before an Le in ``apdu``)."""
    raw = bytes.fromhex(apdu.replace(" ", "")) if isinstance(apdu, str) else apdu
    if data:
        raw = raw[:4] + bytes([len(data)]) + data + raw[4:]
    return split_response(card.process(raw))


class Direct:
    """A driver's connection straight to an emulated card (no pcscd), keeping what it sent."""

    def __init__(self, card: Applet) -> None:
        self.card = card
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        self.sent.append(apdu)
        return split_response(self.card.process(apdu))


def verify_signature(certificate_der: bytes, digest: bytes, signature: bytes) -> None:
    """A card's signature of ``digest`` with the certificate's key: ECDSA as raw ``r || s``,
    or RSA PKCS#1 v1.5."""
    key = x509.load_der_x509_certificate(certificate_der).public_key()
    chosen = _HASHES[len(digest)]
    if isinstance(key, ec.EllipticCurvePublicKey):
        half = len(signature) // 2
        assert half == (key.curve.key_size + 7) // 8, "r || s, each as long as the curve's field"
        r, s = int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
        key.verify(utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(chosen)))
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(chosen))
