"""The PIV driver's commands and answers, replayed against scripted exchanges (see
tests/pcsc/test_apdu.py for the scripted card), and its signature helpers."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from cardbridge.errors import PinBlockedError, PinIncorrectError, PinInvalidLengthError, UnsupportedCardError
from cardbridge.pcsc.apdu import ApduTransport
from cardbridge.pcsc.piv import Algorithm, KeyRef, PivSession, ecdsa_der_to_raw, pkcs1_v15_block
from tests.pcsc.test_apdu import ScriptedCard

SELECT = "00A4040009A0000003080000100000"
APT = "61114F0600001000010079074F05A000000308"


def session(*exchanges: tuple[str, str]) -> tuple[PivSession, ScriptedCard]:
    card = ScriptedCard((SELECT, APT + "9000"), *exchanges)
    return PivSession(ApduTransport(card)), card


def test_not_a_piv_card() -> None:
    card = ScriptedCard((SELECT, "6A82"))
    with pytest.raises(UnsupportedCardError):
        PivSession(ApduTransport(card))


@pytest.mark.parametrize(
    ("sw", "error", "retries"),
    [
        ("63C2", PinIncorrectError, 2),
        ("63C1", PinIncorrectError, 1),
        ("63C0", PinBlockedError, 0),
        ("6983", PinBlockedError, 0),
    ],
)
def test_verify_answers(sw: str, error: type[Exception], retries: int) -> None:
    piv, card = session(("002000800831323334353637FF", sw))
    with pytest.raises(error) as info:
        piv.verify_pin(bytearray(b"1234567"))
    assert info.value.retries_left == retries  # type: ignore[attr-defined]
    card.done()


def test_pin_length_is_checked_before_sending() -> None:
    piv, card = session()
    for pin in (b"12345", b"123456789"):
        with pytest.raises(PinInvalidLengthError):
            piv.verify_pin(bytearray(pin))
    card.done()


def test_pin_state_spends_no_try() -> None:
    piv, card = session(("00200080", "63C3"), ("00200080", "6983"), ("00200080", "9000"))
    assert (piv.pin_state().retries_left, piv.pin_state().blocked, piv.pin_state().verified) == (3, True, True)
    card.done()


def test_certificate_read_and_absent() -> None:
    cert = "3003020101"
    body = "70" + f"{len(cert) // 2:02X}" + cert + "710100FE00"
    obj = "53" + f"{len(body) // 2:02X}" + body
    piv, card = session(("00CB3FFF055C035FC10500", obj + "9000"), ("00CB3FFF055C035FC10A00", "6A82"))
    assert piv.read_certificate(KeyRef.AUTHENTICATION) == bytes.fromhex(cert)
    assert piv.read_certificate(KeyRef.SIGNATURE) is None
    card.done()


def test_general_authenticate_builds_the_template() -> None:
    challenge = bytes(range(32))
    template = "7C248200" + "8120" + challenge.hex()
    piv, card = session(("0087119A26" + template + "00", "7C0682043002AABB9000"))
    assert piv.general_authenticate(KeyRef.AUTHENTICATION, Algorithm.ECC_P256, challenge) == bytes.fromhex("3002AABB")
    card.done()


def test_ecdsa_der_to_raw_matches_cryptography() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    digest = hashlib.sha384(b"m").digest()
    der = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA384())))
    raw = ecdsa_der_to_raw(der, 48)
    r, s = utils.decode_dss_signature(der)
    assert raw == r.to_bytes(48, "big") + s.to_bytes(48, "big")


def test_pkcs1_block_gives_a_standard_signature() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    digest = hashlib.sha256(b"m").digest()
    block = pkcs1_v15_block(digest, "SHA-256", 256)
    numbers = key.private_numbers()
    raw = pow(int.from_bytes(block, "big"), numbers.d, numbers.public_numbers.n).to_bytes(256, "big")
    key.public_key().verify(raw, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
