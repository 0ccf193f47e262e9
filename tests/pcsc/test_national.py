"""Every national ID card the same way (one test per card profile, :data:`PROFILES`), through
the direct driver and each entry point: the CLI, the HTTP API and the native host.

- a login's token validates with ``cardbridge.portal`` against the development CA, with the
  identity as the country's certificates give it; the dialog names the PIN as the card does;
- a wrong PIN counts down, and a blocked PIN is never asked for;
- a signature (get-signing-certificate, then sign) uses the signing PIN (PIN2);
- the card pulled in the middle of a signature is CARD_REMOVED, and the next login works.

What each card does of its own (its APDUs, OpenSC's view of it, its files) stays in its
own test module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from cardbridge.emulator.iso7816 import Applet
from cardbridge.emulator.virtual_card import VirtualCard
from cardbridge.errors import CardRemovedError
from cardbridge.iso7816 import INS_VERIFY
from cardbridge.model import CertificateInfo, Purpose, Token
from cardbridge.pcsc import PcscBackend
from tests.cards import verify_signature
from tests.conftest import ScriptedPinentry
from tests.pcsc.conftest import READER_0, Pcscd, start_kind, stop_card, wait_for_card
from tests.pcsc.national import (
    ORIGIN,
    PROFILES,
    NationalCard,
    bridge_env,
    cli,
    digest_for,
    http_login,
    nonce,
    on,
    validate,
)

pytestmark = pytest.mark.pcsc


@pytest.fixture(params=PROFILES, ids=[p.id for p in PROFILES])
def profile(request: pytest.FixtureRequest) -> NationalCard:
    assert isinstance(request.param, NationalCard)
    return request.param


@pytest.fixture
def card(profile: NationalCard, pcscd: Pcscd, card_folder: Path) -> Iterator[VirtualCard]:
    """A fresh card of the profile in reader 0 (its keys made once per session)."""
    virtual = start_kind(card_folder, profile.kind, key=profile.key)
    try:
        yield virtual
    finally:
        stop_card(virtual)


def applet(card: VirtualCard) -> Applet:
    return card.applet


def verify_references(card: VirtualCard) -> set[int]:
    """The PIN references of the card's VERIFY commands (their data is never recorded)."""
    return {r.command[3] for r in card.records if r.ins == INS_VERIFY}


def test_cli_login_validates_with_the_portal(
    profile: NationalCard, card: VirtualCard, card_folder: Path, tmp_path: Path, pinentry: ScriptedPinentry
) -> None:
    pinentry.respond(profile.pins[0])
    challenge = nonce()
    result = cli("authenticate", "--origin", ORIGIN, "--nonce", challenge, env=bridge_env(tmp_path, pinentry.env()))
    assert result.returncode == 0, result.stderr
    validate(profile, json.loads(result.stdout), challenge, card_folder)
    (description,) = pinentry.texts("SETDESC")
    assert ORIGIN in description and profile.pin_names[0] in description
    assert f"{profile.tries} tries" in description or f"({profile.tries}" in description, description
    assert profile.login_ins in [r.ins for r in card.records]


def test_http_api_login_wrong_pins_count_down_and_a_blocked_pin_is_never_asked(
    profile: NationalCard, card: VirtualCard, card_folder: Path, tmp_path: Path, pinentry: ScriptedPinentry
) -> None:
    from tests.server.conftest import start_serve

    served = start_serve("--allow-origin", ORIGIN, env=bridge_env(tmp_path, pinentry.env()))
    try:
        pinentry.respond(profile.pins[0])
        challenge = nonce()
        status, token = http_login(served.port, challenge)
        assert status == 200, token
        validate(profile, token, challenge, card_folder)
        profile.set_tries_left(applet(card), 3)  # a card with more tries: as after wrong PINs before
        for left in (2, 1):
            pinentry.respond("0000", "CANCEL")  # a wrong PIN, then the person gives up
            status, body = http_login(served.port, nonce())
            assert body["code"] == "USER_CANCELLED", body
            assert profile.tries_left(applet(card)) == left
            told = " ".join(pinentry.texts("SETERROR"))
            assert re.search(rf"\b{left} tr(y|ies) left", told), told
        pinentry.respond("0000")
        status, body = http_login(served.port, nonce())
        assert body["code"] == "PIN_BLOCKED", body
        assert body["text"].startswith(f"{profile.pin_names[0]} is blocked."), body  # which PIN (review3 #5)
        pinentry.respond(profile.pins[0])
        status, body = http_login(served.port, nonce())
        assert body["code"] == "PIN_BLOCKED", body
        assert body["text"].startswith(f"{profile.pin_names[0]} is blocked."), body
        assert pinentry.dialogs() == [], "a blocked PIN is never asked for"
        if profile.references[1] != profile.references[0]:
            assert profile.tries_left(applet(card), 1) == 3, "the signing PIN is a PIN of its own"
    finally:
        served.stop()


