"""Certificate selection (``cardbridge.selection``): which certificate an operation uses —
the survey of the backends, "insert your ID card" while none is usable, the person's choice
among several, AMBIGUOUS_CERTIFICATE for a caller that narrowed the choice itself. SoftHSM2
tokens and the scripted pinentry; the same with PC/SC cards is in ``tests/pcsc``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from cardbridge.errors import AmbiguousCertificateError, NoTokenError, UserCancelledError, UserTimeoutError
from cardbridge.events import EventHub
from cardbridge.model import Backend, Purpose, TokenInfo
from cardbridge.pinentry import FixedPinSource, PinentrySource
from cardbridge.pkcs11.backend import ModuleBackend
from cardbridge.selection import CertificateFinder, Selection, once_per_card
from cardbridge.service import CardService, open_backends
from cardbridge.workers import Workers
from tests.conftest import ScriptedPinentry, alive
from tests.softhsm import SoftHsm
from tests.verify import verify_token

pytestmark = pytest.mark.softhsm
ORIGIN = "https://login.example.no"


def nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
async def service(softhsm: SoftHsm) -> AsyncIterator[CardService]:
    svc = CardService(open_backends([softhsm.module]), user_timeout=10)
    yield svc
    await svc.aclose()


# -- the survey ---------------------------------------------------------------------------


class CountingWorkers(Workers):
    """Real worker calls, counted: each is a thread hand-over."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def run(self, owner: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.calls.append(getattr(fn, "__name__", repr(fn)))
        return await super().run(owner, fn, *args, **kwargs)


class OwnThreadTokens(ModuleBackend):
    """The real SoftHSM2 module, claiming what a PC/SC backend says: its tokens have worker
    threads of their own, so the survey may not read them on the backend's worker."""

    @property
    def tokens_share_worker(self) -> bool:
        return False


async def _finder_for(backend: Backend) -> tuple[CertificateFinder, CountingWorkers]:
    workers = CountingWorkers()
    return CertificateFinder([backend], workers, EventHub()), workers


async def test_a_modules_tokens_are_read_in_the_one_call_on_its_worker(softhsm: SoftHsm) -> None:
    (backend,) = open_backends([softhsm.module])
    try:
        assert backend.tokens_share_worker
        tokens = await asyncio.wrap_future(backend.executor.submit(backend.tokens))
        assert tokens and all(token.executor is backend.executor for token in tokens)  # what the property means
        finder, workers = await _finder_for(backend)
        candidates, failure = await finder.candidates(Purpose.AUTHENTICATION, Selection(token_label="p384"))
        assert failure is None and [c.token.info.label for c in candidates] == ["p384"]
        await finder.ready(candidates[0])  # its algorithms and PIN state came with the survey
        assert workers.calls == ["_survey"]
    finally:
        await asyncio.to_thread(backend.close)


async def test_tokens_with_threads_of_their_own_are_read_on_them(softhsm: SoftHsm) -> None:
    backend = OwnThreadTokens(softhsm.module)
    try:
        finder, workers = await _finder_for(backend)
        candidates, failure = await finder.candidates(Purpose.AUTHENTICATION, Selection(token_label="p384"))
        assert failure is None and [c.token.info.label for c in candidates] == ["p384"]
        algorithms, status = await finder.ready(candidates[0])
        assert algorithms and not status.blocked
        assert workers.calls == ["_survey", "certificates", "_algorithms_and_pin"]
    finally:
        await asyncio.to_thread(backend.close)


# -- several certificates, none ---------------------------------------------------------


