"""The ``cardbridge`` command over PC/SC: real pcscd, the vpcd reader and the virtual PIV card."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys

import pytest

from cardbridge.emulator.virtual_card import VirtualPivCard
from cardbridge.origins import OriginStore
from tests.conftest import ScriptedPinentry
from tests.pcsc.other_program import OtherProgram
from tests.verify import verify_token

pytestmark = pytest.mark.pcsc
ORIGIN = "https://login.example.no"
READER = "Virtual PCD 00 00"
OPENSC = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"


@pytest.fixture(autouse=True)
def _login_page_allowed(origin_store: OriginStore) -> None:
    """The person allowed ORIGIN before (the question about a new site has tests of its own)."""
    origin_store.allow(ORIGIN)


def nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def run(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env or {})}
    # Only the virtual card: not the test session's SoftHSM2 tokens (p11-kit registers SoftHSM2 too).
    environment.pop("CARDBRIDGE_PKCS11_MODULE", None)
    environment.pop("SOFTHSM2_CONF", None)
    return subprocess.run(
        [sys.executable, "-m", "cardbridge", "--lang", "en", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def test_list_shows_both_readers_and_the_card(virtual_card: VirtualPivCard) -> None:
    result = run("list", "--json", "--reader", READER)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    (reader,) = doc["readers"]
    assert reader["name"] == READER
    assert reader["card"]["name"] == "cardbridge virtual PIV card"
    assert reader["card"]["atr"].startswith("3B ")
    (token,) = doc["tokens"]
    assert token["token"]["backend"] == "pcsc"
    assert sorted(c["purpose"] for c in token["certificates"]) == ["authentication", "signing"]
    everything = json.loads(run("list", "--json").stdout)
    names = {r["name"] for r in everything["readers"]}
    assert {"Virtual PCD 00 00", "Virtual PCD 00 01"} <= names


def test_built_in_driver_and_opensc_both_give_tokens_that_verify(virtual_card: VirtualPivCard) -> None:
    for flags in (["--reader", READER], ["--module", OPENSC]):
        challenge = nonce()
        result = run("authenticate", "--origin", ORIGIN, "--nonce", challenge, *flags, "--pin-stdin", stdin="123456\n")
        assert result.returncode == 0, (flags, result.stderr)
        token = json.loads(result.stdout)
        assert token["algorithm"] == "ES256"
        verify_token(token, ORIGIN, challenge)


def test_the_same_card_through_both_backends_is_one_candidate(virtual_card: VirtualPivCard) -> None:
    # No --reader and no --module: the built-in driver and OpenSC (from p11-kit) both see the card.
    challenge = nonce()
    result = run("authenticate", "--origin", ORIGIN, "--nonce", challenge, "--pin-stdin", stdin="123456\n")
    assert result.returncode == 0, result.stderr
    verify_token(json.loads(result.stdout), ORIGIN, challenge)


def test_wrong_pins_count_down_then_block_and_no_dialog_after(
    virtual_card: VirtualPivCard, pinentry: ScriptedPinentry
) -> None:
    args = ["authenticate", "--origin", ORIGIN, "--reader", READER, "--pin-stdin", "--json"]
    seen = []
    for _ in range(3):
        result = run(*args, "--nonce", nonce(), stdin="999999\n")
        seen.append(json.loads(result.stdout)["error"])
    assert [e["code"] for e in seen] == ["PIN_INCORRECT", "PIN_INCORRECT", "PIN_BLOCKED"]
    assert [e.get("retriesLeft") for e in seen[:2]] == [2, 1]
    pinentry.respond("123456")
    result = run(
        "authenticate", "--origin", ORIGIN, "--nonce", nonce(), "--reader", READER, "--json", env=pinentry.env()
    )
    assert json.loads(result.stdout)["error"]["code"] == "PIN_BLOCKED"
    assert pinentry.dialogs() == [], "a blocked PIN is never asked for"


def test_card_held_by_another_program_is_busy_and_no_dialog_opens(
    virtual_card: VirtualPivCard, pinentry: ScriptedPinentry
) -> None:
    with OtherProgram(READER, exclusive=True):
        pinentry.respond("123456")
        result = run(
            "authenticate", "--origin", ORIGIN, "--nonce", nonce(), "--reader", READER, "--json", env=pinentry.env()
        )
        assert result.returncode == 7, result.stderr
        assert json.loads(result.stdout)["error"]["code"] == "CARD_BUSY"
        assert pinentry.dialogs() == []
    # Once the other program lets go, the same command works.
    challenge = nonce()
    result = run("authenticate", "--origin", ORIGIN, "--nonce", challenge, "--reader", READER, env=pinentry.env())
    assert result.returncode == 0, result.stderr
    verify_token(json.loads(result.stdout), ORIGIN, challenge)
