"""Card events reach the HTTP event stream of a real ``cardbridge serve`` (pcscd, vpcd and
the virtual PIV card)."""

from __future__ import annotations

import http.client
import json
import os
import time
from pathlib import Path

import pytest

from cardbridge.emulator.virtual_card import VirtualPivCard
from tests.conftest import ScriptedPinentry
from tests.pcsc.conftest import Pcscd, start_kind, stop_card
from tests.pcsc.national import ORIGIN, http_login
from tests.server.conftest import start_serve

pytestmark = pytest.mark.pcsc
OPENSC = Path("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so")


def next_event(response: http.client.HTTPResponse) -> tuple[str, dict[str, object]]:
    """The next SSE event (comments and keep-alives skipped)."""
    kind, data = "", ""
    while True:
        line = response.readline().decode()
        if not line:
            raise AssertionError("the event stream ended")
        line = line.rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and kind:
            return kind, json.loads(data)


def wait_for(response: http.client.HTTPResponse, kind: str, reader: str) -> float:
    """Read events until ``kind`` for ``reader``; returns when it came (monotonic)."""
    while True:
        got, event = next_event(response)
        if got == kind and event.get("reader") == reader:
            return time.monotonic()


def wait_until_the_bridge_sees(port: int, reader: str, timeout: float = 15.0) -> None:
    """Poll /v1/status until the bridge's card monitor has seen the card in ``reader`` (the
    monitor starts beside the server; events are only promised once it watches)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/v1/status", headers={"Origin": ORIGIN})
            status = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        if any(r["name"] == reader and r["cardPresent"] for r in status.get("readers") or []):
            return
        time.sleep(0.1)
    raise AssertionError(f"the bridge did not see the card in {reader}")


def test_insertion_and_removal_reach_the_event_stream(virtual_card: VirtualPivCard) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CARDBRIDGE_PKCS11_MODULE"}
    served = start_serve("--allow-origin", ORIGIN, "--module", "/usr/lib/softhsm/libsofthsm2.so", env=env)
    try:
        wait_until_the_bridge_sees(served.port, virtual_card.reader_name)
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=20)
        conn.request("GET", "/v1/events", headers={"Origin": ORIGIN})
        response = conn.getresponse()
        assert response.status == 200
        kind, status = next_event(response)
        assert kind == "status"
        readers = {r["name"]: r for r in status["readers"]}  # type: ignore[union-attr]
        assert readers[virtual_card.reader_name]["cardPresent"] is True
        latencies = {}
        started = time.monotonic()
        virtual_card.remove()
        latencies["removed"] = wait_for(response, "card-removed", virtual_card.reader_name) - started
        started = time.monotonic()
        virtual_card.insert()
        latencies["inserted"] = wait_for(response, "card-inserted", virtual_card.reader_name) - started
        print(f"event latency over HTTP: {latencies}")  # reported, not asserted (tests never assert on time)
        conn.close()
    finally:
        served.stop()


def _status(port: int) -> dict[str, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", "/v1/status", headers={"Origin": ORIGIN})
        return dict(json.loads(conn.getresponse().read()))
    finally:
        conn.close()


@pytest.mark.skipif(not OPENSC.exists(), reason="opensc-pkcs11 is not installed")
def test_a_card_the_direct_driver_and_opensc_both_reach_is_listed_once(
    pcscd: Pcscd, card_folder: Path, tmp_path: Path
) -> None:
    """The emulated Belgian card with OpenSC's module loaded (p11-kit registers it): the
    direct driver reads the card and OpenSC's belpic driver gives it a PKCS#11 slot in the
    same reader. /v1/status and the event stream's first status list the card once, as the
    direct driver's, as logins see it."""
    from cardbridge.pkcs11.discovery import p11kit_modules

    assert any("opensc" in m for m in p11kit_modules()), "OpenSC's module is registered with p11-kit"
    env = {k: v for k, v in os.environ.items() if k not in ("CARDBRIDGE_PKCS11_MODULE", "SOFTHSM2_CONF")}
    env.update({"CARDBRIDGE_DATA_DIR": str(tmp_path / "data"), "CARDBRIDGE_CONFIG": str(tmp_path / "none.toml")})
    card = start_kind(card_folder, "belpic")
    served = start_serve("--allow-origin", ORIGIN, env=env)
    try:
        wait_until_the_bridge_sees(served.port, card.reader_name)
        tokens = _status(served.port)["tokens"]
        assert isinstance(tokens, list)
        assert [t["backend"] for t in tokens if t.get("reader") == card.reader_name] == ["pcsc"], tokens
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=20)
        try:
            conn.request("GET", "/v1/events", headers={"Origin": ORIGIN})
            kind, status = next_event(conn.getresponse())
        finally:
            conn.close()
        assert kind == "status"
        listed = [t for t in status["tokens"] if t.get("reader") == card.reader_name]  # type: ignore[union-attr]
        assert [t["backend"] for t in listed] == ["pcsc"], status
    finally:
        served.stop()
        stop_card(card)


