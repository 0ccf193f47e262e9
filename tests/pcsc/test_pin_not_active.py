"""A PIN its holder has not activated yet, on the cards of the Thales application (the
Estonian card since 2025 and FINEID v4): the card says so in GET DATA (DF2F 00), and
cardbridge never asks for that PIN nor sends it — no dialog, no VERIFY, no try spent — and
ends the login or signature with PIN_NOT_ACTIVE, whose text says where to activate it (as
the Web eID app says it for the Estonian card). Real pcscd + vpcd with the emulated cards
(``cardbridge dev card --kind fineid|esteid-thales --pin-not-active|--pin2-not-active``)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from smartcard.System import readers

from cardbridge.emulator.fineid import PKCS15_AID, FineidApplet
from cardbridge.emulator.virtual_card import VirtualCard
from cardbridge.iso7816 import INS_GET_DATA, INS_VERIFY
from tests.cards import verify_signature
from tests.conftest import ScriptedPinentry
from tests.pcsc.conftest import READER_0, Pcscd, start_kind, stop_card
from tests.pcsc.national import ESTEID_THALES, FINEID, ORIGIN, NationalCard, bridge_env, cli, http_login, nonce

pytestmark = pytest.mark.pcsc

# What the text tells the person to use, by card: the country's own software or portal.
ADVICE = {
    ("esteid-thales", "pin"): "politsei.ee",  # a courier-delivered card: the police's self-service portal
    ("esteid-thales", "pin2"): "DigiDoc4",
    ("fineid", "pin"): "DigiSign Client",
    ("fineid", "pin2"): "DigiSign Client",
}


@pytest.fixture(params=(ESTEID_THALES, FINEID), ids=("esteid-thales", "fineid"))
def profile(request: pytest.FixtureRequest) -> NationalCard:
    assert isinstance(request.param, NationalCard)
    return request.param


def issued(card_folder: Path, profile: NationalCard, not_active: str) -> VirtualCard:
    return start_kind(card_folder, profile.kind, not_active=(not_active,))


@pytest.fixture
def pin2_not_active(profile: NationalCard, pcscd: Pcscd, card_folder: Path) -> Iterator[VirtualCard]:
    card = issued(card_folder, profile, "pin2")
    try:
        yield card
    finally:
        stop_card(card)


@pytest.fixture
def pin1_not_active(profile: NationalCard, pcscd: Pcscd, card_folder: Path) -> Iterator[VirtualCard]:
    card = issued(card_folder, profile, "pin")
    try:
        yield card
    finally:
        stop_card(card)


def applet(card: VirtualCard) -> FineidApplet:
    assert isinstance(card.applet, FineidApplet)  # the Estonian Thales card is one too
    return card.applet


def post(port: int, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(
            "POST", path, body=json.dumps(body), headers={"Origin": ORIGIN, "Content-Type": "application/json"}
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def sign_request(port: int) -> dict[str, Any]:
    """The signing certificate (shared by the person: the dialog's OK must be queued), then
    a /v1/sign request for a document's SHA-256 with it."""
    status, answer = post(port, "/v1/signing-certificate", {"lang": "en"})
    assert status == 200, answer
    digest = hashlib.sha256(b"the document").digest()
    request = {"certificate": answer["certificate"], "hash": base64.b64encode(digest).decode()}
    return request | {"hashFunction": "SHA-256", "lang": "en"}


def change_pin2(old: str, new: str) -> None:
    """What the holder's own software (DigiDoc4, DigiSign Client) does to activate PIN2:
    CHANGE REFERENCE DATA with the old and the new PIN, through pcscd like any program."""
    reader = next(r for r in readers() if str(r) == READER_0)
    connection = reader.createConnection()
    connection.connect()
    try:
        _, sw1, sw2 = connection.transmit(list(bytes.fromhex("00A4040C0C") + PKCS15_AID))
        assert (sw1, sw2) == (0x90, 0x00)
        data = old.encode().ljust(12, b"\x00") + new.encode().ljust(12, b"\x00")
        _, sw1, sw2 = connection.transmit([0x00, 0x24, 0x00, 0x82, len(data), *data])
        assert (sw1, sw2) == (0x90, 0x00)
    finally:
        connection.disconnect()
        connection.release()


def test_pin2_not_active_signing_ends_before_any_dialog_or_verify_until_the_holder_changes_it(
    profile: NationalCard, pin2_not_active: VirtualCard, tmp_path: Path, pinentry: ScriptedPinentry
) -> None:
    from tests.server.conftest import start_serve

    card, tries = applet(pin2_not_active), profile.tries
    served = start_serve("--allow-origin", ORIGIN, env=bridge_env(tmp_path, pinentry.env()))
    try:
        pinentry.respond("OK")  # the person shares the signing certificate
        request = sign_request(served.port)

        pin2_not_active.reset_count()
        pinentry.respond(profile.pins[1])  # were a dialog shown, it would get the right PIN2
        status, body = post(served.port, "/v1/sign", request)
        assert (status, body["code"]) == (403, "PIN_NOT_ACTIVE"), body
        assert ADVICE[profile.kind, "pin2"] in body["text"], body["text"]
        assert pinentry.dialogs() == [], "a PIN that is not active is never asked for"
        sent = [r.ins for r in pin2_not_active.records]
        assert INS_GET_DATA in sent and INS_VERIFY not in sent, sent
        assert card.pin2.tries_left == tries and card.not_active == {profile.references[1]}

        # The login PIN is active: a login works as on any card.
        pinentry.respond(profile.pins[0])
        status, token = http_login(served.port, nonce())
        assert status == 200, token

        # Once the holder changed PIN2 in the country's software, it signs with the new PIN2.
        change_pin2(profile.pins[1], "246802")
        pinentry.respond("246802")
        pin2_not_active.reset_count()
        status, signed = post(served.port, "/v1/sign", request)
        assert status == 200, signed
        certificate, digest = (base64.b64decode(request[k]) for k in ("certificate", "hash"))
        verify_signature(certificate, digest, base64.b64decode(signed["signature"]))
        assert [r.command[3] for r in pin2_not_active.records if r.ins == INS_VERIFY] == [profile.references[1]]
    finally:
        served.stop()


def test_pin1_not_active_login_ends_before_any_dialog_or_verify(
    profile: NationalCard, pin1_not_active: VirtualCard, tmp_path: Path, pinentry: ScriptedPinentry
) -> None:
    pinentry.respond(profile.pins[0])  # were a dialog shown, it would get the right PIN1
    result = cli(
        "authenticate", "--json", "--origin", ORIGIN, "--nonce", nonce(), env=bridge_env(tmp_path, pinentry.env())
    )
    assert result.returncode == 5, (result.returncode, result.stderr)
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "PIN_NOT_ACTIVE", error
    assert ADVICE[profile.kind, "pin"] in error["text"], error["text"]
    assert "PIN_NOT_ACTIVE" in result.stderr and ADVICE[profile.kind, "pin"] in result.stderr
    assert pinentry.dialogs() == [], "a PIN that is not active is never asked for"
    sent = [r.ins for r in pin1_not_active.records]
    assert INS_GET_DATA in sent and INS_VERIFY not in sent, sent
    card = applet(pin1_not_active)
    assert card.pin1.tries_left == profile.tries and card.not_active == {profile.references[0]}
    # `cardbridge list` says so too (the login certificate's PIN).
    listed = cli("list", "--json", env=bridge_env(tmp_path, pinentry.env()))
    (token,) = [t for t in json.loads(listed.stdout)["tokens"] if t["token"]["backend"] == "pcsc"]
    assert token["pin"]["notActive"] is True and token["pin"]["retriesLeft"] == profile.tries, token["pin"]


def test_pin1_not_active_the_estonian_card_signs_nothing_the_finnish_one_signs_with_pin2(
    profile: NationalCard, pin1_not_active: VirtualCard, tmp_path: Path, pinentry: ScriptedPinentry
) -> None:
    """An Estonian Thales card whose PIN1 is not active is a card not activated at all: the Web
    eID app refuses signing too ("Authentication and signing with the ID-card isn't possible
    yet. ID-card must be activated in the Police and Border Guard Board's self-service
    portal"), though PIN2 is active — PIN_NOT_ACTIVE with PIN1's advice, before any dialog
    or VERIFY. The Finnish card's PIN2 signs whatever PIN1's state (libelectronic-id checks
    PIN1 only for the Estonian card)."""
    from tests.server.conftest import start_serve

    card, tries = applet(pin1_not_active), profile.tries
    served = start_serve("--allow-origin", ORIGIN, env=bridge_env(tmp_path, pinentry.env()))
    try:
        pinentry.respond("OK")  # the person shares the signing certificate
        request = sign_request(served.port)

        pin1_not_active.reset_count()
        pinentry.respond(profile.pins[1])  # were a dialog shown, it would get the right PIN2
        status, body = post(served.port, "/v1/sign", request)
        verifies = [r.command[3] for r in pin1_not_active.records if r.ins == INS_VERIFY]
        if profile.kind == "esteid-thales":
            assert (status, body.get("code")) == (403, "PIN_NOT_ACTIVE"), body
            assert ADVICE[profile.kind, "pin"] in body["text"], body["text"]  # activate the card, not PIN2
            assert pinentry.dialogs() == [], "no PIN is asked for on a card not activated"
            assert verifies == []
        else:
            assert status == 200, body
            certificate, digest = (base64.b64decode(request[k]) for k in ("certificate", "hash"))
            verify_signature(certificate, digest, base64.b64decode(body["signature"]))
            assert verifies == [profile.references[1]]
        assert card.pin1.tries_left == card.pin2.tries_left == tries
        assert card.not_active == {profile.references[0]}
    finally:
        served.stop()