async def test_two_authentication_certificates_are_ambiguous(service: CardService, pinentry: ScriptedPinentry) -> None:
    pinentry.respond("1234")
    with pytest.raises(AmbiguousCertificateError) as info:
        await service.authenticate(
            ORIGIN, nonce(), PinentrySource(pinentry.program), selection=Selection(token_label="two-auth")
        )
    candidates = info.value.details["candidates"]
    assert len(candidates) == 2
    assert pinentry.dialogs() == [], "no dialog before the certificate is chosen"
    chosen = candidates[1]["sha256"]
    challenge = nonce()
    token = await service.authenticate(
        ORIGIN, challenge, PinentrySource(pinentry.program), selection=Selection(certificate_sha256=chosen)
    )
    assert hashlib.sha256(token.unverified_certificate).hexdigest() == chosen
    verify_token(token.to_dict(), ORIGIN, challenge)


async def test_several_tokens_and_no_dialog_to_choose_are_ambiguous(service: CardService) -> None:
    with pytest.raises(AmbiguousCertificateError) as info:
        await service.authenticate(ORIGIN, nonce(), FixedPinSource("1234"))
    assert len(info.value.details["candidates"]) >= 5


async def test_no_token_and_no_dialog_to_wait_with(softhsm: SoftHsm) -> None:
    service = CardService(open_backends([softhsm.module]))
    with pytest.raises(NoTokenError):
        await service.authenticate(ORIGIN, nonce(), FixedPinSource("1234"), selection=Selection(token_label="missing"))
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


def test_a_card_in_a_reader_the_direct_driver_has_is_listed_once() -> None:
    """A module's slot in a reader where the direct driver has the card is the same card
    (the direct driver wins); a slot description is cut at 64 characters; a module token
    elsewhere (a SoftHSM2 slot, another reader) stays."""
    long_reader = "Long Reader Name " * 5
    direct = TokenInfo("pcsc", "Virtual PCD 00 00", "Jan Peeters", reader="Virtual PCD 00 00")
    direct_long = TokenInfo("pcsc", long_reader, "Card", reader=long_reader)
    opensc = [
        TokenInfo("pkcs11", "opensc-pkcs11.so", "BELPIC (Basic PIN)", slot=0, reader="Virtual PCD 00 00"),
        TokenInfo("pkcs11", "opensc-pkcs11.so", "Card (PIN)", slot=4, reader=long_reader[:64]),
        TokenInfo("pkcs11", "opensc-pkcs11.so", "Other", slot=8, reader="Virtual PCD 00 01"),
    ]
    softhsm = TokenInfo("pkcs11", "libsofthsm2.so", "cardbridge", slot=1, reader="SoftHSM slot ID 0x1")
    listed = once_per_card([direct, direct_long, *opensc, softhsm])
    assert listed == [direct, direct_long, opensc[2], softhsm]
    assert once_per_card(opensc) == opensc  # no direct driver: every slot is listed


def test_a_card_is_named_by_its_kind_when_its_label_is_the_holder() -> None:
    """The choice dialog shows the holder beside the card: a card whose label is the holder's
    name (the built-in drivers' tokens) is named by its model and reader, not by the holder
    again; a token with a label of its own keeps it."""
    from cardbridge.selection import card_name

    holder = "JAAK-KRISTJAN JÕEORG"
    esteid = TokenInfo("pcsc", "Virtual PCD 00 00", holder, model="Estonian ID card", reader="Virtual PCD 00 00")
    assert card_name(esteid, holder) == "Estonian ID card (Virtual PCD 00 00)"
    unread = TokenInfo(
        "pcsc", "Virtual PCD 00 01", "Estonian ID card", model="Estonian ID card", reader="Virtual PCD 00 01"
    )
    assert card_name(unread, holder) == "Estonian ID card (Virtual PCD 00 01)"
    softhsm = TokenInfo("pkcs11", "libsofthsm2.so", "cardbridge", model="SoftHSM v2", slot=1, reader="SoftHSM slot 1")
    assert card_name(softhsm, "Kari Nordmann") == "cardbridge (SoftHSM slot 1)"
    no_model = TokenInfo("pkcs11", "opensc-pkcs11.so", "Kari Nordmann", slot=0, reader="Virtual PCD 00 00")
    assert card_name(no_model, "Kari Nordmann") == "Kari Nordmann (Virtual PCD 00 00)"