def test_card_pulled_mid_login_then_the_running_bridge_logs_in_after_reinsertion(
    virtual_card: VirtualPivCard, pinentry: ScriptedPinentry
) -> None:
    import base64
    import secrets

    from cardbridge.iso7816 import INS_GENERAL_AUTHENTICATE
    from tests.pcsc.conftest import wait_for_card
    from tests.verify import verify_token

    env = {k: v for k, v in os.environ.items() if k not in ("CARDBRIDGE_PKCS11_MODULE", "SOFTHSM2_CONF")}
    # The built-in driver and the modules p11-kit knows (OpenSC sees the same card: it counts once).
    served = start_serve("--allow-origin", ORIGIN, env={**env, **pinentry.env()})
    try:
        wait_until_the_bridge_sees(served.port, virtual_card.reader_name)
        pinentry.respond("123456", "123456")
        virtual_card.pull_when(INS_GENERAL_AUTHENTICATE)  # yanked while it signs, after the PIN
        status, body = http_login(served.port, base64.b64encode(secrets.token_bytes(32)).decode())
        assert body["code"] == "CARD_REMOVED", body
        assert "signature" not in body
        wait_for_card(virtual_card.reader_name, False)
        assert virtual_card.insert(wait=10)
        wait_for_card(virtual_card.reader_name, True)
        challenge = base64.b64encode(secrets.token_bytes(32)).decode()
        status, token = http_login(served.port, challenge)
        assert status == 200, token
        verify_token(token, ORIGIN, challenge)
        assert len(pinentry.dialogs()) == 2
    finally:
        served.stop()


def _status_within(port: int, seconds: float) -> dict[str, object]:
    """GET /v1/status; the socket gives up (and the test fails) after ``seconds``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds)
    try:
        conn.request("GET", "/v1/status", headers={"Origin": ORIGIN})
        response = conn.getresponse()
        assert response.status == 200
        body: dict[str, object] = json.loads(response.read())
        return body
    finally:
        conn.close()


def test_status_answers_while_pcscd_is_stopped_under_a_watching_bridge(
    pcscd: Pcscd, virtual_card: VirtualPivCard
) -> None:
    if not pcscd.owned:
        pytest.skip("pcscd was started by someone else; the tests do not stop it")
    env = {k: v for k, v in os.environ.items() if k != "CARDBRIDGE_PKCS11_MODULE"}
    served = start_serve("--allow-origin", ORIGIN, "--module", "/usr/lib/softhsm/libsofthsm2.so", env=env)
    try:
        wait_until_the_bridge_sees(served.port, virtual_card.reader_name)
        pcscd.stop()  # every reader goes away under the monitor
        for _ in range(10):
            _status_within(served.port, 1.0)
            time.sleep(0.2)
        pcscd.start()
        wait_until_the_bridge_sees(served.port, virtual_card.reader_name)
        _status_within(served.port, 1.0)
    finally:
        served.stop()
