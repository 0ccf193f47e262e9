"""Which PIN: on a two-PIN card (Estonian, Finnish) a blocked or nearly blocked PIN is
that PIN only, so every text names it as the card does ("PIN1", "PIN2
(allekirjoitustunnusluku)"): ``cardbridge doctor`` (review3 #4), the last-try dialog and
PIN_BLOCKED (review3 #5). Real pcscd + vpcd with the emulated cards; the tries left are set
in the card's applet, as wrong PINs given before would have left them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardbridge import i18n
from cardbridge.emulator.virtual_card import VirtualCard
from cardbridge.errors import PinBlockedError
from cardbridge.model import Purpose
from cardbridge.pinentry import PinentrySource
from cardbridge.service import CardService, open_backends
from tests.conftest import ScriptedPinentry
from tests.pcsc.conftest import READER_0, Pcscd, start_kind, stop_card
from tests.pcsc.national import ESTEID, FINEID, ORIGIN, NationalCard, digest_for, on
from tests.test_doctor import _doctor, _env

pytestmark = pytest.mark.pcsc


def _card(card_folder: Path, profile: NationalCard) -> Iterator[VirtualCard]:
    card = start_kind(card_folder, profile.kind, key=profile.key)
    try:
        yield card
    finally:
        stop_card(card)


@pytest.fixture
def esteid(pcscd: Pcscd, card_folder: Path) -> Iterator[VirtualCard]:
    yield from _card(card_folder, ESTEID)


@pytest.fixture
def fineid(pcscd: Pcscd, card_folder: Path) -> Iterator[VirtualCard]:
    yield from _card(card_folder, FINEID)


def test_doctor_says_pin1_is_blocked_and_pin2_has_its_last_try(esteid: VirtualCard, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    applet = esteid.applet
    applet.pin1.tries_left = 0  # type: ignore[attr-defined]
    applet.pin2.tries_left = 1  # type: ignore[attr-defined]
    code, checks, _ = _doctor("--lang", "en", env=_env(tmp_path, home))
    tokens = checks["tokens"]
    failed = [c for c in tokens if c["status"] == "fail"]
    assert len(failed) == 1, tokens
    assert "PIN1 is blocked" in failed[0]["detail"] and "log you in" in failed[0]["detail"], failed
    assert "PUK" in failed[0]["fix"], failed
    warned = [c for c in tokens if c["status"] == "warn"]
    assert any("PIN2 has one try left" in c["detail"] for c in warned), tokens
    assert code == 1, "a login cannot work: doctor fails"
    holder = "JAAK-KRISTJAN JÕEORG"
    mine = [c["detail"] for c in tokens if holder in c["detail"]]  # not the tokens of other modules
    assert mine and all(detail.count(holder) == 1 for detail in mine), mine


def test_finnish_signing_names_pin2_in_the_last_try_and_when_it_is_blocked(
    fineid: VirtualCard, pinentry: ScriptedPinentry
) -> None:
    pin2 = FINEID.pin_names[1]
    fineid.applet.pin2.tries_left = 1  # type: ignore[attr-defined]

    async def sign() -> PinBlockedError:
        service = CardService(open_backends([], reader=READER_0))
        try:
            (backend,) = service.backends
            token = on(backend, lambda: backend.token(READER_0))  # type: ignore[attr-defined]
            certificate = next(c for c in on(token, token.certificates) if c.purpose is Purpose.SIGNING)
            digest, algorithm = digest_for(token, certificate)
            source = PinentrySource(pinentry.program)
            with pytest.raises(PinBlockedError) as raised:
                await service.sign(ORIGIN, certificate.der, digest, algorithm.hash_function, source, lang="en")
            return raised.value
        finally:
            await service.aclose()

    pinentry.respond("000000")  # a wrong signing PIN at its last try
    blocked = asyncio.run(sign())
    (description,) = pinentry.texts("SETDESC")
    assert f"If you enter a wrong PIN now, {pin2} will be blocked." in description, description
    assert "the card will be blocked" not in description
    pinentry.respond()
    again = asyncio.run(sign())
    assert pinentry.dialogs() == [], "a blocked PIN is never asked for"
    for error in (blocked, again):  # blocked at this VERIFY; then found blocked before any dialog
        assert error.details.get("pinName") == pin2 and pin2 in error.message, error
        assert i18n.error_message(error, "en").startswith(f"{pin2} is blocked."), i18n.error_message(error, "en")


def test_a_wrong_pin_with_one_try_left_names_the_pin_the_card_will_block(fineid: VirtualCard, tmp_path: Path) -> None:
    """Without a dialog (``--pin-stdin``) the error is all the person reads: on a two-PIN
    card it names the PIN that one more wrong try blocks, not "the card"."""
    from tests.pcsc.national import bridge_env, cli, nonce

    pin1 = FINEID.pin_names[0]
    fineid.applet.pin1.tries_left = 2  # type: ignore[attr-defined]
    args = ("authenticate", "--origin", ORIGIN, "--nonce", nonce(), "--reader", READER_0, "--pin-stdin", "--json")
    result = cli(*args, stdin="0000\n", env=bridge_env(tmp_path, {}))
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "PIN_INCORRECT", error
    assert f"If you enter a wrong PIN once more, {pin1} will be blocked." in error["text"], error
    assert fineid.applet.pin1.tries_left == 1  # type: ignore[attr-defined]
