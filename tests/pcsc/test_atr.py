"""ATR identification: the table of known cards (with masks) and pcsc-tools' names."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardbridge.emulator.piv_card import ATR
from cardbridge.pcsc.atr import historical_bytes, identify, smartcard_list_names, supports_extended_length

HAS_LIST = Path("/usr/share/pcsc/smartcard_list.txt").exists()


def test_virtual_card_is_piv_with_extended_length() -> None:
    card = identify(ATR)
    assert (card.known, card.driver, card.name) == (True, "piv", "cardbridge virtual PIV card")
    assert supports_extended_length(ATR)
    assert historical_bytes(ATR).endswith(b"cardbrdg")


def test_yubikey_is_piv() -> None:
    atr = bytes.fromhex("3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40")
    assert identify(atr).driver == "piv"
    assert supports_extended_length(atr)


def test_mask_lets_a_byte_differ() -> None:
    belgian = identify(bytes.fromhex("3B 98 94 40 0A A5 03 01 01 01 AD 13 10"))
    assert belgian.known and belgian.driver == "belpic" and belgian.module is None
    assert not identify(bytes.fromhex("3B 98 94 40 0A A5 03 01 01 02 AD 13 10")).known


def test_estonian_card_has_the_direct_driver_and_pcsc_tools_names_it() -> None:
    from cardbridge.emulator.esteid import ATR as ESTEID_ATR

    card = identify(ESTEID_ATR)
    assert card.driver == "esteid" and card.module is None and card.known
    assert bytes.fromhex("3B DB 96 00 80 B1 FE 45 1F 83 00 12 23 3F 53 65 49 44 0F 90 00 F1") == ESTEID_ATR
    if HAS_LIST:
        assert "Estonia ID-card (eID)" in smartcard_list_names(ESTEID_ATR)


@pytest.mark.parametrize(
    ("atr", "listed_as"),
    [
        ("3B 7F 96 00 00 80 31 80 65 B0 85 04 01 20 12 0F FF 82 90 00", "Belgian eID v1.8"),
        ("3B 98 13 40 0A A5 03 01 01 01 AD 13 11", "Belgium Electronic ID card"),
    ],
)
def test_belgian_eid_cards_use_the_belpic_driver(atr: str, listed_as: str) -> None:
    from cardbridge.emulator.belpic_card import ATR_V1_7, ATR_V1_8

    raw = bytes.fromhex(atr)
    assert raw in (ATR_V1_7, ATR_V1_8)  # the emulated cards have the real ATRs
    card = identify(raw)
    assert (card.known, card.driver) == (True, "belpic")
    if HAS_LIST:  # pcsc-tools names them so
        assert any(name.startswith(listed_as) for name in smartcard_list_names(raw))


@pytest.mark.skipif(not HAS_LIST, reason="pcsc-tools is not installed")
def test_unknown_card_is_named_from_smartcard_list() -> None:
    latvian = bytes.fromhex("3B DB 96 00 80 B1 FE 45 1F 83 00 12 42 8F 53 65 49 44 0F 90 00 20")
    card = identify(latvian)
    assert not card.known and card.driver is None and "Latvia" in card.name
    assert not any(name.startswith("http") for name in smartcard_list_names(latvian))


def test_entirely_unknown_card() -> None:
    card = identify(bytes.fromhex("3B 02 14 50"))
    assert card.name in ("unknown card", *smartcard_list_names(bytes.fromhex("3B 02 14 50")))
    assert card.to_dict()["atr"] == "3B 02 14 50"


def test_short_or_broken_atrs_do_not_crash() -> None:
    for raw in (b"", b"\x3b", bytes.fromhex("3B 8F 80"), bytes.fromhex("3B FF")):
        assert isinstance(historical_bytes(raw), bytes)
        assert not supports_extended_length(raw)
