"""The ISO 7816-4 card engine, and the driver's file-system session on top of it (pure:
the driver's ApduTransport talks to the engine's ``process`` directly, no pcscd)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from cardbridge.emulator.iso7816 import DF, EF, CardKey, Iso7816Card, Pin
from cardbridge.errors import PinBlockedError, PinIncorrectError, PinInvalidLengthError, UnsupportedCardError
from cardbridge.pcsc.apdu import ApduTransport, split_response
from cardbridge.pcsc.filesystem import (
    CRT_AT,
    FileSystemSession,
    Location,
    PinSpec,
    SignCommand,
    fcp_size,
)

AID = bytes.fromhex("A000000077010800070000FE00000100")
KEY = ec.generate_private_key(ec.SECP384R1())
CONTENT = bytes(range(256)) * 3 + b"end"


def make_card(*, t0: bool = False) -> Iso7816Card:
    card = Iso7816Card(bytes.fromhex("3B8080010101"))
    card.t0 = t0
    app = card.mf.add(DF(b"\xad\xf1", name=AID))
    assert isinstance(app, DF)
    app.add(EF(b"\x34\x01", CONTENT, sfi=1))
    card.mf.add(EF(b"\xd0\x03", b"\x04\x09AB0000001"))
    card.add_pin(Pin(0x02, b"17258403", 8, 12, pad_length=12))
    card.add_pin(Pin(0x01, b"1234", 4, 12, pad_length=12, unblocked_by=0x02))
    local = card.add_pin(Pin(0x85, b"12345", 5, 12, pad_length=12, unblocked_by=0x02))
    local.df = app
    card.add_key(CardKey(0x81, KEY, 0x01, operations=frozenset({CRT_AT})))
    return card


class Direct:
    """A Connection straight to the engine (what vpcd carries, without the socket)."""

    def __init__(self, card: Iso7816Card) -> None:
        self.card = card

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        return split_response(self.card.process(apdu))


def session(card: Iso7816Card) -> FileSystemSession:
    return FileSystemSession(ApduTransport(Direct(card)))


PIN1 = PinSpec(0x01, "PIN1", 4, 12, pad_length=12)
PIN2 = PinSpec(0x85, "PIN2", 5, 12, pad_length=12)


def test_select_by_aid_path_and_read_a_long_ef_through_61xx() -> None:
    card = make_card()
    fs = session(card)
    fs.select_aid(AID)
    fcp = fs.select_path(b"\x34\x01", from_mf=False, fcp=True)
    assert fcp_size(fcp) == len(CONTENT)
    assert fs.read_ef(fcp_size(fcp)) == CONTENT
    assert fs.read_file(Location(path=b"\xad\xf1\x34\x01")) == CONTENT
    assert fs.read_file(Location(path=b"\xd0\x03")) == b"\x04\x09AB0000001"


def test_t0_card_answers_case_4_with_61xx_and_get_response() -> None:
    card = make_card(t0=True)
    raw = card.process(bytes.fromhex("00A4040410") + AID + b"\x00")
    assert raw[-2] == 0x61
    fci = card.process(bytes([0x00, 0xC0, 0x00, 0x00, raw[-1]]))
    assert fci[-2:] == b"\x90\x00" and AID in fci
    # The driver's transport fetches it by itself.
    assert AID in session(make_card(t0=True)).select_aid(AID, p2=0x04)


def test_read_binary_odd_cases() -> None:
    card = make_card()
    card.process(bytes.fromhex("00A4080C04ADF13401"))
    assert card.process(bytes.fromhex("00B00300FF"))[-2:] == b"\x62\x82"  # 3 bytes left of 255 asked
    assert card.process(bytes.fromhex("00B0030000"))[:-2] == b"end"  # Le 00: what there is
    assert card.process(bytes.fromhex("00B0040001"))[-2:] == b"\x6b\x00"  # past the end
    short = card.process(bytes.fromhex("00B0810002"))  # by short EF identifier 1, offset 0
    assert short == b"\x00\x01\x90\x00"


def test_unknown_application_is_unsupported() -> None:
    with pytest.raises(UnsupportedCardError):
        session(make_card()).select_aid(b"\xa0\x00\x00\x00\x01")


def test_pin_counts_down_blocks_and_the_puk_unblocks() -> None:
    card = make_card()
    fs = session(card)
    assert fs.pin_state(0x01).retries_left == 3
    for left in (2, 1):
        with pytest.raises(PinIncorrectError) as info:
            fs.verify(PIN1, bytearray(b"0000"))
        assert info.value.retries_left == left
    with pytest.raises(PinBlockedError):
        fs.verify(PIN1, bytearray(b"0000"))
    assert fs.pin_state(0x01).blocked
    with pytest.raises(PinBlockedError):  # the right PIN does not help now
        fs.verify(PIN1, bytearray(b"1234"))
    # RESET RETRY COUNTER with the PUK (P1 01: PUK only, keeps the PIN).
    puk = b"17258403".ljust(12, b"\xff")
    assert card.process(bytes([0x00, 0x2C, 0x01, 0x01, len(puk)]) + puk)[-2:] == b"\x90\x00"
    fs.verify(PIN1, bytearray(b"1234"))
    assert fs.pin_state(0x01).verified


def test_pin_length_rules_spend_no_try() -> None:
    card = make_card()
    fs = session(card)
    with pytest.raises(PinInvalidLengthError):
        fs.verify(PIN1, bytearray(b"123"))  # the driver refuses it before the card
    assert card.process(bytes.fromhex("0020000103313233"))[-2:] == b"\x67\x00"  # not padded
    assert fs.pin_state(0x01).retries_left == 3


def test_local_pin_only_in_its_df_and_change_reference_data() -> None:
    card = make_card()
    assert card.process(bytes.fromhex("00200085"))[-2:] == b"\x6a\x88"  # a local PIN: only in its own DF
    fs = session(card)
    fs.select_path(b"\xad\xf1")
    assert fs.pin_state(0x85).retries_left == 3
    old, new = b"12345".ljust(12, b"\xff"), b"54321".ljust(12, b"\xff")
    assert card.process(bytes([0x00, 0x24, 0x00, 0x85, 24]) + old + new)[-2:] == b"\x90\x00"
    fs.verify(PIN2, bytearray(b"54321"))


def test_mse_set_and_internal_authenticate_need_the_pin() -> None:
    card = make_card()
    fs = session(card)
    fs.select_aid(AID)
    fs.mse_set(CRT_AT, bytes.fromhex("8004FF200800840181"))
    digest = bytes(range(48))
    assert card.process(bytes([0x00, 0x88, 0x00, 0x00, 48]) + digest + b"\x00")[-2:] == b"\x69\x82"
    fs.verify(PIN1, bytearray(b"1234"))
    signature = fs.compute(SignCommand.INTERNAL_AUTHENTICATE, digest)
    assert len(signature) == 96
    r, s = int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
    KEY.public_key().verify(utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(hashes.SHA384())))
    # SELECT of the application again ends the PIN's security status (the logout).
    fs.select_aid(AID)
    assert fs.pin_state(0x01).retries_left == 3


def test_wrong_le_gets_6cxx_for_an_exact_answer() -> None:
    card = make_card()
    from cardbridge.emulator.iso7816 import CommandApdu

    apdu = CommandApdu.parse(bytes.fromhex("00CA000005"))
    assert card.answer(b"abc", apdu, exact=True) == b"\x6c\x03"
    assert card.answer(b"abc", CommandApdu.parse(bytes.fromhex("00CA000003")), exact=True) == b"abc\x90\x00"
