"""The service's dialogs around the PIN: a new website (origin_policy = "ask"), waiting for
a card, choosing among several certificates. SoftHSM2 tokens and the scripted pinentry."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from pathlib import Path

import pytest

from cardbridge.config import Config, load_config
from cardbridge.errors import (
    AmbiguousCertificateError,
    BusyError,
    OriginNotAllowedError,
    UserCancelledError,
    UserTimeoutError,
)
from cardbridge.origins import REFUSAL_PAUSE, OriginStore, SitePolicy
from cardbridge.pinentry import PinentrySource
from cardbridge.service import CardService, Selection, open_backends
from tests.conftest import ScriptedPinentry, alive
from tests.softhsm import SoftHsm
from tests.verify import verify_token

pytestmark = pytest.mark.softhsm
ORIGIN = "https://login.example.no"
OTHER = "https://skatt.example.no"


def nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def service_for(softhsm: SoftHsm, config: Config, store: OriginStore, *, user_timeout: float = 10) -> CardService:
    return CardService(open_backends([softhsm.module]), user_timeout=user_timeout, sites=SitePolicy(config, store))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


P384 = Selection(token_label="p384")


# -- a new website ------------------------------------------------------------------------


async def test_first_login_asks_naming_the_origin_and_the_second_does_not(
    softhsm: SoftHsm, pinentry: ScriptedPinentry, origin_store: OriginStore
) -> None:
    service = service_for(softhsm, Config(), origin_store)
    try:
        pinentry.respond("OK", "1234")
        challenge = nonce()
        token = await service.authenticate(ORIGIN, challenge, PinentrySource(pinentry.program), selection=P384)
        verify_token(token.to_dict(), ORIGIN, challenge)
        question, pin = pinentry.dialogs()
        assert ["CONFIRM", ""] in question["commands"]
        (title, desc) = (arg for verb, arg in question["commands"] if verb in ("SETTITLE", "SETDESC"))
        assert desc.splitlines()[0] == ORIGIN  # first, and on a line of its own
        assert "nettsted" in title.lower()
        assert any(verb == "GETPIN" for verb, _ in pin["commands"])
        assert origin_store.is_allowed(ORIGIN)

        pinentry.respond("1234")
        await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384, lang="en")
        (only,) = pinentry.dialogs()
        assert any(verb == "GETPIN" for verb, _ in only["commands"])  # the PIN, no question

        assert origin_store.forget(ORIGIN)  # what `cardbridge origins forget` does
        pinentry.respond("OK", "1234")
        await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384, lang="en")
        question, _ = pinentry.dialogs()
        texts = dict((verb, arg) for verb, arg in question["commands"] if verb.startswith("SET"))
        assert texts["SETTITLE"] == "A new website wants your ID card" and texts["SETOK"] == "Allow"
        assert texts["SETDESC"].startswith(f"{ORIGIN}\n\nwants to use your ID card.")
    finally:
        await service.aclose()


async def test_cancel_refuses_this_time_and_the_site_cannot_ask_again_at_once(
    softhsm: SoftHsm, pinentry: ScriptedPinentry, origin_store: OriginStore
) -> None:
    service = service_for(softhsm, Config(), origin_store)
    try:
        pinentry.respond("CANCEL", "OK", "1234")
        with pytest.raises(UserCancelledError):
            await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
        assert len(pinentry.dialogs()) == 1  # the question only: no card touched, no PIN asked
        assert not origin_store.is_allowed(ORIGIN)
        for _ in range(3):  # the pause: refused at once, no dialog
            with pytest.raises(OriginNotAllowedError) as refused:
                await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
            assert "30" in refused.value.message
        assert len(pinentry.dialogs()) == 1
        # Another site is not paused; after the pause the first may ask again.
        assert SitePolicy(Config(), origin_store).decide(OTHER) == "ask"
        later = time.time() + REFUSAL_PAUSE + 1
        from cardbridge.origins import decide

        assert decide(ORIGIN, Config(), origin_store, now=later) == "ask"
    finally:
        await service.aclose()


@pytest.mark.parametrize(
    "config",
    [
        Config(denied_origins=(ORIGIN,)),
        Config(denied_origins=(ORIGIN,), allowed_origins=(ORIGIN,)),  # denied wins
        Config(origin_policy="allow-list"),
        Config(origin_policy="allow-list", allowed_origins=(OTHER,)),
    ],
)
async def test_denied_or_unlisted_is_never_asked(
    softhsm: SoftHsm, pinentry: ScriptedPinentry, origin_store: OriginStore, config: Config
) -> None:
    origin_store.allow(ORIGIN)  # even a site the person allowed before, when the config denies it
    if config.origin_policy == "allow-list":
        origin_store.forget(ORIGIN)
    service = service_for(softhsm, config, origin_store)
    try:
        pinentry.respond("OK", "1234")
        with pytest.raises(OriginNotAllowedError):
            await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
        assert pinentry.dialogs() == []
    finally:
        await service.aclose()


async def test_a_locked_system_setting_wins_over_the_users_file(
    softhsm: SoftHsm, pinentry: ScriptedPinentry, origin_store: OriginStore, tmp_path: Path
) -> None:
    system = write(
        tmp_path / "system.toml",
        f'origin_policy = "allow-list"\nallowed_origins = ["{OTHER}"]\nlocked = ["origin_policy", "allowed_origins"]\n',
    )
    user = write(tmp_path / "user.toml", f'origin_policy = "ask"\nallowed_origins = ["{ORIGIN}"]\n')
    config = load_config(user, system_path=system)
    assert (config.origin_policy, config.allowed_origins) == ("allow-list", (OTHER,))
    service = service_for(softhsm, config, origin_store)
    try:
        pinentry.respond("OK", "1234")
        with pytest.raises(OriginNotAllowedError) as refused:
            await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
        assert "allowed_origins" in refused.value.message
        assert pinentry.dialogs() == []
        # Unlocked, the user's file would have let it through.
        write(system, f'origin_policy = "allow-list"\nallowed_origins = ["{OTHER}"]\n')
        service.sites = SitePolicy(load_config(user, system_path=system), origin_store)
        pinentry.respond("OK", "1234")
        await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
    finally:
        await service.aclose()


async def test_one_question_at_a_time(softhsm: SoftHsm, pinentry: ScriptedPinentry, origin_store: OriginStore) -> None:
    service = service_for(softhsm, Config(), origin_store, user_timeout=30)
    try:
        pinentry.respond("HANG")
        first = asyncio.create_task(
            service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
        )
        for _ in range(200):
            if pinentry.dialogs():
                break
            await asyncio.sleep(0.05)
        with pytest.raises(BusyError):
            await service.authenticate(OTHER, nonce(), PinentrySource(pinentry.program), selection=P384)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        (dialog,) = pinentry.dialogs()
        assert not alive(dialog["pid"])
        assert not origin_store.is_allowed(ORIGIN)
    finally:
        await service.aclose()


# -- waiting for a card -------------------------------------------------------------------


async def test_no_card_shows_a_notice_and_times_out(softhsm: SoftHsm, pinentry: ScriptedPinentry) -> None:
    service = CardService(open_backends([softhsm.module]), user_timeout=2.5)
    try:
        pinentry.respond("WAIT")
        with pytest.raises(UserTimeoutError):  # the notice stayed open until user_timeout
            await service.authenticate(
                ORIGIN, nonce(), PinentrySource(pinentry.program), selection=Selection(token_label="missing"), lang="en"
            )
        (dialog,) = pinentry.dialogs()
        assert ["CONFIRM", "--one-button"] in dialog["commands"]
        assert ["SETOK", "Cancel"] in dialog["commands"]  # its one button
        (desc,) = pinentry.texts("SETDESC")
        assert desc.startswith(ORIGIN) and "Put your ID card in the card reader" in desc
        for _ in range(50):
            if not alive(dialog["pid"]):
                break
            await asyncio.sleep(0.1)
        assert not alive(dialog["pid"])  # the bridge closed it
    finally:
        await service.aclose()


async def test_the_question_and_the_wait_share_one_timeout(
    softhsm: SoftHsm, pinentry: ScriptedPinentry, origin_store: OriginStore
) -> None:
    # A page's client waits user_timeout (plus a margin) for the whole login, not per dialog.
    service = service_for(softhsm, Config(), origin_store, user_timeout=6)
    try:
        pinentry.respond("AFTER 4 OK", "WAIT")  # 4 s to allow the site, then no card
        started = time.monotonic()
        with pytest.raises(UserTimeoutError):
            await service.authenticate(
                ORIGIN, nonce(), PinentrySource(pinentry.program), selection=Selection(token_label="missing")
            )
        assert time.monotonic() - started < 8.5  # one budget of 6 s, not 4 s + 6 s
        question, notice = pinentry.dialogs()
        timeouts = [int(arg) for d in (question, notice) for verb, arg in d["commands"] if verb == "SETTIMEOUT"]
        assert timeouts[0] <= 6 and timeouts[1] <= 2  # the notice gets what is left
    finally:
        await service.aclose()


async def test_the_notices_button_cancels(softhsm: SoftHsm, pinentry: ScriptedPinentry) -> None:
    service = CardService(open_backends([softhsm.module]), user_timeout=10)
    try:
        pinentry.respond("OK")  # its one button says Cancel
        with pytest.raises(UserCancelledError):
            await service.sign(
                ORIGIN, b"not on any card", bytes(32), "SHA-256", PinentrySource(pinentry.program), lang="en"
            )
        (desc,) = pinentry.texts("SETDESC")
        assert "does not have the certificate needed" in desc
    finally:
        await service.aclose()


# -- choosing a certificate ---------------------------------------------------------------


def _card_of(dialog: dict[str, object]) -> str:
    desc = next(arg for verb, arg in dialog["commands"] if verb == "SETDESC")  # type: ignore[attr-defined]
    return str(desc).split("Card: ", 1)[1].splitlines()[0].split(" (")[0]  # the label, without where


async def test_several_certificates_the_person_chooses_and_the_chosen_one_signs(
    softhsm: SoftHsm, pinentry: ScriptedPinentry
) -> None:
    service = CardService(open_backends([softhsm.module]), user_timeout=10)
    try:
        listings = {listing.info.label: listing for listing in await service.list_tokens()}
        # How many options: the first dialog says "Certificate 1 of N".
        pinentry.respond("CANCEL")
        with pytest.raises(UserCancelledError):
            await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), lang="en")
        (first,) = pinentry.texts("SETDESC")
        count = int(first.split("Certificate 1 of ", 1)[1].split(":", 1)[0])
        assert count >= 5
        # Once round with "Next" to see them all (Cancel at the end): one per certificate.
        pinentry.respond(*["NOTOK"] * (count - 1), "CANCEL")
        with pytest.raises(UserCancelledError):
            await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), lang="en")
        cards = [_card_of(d) for d in pinentry.dialogs()]
        assert len(cards) == count and {"p256", "p384", "rsa", "two-auth"} <= set(cards)
        assert cards.count("two-auth") == 2  # two login certificates on one token: both offered
        for index, choice in enumerate(pinentry.dialogs()):
            commands = choice["commands"]
            assert ["SETNOTOK", "Next"] in commands and ["SETOK", "Use this one"] in commands
            assert ["CONFIRM", ""] in commands
            desc = next(arg for verb, arg in commands if verb == "SETDESC")
            assert desc.startswith(f"{ORIGIN}\n\nasks for your ID card. You have {count} certificates")
            assert f"Certificate {index + 1} of {count}" in desc
            assert f"Holder: {softhsm.citizen.common_name}" in desc
            assert "Issuer: cardbridge Development ID Card CA\n" in desc
        # Now "Next" up to p384, and Use this one.
        wanted = cards.index("p384")
        pinentry.respond(*["NOTOK"] * wanted, "OK", "1234")
        challenge = nonce()
        token = await service.authenticate(ORIGIN, challenge, PinentrySource(pinentry.program), lang="en")
        data = token.to_dict()
        verify_token(data, ORIGIN, challenge)  # the certificate in the token made the signature
        *choices, pin = pinentry.dialogs()
        assert len(choices) == wanted + 1 and _card_of(choices[-1]) == "p384"
        chosen = base64.b64decode(data["unverifiedCertificate"])
        assert chosen in {c.der for c in listings["p384"].certificates}  # the p384 card's key signed
        assert data["algorithm"] == "ES384"
        assert any(verb == "GETPIN" for verb, _ in pin["commands"])
    finally:
        await service.aclose()


async def test_a_caller_that_narrowed_the_choice_still_gets_ambiguous(
    softhsm: SoftHsm, pinentry: ScriptedPinentry
) -> None:
    service = CardService(open_backends([softhsm.module]), user_timeout=10)
    try:
        with pytest.raises(AmbiguousCertificateError) as info:
            await service.authenticate(
                ORIGIN, nonce(), PinentrySource(pinentry.program), selection=Selection(token_label="two-auth")
            )
        assert len(info.value.details["candidates"]) == 2
        assert pinentry.dialogs() == []
    finally:
        await service.aclose()


async def test_cancel_in_the_choice_is_a_cancel(softhsm: SoftHsm, pinentry: ScriptedPinentry) -> None:
    service = CardService(open_backends([softhsm.module]), user_timeout=10)
    try:
        pinentry.respond("NOTOK", "CANCEL", "1234")
        with pytest.raises(UserCancelledError):
            await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program))
        assert len(pinentry.dialogs()) == 2  # no PIN dialog
    finally:
        await service.aclose()


async def test_an_unanswered_question_counts_as_no_for_the_pause(
    softhsm: SoftHsm, pinentry: ScriptedPinentry, origin_store: OriginStore
) -> None:
    # A page in a background tab must not raise the question again and again by leaving it
    # unanswered: the pinentry times out (as pinentry does with --timeout), then the pause.
    service = service_for(softhsm, Config(), origin_store)
    try:
        pinentry.respond("TIMEOUT")
        with pytest.raises(UserTimeoutError):
            await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
        assert len(pinentry.dialogs()) == 1
        with pytest.raises(OriginNotAllowedError):
            await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
        assert len(pinentry.dialogs()) == 1  # no second question
        assert not origin_store.is_allowed(ORIGIN)
    finally:
        await service.aclose()
