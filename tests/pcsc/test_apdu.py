"""APDU transport rules, replayed against scripted exchanges.

:class:`ScriptedCard` is a test double for a card connection: it replays, byte for byte,
what real cards send — T=0 cards that announce long answers with 61xx and want GET
RESPONSE, cards that answer 6Cxx to a wrong Le, and cards that take long data only by
command chaining — and fails the test on any command that differs from the script.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardbridge.errors import CardError
from cardbridge.pcsc.apdu import TRACE, ApduTransport, Response, encode_apdu, split_response


class ScriptedCard:
    def __init__(self, *exchanges: tuple[str, str]) -> None:
        self.script = [(bytes.fromhex(c), bytes.fromhex(r)) for c, r in exchanges]

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        assert self.script, f"unexpected command {apdu.hex()}"
        command, response = self.script.pop(0)
        assert apdu == command, f"sent {apdu.hex()}, the card expected {command.hex()}"
        return split_response(response)

    def done(self) -> None:
        assert not self.script, "the card expected more commands"


def test_get_response_collects_61xx_parts() -> None:
    card = ScriptedCard(
        ("00CB3FFF055C035FC10500", "AABB" + "6102"),
        ("00C0000002", "CCDD" + "6101"),
        ("00C0000001", "EE" + "9000"),
    )
    transport = ApduTransport(card)
    response = transport.send(0x00, 0xCB, 0x3F, 0xFF, bytes.fromhex("5C035FC105"))
    assert response == Response(bytes.fromhex("AABBCCDDEE"), 0x9000)
    assert transport.count == 3
    card.done()


def test_6100_means_256_more_bytes() -> None:
    card = ScriptedCard(("00CA010000", "6100"), ("00C0000000", "11" * 256 + "9000"))
    assert ApduTransport(card).send(0x00, 0xCA, 0x01, 0x00).data == b"\x11" * 256
    card.done()


def test_6cxx_repeats_with_the_right_le() -> None:
    card = ScriptedCard(("00B0000000", "6C08"), ("00B0000008", "0102030405060708" + "9000"))
    assert ApduTransport(card).send(0x00, 0xB0, 0, 0).data == bytes(range(1, 9))
    card.done()


def test_6cxx_then_61xx() -> None:
    card = ScriptedCard(("00B0000000", "6C02"), ("00B0000002", "0102" + "6101"), ("00C0000001", "03" + "9000"))
    assert ApduTransport(card).send(0x00, 0xB0, 0, 0).data == b"\x01\x02\x03"
    card.done()


def test_long_data_is_chained_without_extended_length() -> None:
    data = bytes(range(256)) + bytes(44)  # 300 bytes: 255 + 45
    card = ScriptedCard(
        ("10870797FF" + data[:255].hex(), "9000"),
        ("008707972D" + data[255:].hex() + "00", "7C00" + "9000"),
    )
    assert ApduTransport(card).send(0x00, 0x87, 0x07, 0x97, data).data == bytes.fromhex("7C00")
    card.done()


def test_chaining_stops_at_an_error() -> None:
    data = bytes(300)
    card = ScriptedCard(("10870797FF" + data[:255].hex(), "6A80"))
    assert ApduTransport(card).send(0x00, 0x87, 0x07, 0x97, data).sw == 0x6A80
    card.done()


def test_extended_length_when_the_card_supports_it() -> None:
    data = bytes(300)
    card = ScriptedCard(("0087079700012C" + data.hex() + "0000", "AA" * 600 + "9000"))
    response = ApduTransport(card, extended=True).send(0x00, 0x87, 0x07, 0x97, data)
    assert response.data == b"\xaa" * 600
    card.done()


def test_no_le_for_verify() -> None:
    card = ScriptedCard(("00200080", "63C3"))
    assert ApduTransport(card).send(0x00, 0x20, 0x00, 0x80, le=None).sw == 0x63C3
    card.done()


def test_verify_data_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    card = ScriptedCard(("002000800831323334353637FF", "9000"))
    with caplog.at_level(TRACE, logger="cardbridge.pcsc.apdu"):
        ApduTransport(card).send(0x00, 0x20, 0x00, 0x80, b"1234567\xff", le=None)
    text = caplog.text
    assert "<redacted>" in text
    assert "31 32 33" not in text and "1234567" not in text


def test_apdus_are_not_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    card = ScriptedCard(("00A4040000", "9000"))
    with caplog.at_level(logging.DEBUG, logger="cardbridge.pcsc.apdu"):
        ApduTransport(card).send(0x00, 0xA4, 0x04, 0x00, le=256)
    assert caplog.records == []


@given(st.binary(max_size=255), st.one_of(st.none(), st.integers(1, 256)))
def test_short_encoding_round_trips(data: bytes, le: int | None) -> None:
    from cardbridge.emulator.piv_card import CommandApdu

    parsed = CommandApdu.parse(encode_apdu(0x00, 0xCB, 0x3F, 0xFF, data, le))
    assert (parsed.data, parsed.le, parsed.extended) == (data, le, False)


@given(st.binary(min_size=1, max_size=2000), st.one_of(st.none(), st.integers(1, 65536)))
def test_extended_encoding_round_trips(data: bytes, le: int | None) -> None:
    from cardbridge.emulator.piv_card import CommandApdu

    parsed = CommandApdu.parse(encode_apdu(0x00, 0x87, 0x07, 0x9A, data, le, extended=True))
    assert (parsed.data, parsed.le, parsed.extended) == (data, le, True)


@pytest.mark.parametrize("raw", ["", "90"])
def test_an_answer_shorter_than_a_status_word_is_a_card_error(raw: str) -> None:
    with pytest.raises(CardError, match="shorter than a status word"):
        split_response(bytes.fromhex(raw))


def test_an_answer_splits_into_its_data_and_status_word() -> None:
    assert split_response(bytes.fromhex("AABB6283")) == (b"\xaa\xbb", 0x6283)