def _host(env: dict[str, str], command: str, arguments: dict[str, object]) -> dict[str, object]:
    """One native-host run (the Web eID protocol: one command per host)."""
    from cardbridge.nativemsg import EXTENSION_CHROME_ID
    from tests.nativemsg.conftest import HostProcess

    host = HostProcess(f"chrome-extension://{EXTENSION_CHROME_ID}/", env=env)
    try:
        host.read()  # the host speaks first
        host.send({"command": command, "arguments": {"origin": ORIGIN, "lang": "en", **arguments}})
        answer = host.read()
        host.finish()
    finally:
        host.kill()
    assert isinstance(answer, dict) and "error" not in answer, answer
    return answer


def test_native_host_logs_in_then_signs_with_the_signing_pin(
    profile: NationalCard, card: VirtualCard, card_folder: Path, tmp_path: Path, pinentry: ScriptedPinentry
) -> None:
    env = bridge_env(tmp_path, pinentry.env())
    pinentry.respond(profile.pins[0])
    challenge = nonce()
    validate(profile, _host(env, "authenticate", {"challengeNonce": challenge}), challenge, card_folder)

    pinentry.respond("OK")  # the person agrees to share the signing certificate
    answer = _host(env, "get-signing-certificate", {})
    certificate = base64.b64decode(str(answer["certificate"]))
    assert (
        x509.load_der_x509_certificate(certificate)
        .extensions.get_extension_for_class(x509.KeyUsage)
        .value.content_commitment
    ), "the signing (non-repudiation) certificate"

    pinentry.respond(profile.pins[1])
    digest = hashlib.sha256(b"the document").digest()
    card.reset_count()
    signed = _host(
        env,
        "sign",
        {"hash": base64.b64encode(digest).decode(), "hashFunction": "SHA-256", "certificate": answer["certificate"]},
    )
    verify_signature(certificate, digest, base64.b64decode(str(signed["signature"])))
    assert verify_references(card) == {profile.references[1]}, "the signing PIN, and no other"
    assert any(profile.pin_names[1] in text for text in pinentry.texts("SETDESC"))


def _login_certificate(backend: PcscBackend) -> tuple[Token, CertificateInfo]:
    token = backend.executor.submit(backend.token, READER_0).result(timeout=30)
    return token, next(c for c in on(token, token.certificates) if c.purpose is Purpose.AUTHENTICATION)


def test_card_pulled_mid_signature_is_card_removed_and_the_next_login_works(
    profile: NationalCard, card: VirtualCard, backend: PcscBackend
) -> None:
    token, auth = _login_certificate(backend)
    digest, algorithm = digest_for(token, auth, b"pulled")
    pin = profile.pins[0].encode()
    card.pull_when(profile.login_ins)  # after the PIN was verified, before the card signs
    with pytest.raises(CardRemovedError) as info:
        on(token, token.sign_digest, auth, bytearray(pin), digest, algorithm)
    assert str(info.value.code) == "CARD_REMOVED"
    wait_for_card(READER_0, False)
    assert card.insert(wait=10)
    wait_for_card(READER_0, True)
    token, auth = _login_certificate(backend)
    verify_signature(auth.der, digest, on(token, token.sign_digest, auth, bytearray(pin), digest, algorithm))
