"""No card when a login starts: the dialog asks for it, and the login goes on by itself once
the card is in. Real pcscd, the vpcd reader and the virtual PIV card, inserted two seconds
after the login started: through a running ``cardbridge serve`` (its card monitor's events)
and through ``cardbridge authenticate`` (which looks once a second)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cardbridge.emulator.virtual_card import VirtualPivCard
from cardbridge.origins import OriginStore
from tests.conftest import ScriptedPinentry, alive
from tests.pcsc.conftest import READER_0, Pcscd, start_card, stop_card, wait_for_card
from tests.server.conftest import start_serve
from tests.verify import verify_token

pytestmark = pytest.mark.pcsc
ORIGIN = "https://login.example.no"
CLI = (sys.executable, "-m", "cardbridge", "--lang", "en")


def nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _only_the_virtual_card() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("CARDBRIDGE_PKCS11_MODULE", "SOFTHSM2_CONF")}


def _reader_is_empty(pcscd: Pcscd) -> None:
    wait_for_card(READER_0, False)


def _wait_for_dialog(pinentry: ScriptedPinentry, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dialogs = pinentry.dialogs()
        if len(dialogs) >= count:
            return dialogs
        time.sleep(0.05)
    raise AssertionError(f"no dialog {count} within {timeout} s: {pinentry.dialogs()}")


def _check_the_notice_then_the_pin(pinentry: ScriptedPinentry) -> None:
    notice, pin = pinentry.dialogs()
    assert ["CONFIRM", "--one-button"] in notice["commands"]
    desc = next(arg for verb, arg in notice["commands"] if verb == "SETDESC")
    assert desc.startswith(f"{ORIGIN}\n\nasks for your ID card.")
    assert "Put your ID card in the card reader" in desc
    assert not alive(notice["pid"]), "the bridge closed the notice when the card came"
    assert any(verb == "GETPIN" for verb, _ in pin["commands"])


def test_serve_waits_for_the_card_and_logs_in_when_it_comes(
    pcscd: Pcscd, card_folder: Path, pinentry: ScriptedPinentry
) -> None:
    _reader_is_empty(pcscd)
    # The built-in driver and the modules p11-kit knows (OpenSC sees the same card: it counts once).
    served = start_serve("--allow-origin", ORIGIN, env={**_only_the_virtual_card(), **pinentry.env()})
    card: VirtualPivCard | None = None
    try:
        pinentry.respond("WAIT", "123456")
        challenge = nonce()
        result: dict[str, Any] = {}

        def login() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=90)
            try:
                conn.request(
                    "POST",
                    "/v1/authenticate",
                    body=json.dumps({"challengeNonce": challenge, "lang": "en"}),
                    headers={"Origin": ORIGIN, "Content-Type": "application/json"},
                )
                response = conn.getresponse()
                result["status"], result["body"] = response.status, json.loads(response.read())
            finally:
                conn.close()

        thread = threading.Thread(target=login)
        started = time.monotonic()
        thread.start()
        _wait_for_dialog(pinentry)
        time.sleep(max(0.0, 2.0 - (time.monotonic() - started)))
        card = start_card(card_folder, "ec-p256")  # two seconds after the login started
        thread.join(timeout=90)
        assert not thread.is_alive()
        assert result["status"] == 200, result
        verify_token(result["body"], ORIGIN, challenge)
        _check_the_notice_then_the_pin(pinentry)
    finally:
        served.stop()
        if card is not None:
            stop_card(card)


def test_authenticate_waits_for_the_card_then_signs(
    pcscd: Pcscd, card_folder: Path, pinentry: ScriptedPinentry, origin_store: OriginStore
) -> None:
    _reader_is_empty(pcscd)
    origin_store.allow(ORIGIN)
    pinentry.respond("WAIT", "123456")
    challenge = nonce()
    proc = subprocess.Popen(
        [*CLI, "authenticate", "--origin", ORIGIN, "--nonce", challenge, "--reader", READER_0],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**_only_the_virtual_card(), **pinentry.env()},
    )
    card: VirtualPivCard | None = None
    try:
        started = time.monotonic()
        _wait_for_dialog(pinentry)
        time.sleep(max(0.0, 2.0 - (time.monotonic() - started)))
        card = start_card(card_folder, "ec-p256")
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        verify_token(json.loads(out), ORIGIN, challenge)
        _check_the_notice_then_the_pin(pinentry)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        if card is not None:
            stop_card(card)


def test_no_reader_and_no_pcscd_have_their_own_texts(
    pcscd: Pcscd, pinentry: ScriptedPinentry, origin_store: OriginStore
) -> None:
    origin_store.allow(ORIGIN)
    env = {**_only_the_virtual_card(), **pinentry.env()}
    args = [*CLI, "authenticate", "--origin", ORIGIN, "--json"]
    pinentry.respond("CANCEL")
    result = subprocess.run(
        [*args, "--nonce", nonce(), "--reader", "No Such Reader 00 00"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert json.loads(result.stdout)["error"]["code"] == "USER_CANCELLED", result.stderr
    (desc,) = pinentry.texts("SETDESC")
    assert "No card reader is connected" in desc
    if not pcscd.owned:
        pytest.skip("pcscd belongs to someone else: this test does not stop it")
    pcscd.stop()
    try:
        pinentry.respond("CANCEL")
        result = subprocess.run(
            [*args, "--nonce", nonce()], capture_output=True, text=True, env=env, timeout=60, check=False
        )
        assert json.loads(result.stdout)["error"]["code"] == "USER_CANCELLED", result.stderr
        (desc,) = pinentry.texts("SETDESC")
        assert "(pcscd) is not running" in desc
    finally:
        pcscd.start()


def test_two_cards_the_person_chooses_and_the_chosen_card_signs(
    pcscd: Pcscd, card_folder: Path, pinentry: ScriptedPinentry, origin_store: OriginStore
) -> None:
    origin_store.allow(ORIGIN)
    first = start_card(card_folder, "ec-p256", reader=0)
    second = start_card(card_folder, "ec-p384", reader=1)
    try:
        pinentry.respond("NOTOK", "OK", "123456")  # Next, then Use this one, then the PIN
        challenge = nonce()
        result = subprocess.run(
            [*CLI, "authenticate", "--origin", ORIGIN, "--nonce", challenge],
            capture_output=True,
            text=True,
            env={**_only_the_virtual_card(), **pinentry.env()},
            timeout=90,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        token = json.loads(result.stdout)
        verify_token(token, ORIGIN, challenge)  # the certificate in the token made the signature
        offered, chosen, pin = pinentry.dialogs()
        cards = []
        for dialog in (offered, chosen):
            desc = next(arg for verb, arg in dialog["commands"] if verb == "SETDESC")
            assert "Certificate " in desc and " of 2:" in desc and "Holder: " in desc and "Issuer: " in desc
            cards.append(desc.split("Card: ", 1)[1].splitlines()[0])
        assert cards[0] != cards[1]
        assert any(verb == "GETPIN" for verb, _ in pin["commands"])
        # The card shown second signed: its reader, and its key (P-384 in reader 1, P-256 in 0).
        expected = "ES384" if cards[1].endswith("(Virtual PCD 00 01)") else "ES256"
        assert token["algorithm"] == expected
    finally:
        stop_card(second)
        stop_card(first)
