"""The Estonian ID card's Thales profile (2025) emulated in pcscd's vpcd reader, and the
Estonian driver's Thales token (the CLI, HTTP API and native host: ``test_national.py``).
Debian's OpenSC 0.23 has no driver for it (``card-esteid2025.c`` is OpenSC master's), so no
outside judge runs here."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardbridge.emulator.esteid_thales import ATR, EsteidThalesCard
from cardbridge.emulator.virtual_card import VirtualCard
from cardbridge.errors import PinBlockedError, PinIncorrectError
from cardbridge.model import Purpose, SignatureAlgorithm
from cardbridge.origins import OriginStore
from cardbridge.pcsc import PcscBackend
from tests.pcsc.conftest import Pcscd, start_kind, stop_card
from tests.pcsc.test_fineid import cert_for, fineid_token, on, opensc, verify_signature

pytestmark = pytest.mark.pcsc
ORIGIN = "https://eesti.example.ee"
PIN1, PIN2 = "1234", "12345"
ES384 = SignatureAlgorithm("ECC", "SHA-384", "NONE")
INS_VERIFY, INS_MSE = 0x20, 0x22


@pytest.fixture(autouse=True)
def _login_page_allowed(origin_store: OriginStore) -> None:
    origin_store.allow(ORIGIN)


@pytest.fixture
def thales(pcscd: Pcscd, card_folder: Path) -> Iterator[VirtualCard]:
    card = start_kind(card_folder / "esteid-thales", "esteid-thales")
    try:
        yield card
    finally:
        stop_card(card)


def applet(card: VirtualCard) -> EsteidThalesCard:
    assert isinstance(card.applet, EsteidThalesCard)
    return card.applet


def test_debian_opensc_has_no_driver_for_it(thales: VirtualCard) -> None:
    stock = opensc("pkcs15-tool", "--reader", "0", "--list-certificates", conf=None)
    assert stock.returncode != 0 and "Card is invalid or cannot be handled" in stock.stdout + stock.stderr


def test_driver_reads_the_estonian_identity_and_signs_with_each_pin(thales: VirtualCard, backend: PcscBackend) -> None:
    token = fineid_token(backend)
    assert token.info.extra["driver"] == "esteid-thales" and token.info.extra["atr"] == ATR.hex(" ").upper()
    card = applet(thales)
    assert token.info.serial == card.mf.child(b"\xdf\xdd").child(b"\x50\x07").data.decode()  # type: ignore[union-attr]
    auth, sign = cert_for(token, Purpose.AUTHENTICATION), cert_for(token, Purpose.SIGNING)
    assert (auth.given_name, auth.surname, auth.id_code, auth.curve) == (
        "JAAK-KRISTJAN",
        "JÕEORG",
        "PNOEE-38001085718",
        "secp384r1",
    )
    status = on(token, token.pin_status, auth)
    assert (status.retries_left, status.name, status.min_length) == (3, "PIN1", 4)
    assert on(token, token.pin_status, sign).min_length == 5
    digest = hashlib.sha384(b"M").digest()
    thales.reset_count()
    verify_signature(auth, digest, on(token, token.sign_digest, auth, bytearray(PIN1.encode()), digest, ES384), ES384)
    assert [r.command[3] for r in thales.records if r.ins == INS_VERIFY] == [0x81]
    assert next(r for r in thales.records if r.ins == INS_MSE).command[5:] == bytes.fromhex("800154840101")
    thales.reset_count()
    verify_signature(sign, digest, on(token, token.sign_digest, sign, bytearray(PIN2.encode()), digest, ES384), ES384)
    assert [r.command[3] for r in thales.records if r.ins == INS_VERIFY] == [0x82]
    assert next(r for r in thales.records if r.ins == INS_MSE).command[-1] == 0x05

    for expected in (2, 1):
        with pytest.raises(PinIncorrectError) as info:
            on(token, token.sign_digest, auth, bytearray(b"0000"), digest, ES384)
        assert info.value.retries_left == expected
    with pytest.raises(PinBlockedError):
        on(token, token.sign_digest, auth, bytearray(b"0000"), digest, ES384)
    assert on(token, token.pin_status, auth).blocked and card.pin1.tries_left == 0
    assert on(token, token.pin_status, sign).retries_left == 3
