"""The emulated Belgian eID card at the APDU level, against the Belpic reference manuals."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID

from cardbridge.emulator.belgium import (
    BelgianCitizen,
    card_number,
    is_valid_national_number,
    national_number,
)
from cardbridge.emulator.belpic_card import (
    ATR_V1_7,
    ATR_V1_8,
    BELPIC_AID,
    BelpicCard,
    BelpicCardData,
    encode_pin,
    load_or_create_belpic,
    simple_tlv,
)
from cardbridge.emulator.devpki import DevCA
from cardbridge.errors import InvalidInputError
from cardbridge.model import Purpose
from tests.cards import send

PIN = "1234"
PIN_BLOCK = bytes.fromhex("241234FFFFFFFFFF")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("belpic")


@pytest.fixture(scope="module")
def ec_data(folder: Path) -> BelpicCardData:
    return load_or_create_belpic(folder, key="ec-p384")


@pytest.fixture(scope="module")
def rsa_data(folder: Path) -> BelpicCardData:
    return load_or_create_belpic(folder, key="rsa-2048", reader=1)


def sw_of(card: BelpicCard, hex_apdu: str) -> int:
    return send(card, hex_apdu)[1]


VERIFY = "00 20 00 01 08 " + PIN_BLOCK.hex()
VERIFY_WRONG = "00 20 00 01 08 249999FFFFFFFFFF"
SELECT_BELPIC = "00 A4 08 0C 04 3F00 DF00"
MSE_AUTH_384 = "00 22 41 B6 05 04 80 02 84 82"
MSE_NONREP_384 = "00 22 41 B6 05 04 80 02 84 83"
HASH_384 = "11" * 48


def sign(card: BelpicCard) -> tuple[bytes, int]:
    """PSO CDS with a SHA-384 hash, then GET RESPONSE (T=0)."""
    _, status = send(card, "00 2A 9E 9A 30" + HASH_384)
    if status >> 8 != 0x61:
        return b"", status
    return send(card, f"00 C0 00 00 {status & 0xFF:02X}")


# -- identifiers -------------------------------------------------------------------------------
def test_national_number_check_digits() -> None:
    assert national_number(dt.date(1993, 5, 18), 223) == "93051822361"  # a published example
    assert is_valid_national_number("93051822361")
    assert not is_valid_national_number("93051822362")
    born_2003 = national_number(dt.date(2003, 1, 5), 2)
    assert born_2003.startswith("030105002") and is_valid_national_number(born_2003)
    assert (97 - int("2030105002") % 97) == int(born_2003[9:])
    number = BelgianCitizen().national_number
    assert is_valid_national_number(number) and number[6:9] == "999"  # never a real person's
    assert card_number(5921234567) == "592123456732" and int("5921234567") % 97 == 32


def test_certificates_carry_the_belgian_subject(ec_data: BelpicCardData) -> None:
    auth = x509.load_der_x509_certificate(ec_data.auth_cert)
    sign_cert = x509.load_der_x509_certificate(ec_data.sign_cert)
    citizen = ec_data.citizen
    names = [(a.oid, a.value) for a in auth.subject]
    assert names == [
        (NameOID.COUNTRY_NAME, "BE"),
        (NameOID.COMMON_NAME, "Jan Peeters (Authentication)"),
        (NameOID.SURNAME, "Peeters"),
        (NameOID.GIVEN_NAME, "Jan Pieter"),
        (NameOID.SERIAL_NUMBER, citizen.national_number),
    ]
    assert sign_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Jan Peeters (Signature)"
    assert isinstance(auth.public_key(), ec.EllipticCurvePublicKey)
    assert auth.public_key().curve.name == "secp384r1"  # type: ignore[union-attr]
    assert citizen.subject(Purpose.SIGNING) == sign_cert.subject


def test_the_card_is_kept_in_its_folder(folder: Path, ec_data: BelpicCardData) -> None:
    again = load_or_create_belpic(folder, key="ec-p384")
    assert again.auth_cert == ec_data.auth_cert and again.card == ec_data.card
    other_ca = DevCA.load_or_create(folder / "other-ca")
    fresh = load_or_create_belpic(folder, key="ec-p384", ca=other_ca)
    assert fresh.auth_cert != ec_data.auth_cert
    load_or_create_belpic(folder, key="ec-p384")  # back to the folder's own CA
    with pytest.raises(InvalidInputError):
        load_or_create_belpic(folder, key="ec-p256")


def test_pin_encoding() -> None:
    assert encode_pin("1234") == PIN_BLOCK
    assert encode_pin("123456789012") == bytes.fromhex("2C123456789012FF")
    for bad in ("123", "1234567890123", "12a4"):
        with pytest.raises(InvalidInputError):
            encode_pin(bad)


# -- answers -------------------------------------------------------------------------------------
def test_atr_and_card_data(ec_data: BelpicCardData, rsa_data: BelpicCardData) -> None:
    card = BelpicCard(ec_data, PIN)
    assert card.atr == ATR_V1_8 and BelpicCard(rsa_data, PIN).atr == ATR_V1_7
    data, status = send(card, "80 E4 00 00 1C")
    assert status == 0x9000 and len(data) == 28 and data[21] == 0x18 and data[27] == 0x0F
    assert data[:16] == ec_data.card.chip_serial
    assert sw_of(card, "80 E4 00 00 00") == 0x6C1C
    data, status = send(card, "80 E4 00 01 1F")
    assert status == 0x9000 and data[28:] == bytes([3, 0xFF, 0xFF])  # tries left
    old = BelpicCard(rsa_data, PIN)
    assert send(old, "80 E4 00 00 1C")[0][21] == 0x17
    assert sw_of(old, "80 E4 00 01 1F") == 0x6B00  # applet 1.7 has no P2 01


def test_select_and_read_binary(ec_data: BelpicCardData) -> None:
    card = BelpicCard(ec_data, PIN)
    assert sw_of(card, "00 A4 08 0C 06 3F00 DF00 5038") == 0x9000  # OpenSC: with the MF
    assert sw_of(card, "00 A4 08 0C 04 DF00 5038") == 0x9000  # the manual: without
    cert = ec_data.auth_cert
    data, status = send(card, "00 B0 00 00 00")
    assert status == 0x9000 and data == cert[:256]
    size = len(cert) + 1100  # the certificate and 1100 zero bytes
    last = size - 0x100 * (size // 0x100)
    high = size // 0x100
    assert sw_of(card, f"00 B0 {high:02X} 00 00") == 0x6C00 | last  # Le too long
    data, status = send(card, f"00 B0 {high:02X} 00 {last:02X}")
    assert status == 0x9000 and data == b"\x00" * last
    assert sw_of(card, f"00 B0 {size >> 8:02X} {size & 0xFF:02X} 01") == 0x6B00  # past the end
    assert sw_of(card, "00 A4 00 00 02 5038") == 0x6A86  # P2 other than 0C: no FCI here
    # SELECT by FID walks like eid-mw does: 3F00, DF00, 5038.
    for fid in ("3F00", "DF00", "5038"):
        assert sw_of(card, "00 A4 02 0C 02 " + fid) == 0x9000
    assert sw_of(card, "00 A4 02 0C 02 4031") == 0x6A82  # not in DF00
    assert sw_of(card, "00 A4 04 0C 0C " + BELPIC_AID.hex()) == 0x9000
    assert sw_of(card, "00 A4 08 0C 04 DF01 4031") == 0x9000
    data, status = send(card, "00 B0 00 00 00")
    identity = data if status == 0x9000 else send(card, f"00 B0 00 00 {status & 0xFF:02X}")[0]
    assert simple_tlv(0x06, ec_data.citizen.national_number.encode()) in identity
    assert simple_tlv(0x07, b"Peeters") in identity
    assert sw_of(card, "00 A4 08 0C 04 DF00 9999") == 0x6A82
    assert sw_of(card, "00 B2 01 01 00") == 0x6D00
    assert sw_of(card, "80 A4 08 0C 02 3F00") == 0x6E00
    assert sw_of(card, "00 E4 00 00 1C") == 0x6E00


def test_empty_verify_reports_tries_and_spends_none(ec_data: BelpicCardData) -> None:
    card = BelpicCard(ec_data, PIN)
    assert sw_of(card, "00 20 00 01") == 0x63C3
    assert sw_of(card, VERIFY_WRONG) == 0x63C2
    assert sw_of(card, "00 20 00 01") == 0x63C2
    assert sw_of(card, VERIFY) == 0x9000 and card.pin_tries_left == 3
    assert sw_of(card, "00 20 00 01") == 0x9000
    assert sw_of(card, "80 E6 00 00") == 0x9000  # LOG OFF
    assert sw_of(card, "00 20 00 01") == 0x63C3
    assert sw_of(card, "00 20 00 02 08 " + PIN_BLOCK.hex()) == 0x6A88
    assert sw_of(card, "00 20 00 01 04 24123FFF") == 0x6700


def test_three_wrong_pins_block(ec_data: BelpicCardData) -> None:
    card = BelpicCard(ec_data, PIN)
    assert [sw_of(card, VERIFY_WRONG) for _ in range(3)] == [0x63C2, 0x63C1, 0x63C0]
    assert sw_of(card, VERIFY) == 0x6983
    assert sw_of(card, "00 20 00 01") == 0x6983
    assert sw_of(card, "00 2C 00 01") == 0x6982  # no unblocking without the administrator
    card.reset()
    assert sw_of(card, VERIFY) == 0x6983  # the counter outlives a reset


def test_authentication_key_pin_once(ec_data: BelpicCardData) -> None:
    card = BelpicCard(ec_data, PIN)
    assert sw_of(card, SELECT_BELPIC) == 0x9000
    assert sw_of(card, MSE_AUTH_384) == 0x9000
    assert sign(card)[1] == 0x6982  # no VERIFY yet
    assert sw_of(card, VERIFY) == 0x9000
    for _ in range(2):  # "PIN once": any number of signatures after one VERIFY
        signature, status = sign(card)
        assert status == 0x9000 and len(signature) == 96
    public = x509.load_der_x509_certificate(ec_data.auth_cert).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    der = utils.encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big"))
    public.verify(der, bytes.fromhex(HASH_384), ec.ECDSA(utils.Prehashed(hashes.SHA384())))
    card.reset()
    assert sw_of(card, SELECT_BELPIC) == 0x9000 and sw_of(card, MSE_AUTH_384) == 0x9000
    assert sign(card)[1] == 0x6982  # a reset ends it


def test_non_repudiation_key_pin_just_before(ec_data: BelpicCardData) -> None:
    card = BelpicCard(ec_data, PIN)
    assert sw_of(card, SELECT_BELPIC) == 0x9000
    assert sw_of(card, MSE_NONREP_384) == 0x9000
    assert sw_of(card, VERIFY) == 0x9000
    signature, status = sign(card)
    assert status == 0x9000
    public = x509.load_der_x509_certificate(ec_data.sign_cert).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    der = utils.encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big"))
    public.verify(der, bytes.fromhex(HASH_384), ec.ECDSA(utils.Prehashed(hashes.SHA384())))
    assert sign(card)[1] == 0x6982  # each signature needs its own VERIFY
    # Applet 1.8: one command may come between VERIFY and the signature, not two.
    assert sw_of(card, VERIFY) == 0x9000 and sw_of(card, SELECT_BELPIC) == 0x9000
    assert sign(card)[1] == 0x9000
    assert sw_of(card, VERIFY) == 0x9000
    assert sw_of(card, SELECT_BELPIC) == 0x9000 and sw_of(card, SELECT_BELPIC) == 0x9000
    assert sign(card)[1] == 0x6982


def test_pin_mixed_mode(ec_data: BelpicCardData) -> None:
    """A VERIFY spent on a non-repudiation signature does not open the authentication key;
    one made before it stays good (reference manual 1.8, 5.1.3)."""
    card = BelpicCard(ec_data, PIN)
    send(card, SELECT_BELPIC)
    send(card, MSE_NONREP_384)
    assert sw_of(card, VERIFY) == 0x9000 and sign(card)[1] == 0x9000
    assert sw_of(card, MSE_AUTH_384) == 0x9000
    assert sign(card)[1] == 0x6982
    assert sw_of(card, VERIFY) == 0x9000 and sign(card)[1] == 0x9000  # auth, verified anew
    send(card, MSE_NONREP_384)
    assert sw_of(card, VERIFY) == 0x9000 and sign(card)[1] == 0x9000
    send(card, MSE_AUTH_384)
    assert sign(card)[1] == 0x9000  # the earlier authentication VERIFY still holds
    assert sw_of(card, VERIFY_WRONG) == 0x63C2
    assert sign(card)[1] == 0x6982  # a wrong PIN ends every access right


def test_applet_1_7_is_strict_about_just_before(rsa_data: BelpicCardData) -> None:
    card = BelpicCard(rsa_data, PIN)
    send(card, SELECT_BELPIC)
    assert sw_of(card, "00 22 41 B6 05 04 80 08 84 83") == 0x9000
    assert sw_of(card, VERIFY) == 0x9000 and sw_of(card, SELECT_BELPIC) == 0x9000
    assert send(card, "00 2A 9E 9A 20" + "22" * 32)[1] == 0x6982
    assert sw_of(card, VERIFY) == 0x9000
    status = send(card, "00 2A 9E 9A 20" + "22" * 32)[1]
    assert status == 0x6100  # 256 bytes wait for GET RESPONSE
    signature, status = send(card, "00 C0 00 00 00")
    assert status == 0x9000 and len(signature) == 256
    public = x509.load_der_x509_certificate(rsa_data.sign_cert).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, b"\x22" * 32, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


@pytest.mark.parametrize(
    ("algorithm", "dtbs", "check"),
    [
        ("01", "3031300d060960864801650304020105000420" + "33" * 32, "pkcs1"),
        ("08", "33" * 32, "pkcs1"),
        ("20", "33" * 32, "pss"),
    ],
)
def test_rsa_algorithms(rsa_data: BelpicCardData, algorithm: str, dtbs: str, check: str) -> None:
    card = BelpicCard(rsa_data, PIN)
    send(card, SELECT_BELPIC)
    assert sw_of(card, VERIFY) == 0x9000
    assert sw_of(card, f"00 22 41 B6 05 04 80 {algorithm} 84 82") == 0x9000
    _, status = send(card, f"00 2A 9E 9A {len(dtbs) // 2:02X} {dtbs}")
    assert status == 0x6100
    first, status = send(card, "00 C0 00 00 10")
    assert status == 0x61F0 and len(first) == 0x10  # a part, then the rest
    rest, status = send(card, "00 C0 00 00 F0")
    assert status == 0x9000
    public = x509.load_der_x509_certificate(rsa_data.auth_cert).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    chosen: padding.AsymmetricPadding = (
        padding.PSS(padding.MGF1(hashes.SHA256()), 32) if check == "pss" else padding.PKCS1v15()
    )
    public.verify(first + rest, b"\x33" * 32, chosen, utils.Prehashed(hashes.SHA256()))


def test_security_environment_errors(ec_data: BelpicCardData, rsa_data: BelpicCardData) -> None:
    card = BelpicCard(ec_data, PIN)
    assert sw_of(card, MSE_AUTH_384) == 0x6A88  # the keys are in DF(BELPIC)
    send(card, SELECT_BELPIC)
    assert sw_of(card, "00 22 41 B6 05 04 80 03 84 82") == 0x6A80  # no such algorithm
    assert sw_of(card, "00 22 41 B6 05 04 80 02 84 81") == 0x6A88  # the basic key signs no PSO
    assert sw_of(card, "00 22 41 A4 05 04 80 02 84 82") == 0x6B00
    assert sw_of(card, "00 22 41 B6 04 04 80 02 84") == 0x6700
    assert sign(card)[1] == 0x6985  # no security environment
    send(card, MSE_AUTH_384)
    send(card, VERIFY)
    assert send(card, "00 2A 9E 9A 20" + "11" * 32)[1] == 0x6700  # SHA-384 wants 48 bytes
    assert sw_of(card, "00 22 41 B6 05 04 80 40 84 82") == 0x9000  # hash not specified
    assert send(card, "00 2A 9E 9A 20" + "11" * 32)[1] == 0x6160
    old = BelpicCard(rsa_data, PIN)
    send(old, SELECT_BELPIC)
    assert sw_of(old, MSE_AUTH_384) == 0x9000  # applet 1.7: 02 is PKCS#1 v1.5 with SHA-1
    assert sw_of(old, "00 22 41 B6 05 04 80 40 84 82") == 0x6A80


def test_get_response_rules(ec_data: BelpicCardData) -> None:
    card = BelpicCard(ec_data, PIN)
    assert sw_of(card, "00 C0 00 00 10") == 0x6985  # nothing to fetch
    send(card, SELECT_BELPIC)
    send(card, MSE_AUTH_384)
    send(card, VERIFY)
    assert send(card, "00 2A 9E 9A 30" + HASH_384)[1] == 0x6160
    assert sw_of(card, "00 C0 00 00 00") == 0x6C60  # Le too long: 96 bytes only
    signature, status = send(card, "00 C0 00 00 60")
    assert status == 0x9000 and len(signature) == 96


def test_change_pin(ec_data: BelpicCardData) -> None:
    card = BelpicCard(ec_data, PIN)
    new = encode_pin("987654")
    assert sw_of(card, "00 24 00 01 10 " + "249999FFFFFFFFFF" + new.hex()) == 0x63C2
    assert sw_of(card, "00 24 00 01 10 " + PIN_BLOCK.hex() + "2F" + "FF" * 7) == 0x6A80
    assert sw_of(card, "00 24 00 01 10 " + PIN_BLOCK.hex() + new.hex()) == 0x9000
    assert card.pin_tries_left == 3
    assert sw_of(card, VERIFY) == 0x63C2
    assert sw_of(card, "00 20 00 01 08 " + new.hex()) == 0x9000
