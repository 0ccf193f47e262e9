"""The emulated Estonian ID card at the APDU level, as OpenSC's esteid2018 driver and
libelectronic-id's EIDIDEMIA send the commands (pure: no pcscd)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cardbridge.emulator.esteid import (
    ADF1_AID,
    ADF2_AID,
    IASECC_AID,
    EsteidCard,
    isikukood_check_digit,
    load_or_create_esteid,
)
from tests.cards import send


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("esteid")


def card(folder: Path) -> EsteidCard:
    return EsteidCard(load_or_create_esteid(folder), pin1="1234", pin2="12345", puk="17258403")


def padded(pin: str) -> bytes:
    return pin.encode().ljust(12, b"\xff")


def test_isikukood_check_digit() -> None:
    assert isikukood_check_digit("3800108571") == 8
    assert isikukood_check_digit("4710101003") == 3


def test_pin_info_is_where_both_drivers_read_it(folder: Path) -> None:
    c = card(folder)
    assert send(c, "00A4040C", IASECC_AID)[1] == 0x9000
    query = bytes.fromhex("4D087006BF810102A080")
    data, status = send(c, "00CB3FFF00", query)
    assert status == 0x9000 and len(data) >= 32
    assert (data[13], data[10]) == (3, 3)  # tries left (OpenSC, libelectronic-id), maximum
    send(c, "0020000100", padded("0000"))
    assert send(c, "00CB3FFF00", query)[0][13] == 2
    # PIN2's information is read in ADF2 (OpenSC: MF, then DF AD F2).
    pin2 = bytes.fromhex("4D087006BF810502A080")
    assert send(c, "00CB3FFF00", pin2)[1] == 0x6A88
    assert send(c, "00A4010C", b"\xad\xf2")[1] == 0x9000
    assert send(c, "00CB3FFF00", pin2)[0][13] == 3


def test_libelectronic_id_login_and_signature(folder: Path) -> None:
    c = card(folder)
    digest = bytes(range(48))
    assert send(c, "00A4040C", ADF1_AID)[1] == 0x9000
    assert send(c, "002241A4", bytes.fromhex("800104840181"))[1] == 0x9000
    assert send(c, "0020000100", padded("1234"))[1] == 0x9000
    signature, status = send(c, "0088000000", digest)
    assert status == 0x9000 and len(signature) == 96
    key = x509.load_der_x509_certificate(c.data.auth_cert).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    der = utils.encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big"))
    key.verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA384())))
    # Signing: ADF2, MSE B6 with 9F, VERIFY PIN2 (85), PSO CDS; once per VERIFY.
    assert send(c, "00A4040C", ADF2_AID)[1] == 0x9000
    assert send(c, "002241B6", bytes.fromhex("80015484019F"))[1] == 0x9000
    assert send(c, "0020008500", padded("12345"))[1] == 0x9000
    assert send(c, "002A9E9A00", digest)[1] == 0x9000
    assert send(c, "002A9E9A00", digest)[1] == 0x6982


def test_wrong_algorithm_or_key_in_mse_set_is_refused(folder: Path) -> None:
    c = card(folder)
    send(c, "00A4040C", ADF1_AID)
    assert send(c, "002241A4", bytes.fromhex("800154840181"))[1] == 0x6A80
    assert send(c, "002241A4", bytes.fromhex("80010484019F"))[1] == 0x6A88


def test_opensc_reads_files_to_6b00(folder: Path) -> None:
    c = card(folder)
    send(c, "00A4000C")
    send(c, "00A4010C", b"\xad\xf1")
    send(c, "00A4020C", b"\x34\x01")
    read, offset = b"", 0
    while True:
        data, status = send(c, f"00B0{offset:04X}E9")
        if status == 0x6B00:
            break
        read += data
        offset += len(data)
    assert read == c.data.auth_cert
    assert send(c, "00A4000C")[1] == 0x9000 and send(c, "00A4020C", b"\xd0\x03")[1] == 0x9000
    number, _ = send(c, "00B000000B")
    assert number[:2] == b"\x04\x09" and number[2:].decode() == c.data.document_number


def test_the_certificates_name_the_holder_as_estonian_cards_do(folder: Path) -> None:
    c = card(folder)
    auth = x509.load_der_x509_certificate(c.data.auth_cert)
    sign = x509.load_der_x509_certificate(c.data.sign_cert)
    subject = auth.subject
    assert [a.oid for a in subject] == [
        NameOID.COUNTRY_NAME,
        NameOID.COMMON_NAME,
        NameOID.SURNAME,
        NameOID.GIVEN_NAME,
        NameOID.SERIAL_NUMBER,
    ]
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "JÕEORG,JAAK-KRISTJAN,38001085718"
    assert subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "PNOEE-38001085718"
    usage = auth.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_agreement and not usage.content_commitment
    assert ExtendedKeyUsageOID.CLIENT_AUTH in auth.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert sign.extensions.get_extension_for_class(x509.KeyUsage).value.content_commitment


def test_the_keys_are_local_to_their_df(folder: Path) -> None:
    c = card(folder)
    assert send(c, "00A4040C", IASECC_AID)[1] == 0x9000  # the MF
    assert send(c, "002241A4", bytes.fromhex("8004FF200800840181"))[1] == 0x6A88
    assert send(c, "00A4010C", b"\xad\xf1")[1] == 0x9000
    assert send(c, "002241A4", bytes.fromhex("8004FF200800840181"))[1] == 0x9000
