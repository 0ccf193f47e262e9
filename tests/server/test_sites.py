"""The HTTP API under origin_policy = "ask": a new https site passes the Origin guard to the
question, learns nothing about readers or cards until the person allows it, and a refused
one is turned away at the guard for a while. Every other guard stays as it is."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from cardbridge import __version__
from cardbridge.config import Config
from cardbridge.origins import OriginStore, SitePolicy
from cardbridge.server import ServerSettings, create_app
from cardbridge.server.settings import SERVICE
from cardbridge.service import CardService, open_backends
from tests.conftest import ANSWERS_SETTLE, FileAccess, ScriptedPinentry
from tests.server.conftest import ORIGIN, conforms, free_port, nonce
from tests.softhsm import SoftHsm
from tests.verify import verify_token

pytestmark = pytest.mark.softhsm
NEW = "https://new.example.no"
DENIED = "https://phish.example"


@pytest.fixture
async def client(
    aiohttp_client: Any, softhsm: SoftHsm, origin_store: OriginStore, pinentry: ScriptedPinentry
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    config = Config(allowed_origins=(ORIGIN,), denied_origins=(DENIED,))
    service = CardService(open_backends([softhsm.module]), user_timeout=20, sites=SitePolicy(config, origin_store))
    port = free_port()
    settings = ServerSettings(
        port=port,
        allowed_origins=frozenset({ORIGIN}),
        token_label="p256",
        pinentry_program=ScriptedPinentry.program,
        heartbeat=0.2,
    )
    yield await aiohttp_client(create_app(service, settings), server_kwargs={"port": port})
    await service.aclose()


async def body_of(response: Any, path: str, method: str) -> dict[str, Any]:
    body = await response.json(content_type=None)
    conforms(path, method, response.status, response.headers["Content-Type"], body)
    return dict(body)


async def test_status_for_a_new_site_says_only_the_version(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v1/status", headers={"Origin": NEW})
    assert response.status == 200
    assert await body_of(response, "/v1/status", "GET") == {"version": __version__}
    assert response.headers["Access-Control-Allow-Origin"] == NEW  # the page may read that much
    full = await body_of(await client.get("/v1/status", headers={"Origin": ORIGIN}), "/v1/status", "GET")
    assert full["tokens"] and "readers" in full


async def test_preflight_and_guards_for_a_new_site(client: TestClient[Any, Any], pinentry: ScriptedPinentry) -> None:
    preflight = await client.options(
        "/v1/authenticate", headers={"Origin": NEW, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status == 204 and preflight.headers["Access-Control-Allow-Origin"] == NEW
    # The other guards are as they were: a text body, a large body.
    response = await client.post("/v1/authenticate", data=b"{}", headers={"Origin": NEW, "Content-Type": "text/plain"})
    assert (await body_of(response, "/v1/authenticate", "POST"))["code"] == "UNSUPPORTED_MEDIA_TYPE"
    big = json.dumps({"challengeNonce": "x" * 20000}).encode()
    response = await client.post(
        "/v1/authenticate", data=big, headers={"Origin": NEW, "Content-Type": "application/json"}
    )
    assert (await body_of(response, "/v1/authenticate", "POST"))["code"] == "REQUEST_TOO_LARGE"
    assert pinentry.dialogs() == []


@pytest.mark.parametrize("origin", [DENIED, "http://new.example.no", "http://localhost:8080", "null"])
async def test_denied_and_non_https_sites_are_turned_away_at_the_guard(
    client: TestClient[Any, Any], pinentry: ScriptedPinentry, origin: str
) -> None:
    for path in ("/v1/status", "/v1/events"):
        response = await client.get(path, headers={"Origin": origin})
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers
    response = await client.post("/v1/authenticate", json={"challengeNonce": nonce()}, headers={"Origin": origin})
    assert (await body_of(response, "/v1/authenticate", "POST"))["code"] == "ORIGIN_NOT_ALLOWED"
    assert pinentry.dialogs() == []


async def test_a_new_site_is_asked_about_then_served(
    client: TestClient[Any, Any], pinentry: ScriptedPinentry, origin_store: OriginStore
) -> None:
    pinentry.respond("OK", "1234")
    challenge = nonce()
    response = await client.post(
        "/v1/authenticate", json={"challengeNonce": challenge, "lang": "en"}, headers={"Origin": NEW}
    )
    token = await body_of(response, "/v1/authenticate", "POST")
    assert response.status == 200, token
    verify_token(token, NEW, challenge)
    question, _pin = pinentry.dialogs()
    desc = next(arg for verb, arg in question["commands"] if verb == "SETDESC")
    assert desc.startswith(f"{NEW}\n\nwants to use your ID card.")
    assert origin_store.is_allowed(NEW)
    status = await body_of(await client.get("/v1/status", headers={"Origin": NEW}), "/v1/status", "GET")
    assert status["tokens"]  # allowed now: the whole status


async def test_a_refused_site_is_turned_away_for_a_while(
    client: TestClient[Any, Any], pinentry: ScriptedPinentry
) -> None:
    pinentry.respond("CANCEL", "OK", "1234")
    response = await client.post("/v1/authenticate", json={"challengeNonce": nonce()}, headers={"Origin": NEW})
    assert (await body_of(response, "/v1/authenticate", "POST"))["code"] == "USER_CANCELLED"
    assert response.headers["Access-Control-Allow-Origin"] == NEW
    response = await client.post("/v1/authenticate", json={"challengeNonce": nonce()}, headers={"Origin": NEW})
    assert response.status == 403 and "Access-Control-Allow-Origin" not in response.headers
    assert (await body_of(response, "/v1/authenticate", "POST"))["code"] == "ORIGIN_NOT_ALLOWED"
    assert len(pinentry.dialogs()) == 1


async def test_events_for_a_new_site_carry_no_card_data(client: TestClient[Any, Any]) -> None:
    service = client.app[SERVICE]
    for origin, sees_cards in ((NEW, False), (ORIGIN, True)):
        async with client.get("/v1/events", headers={"Origin": origin}) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == origin
            first = await _next_event(response)
            assert first[0] == "status"
            assert ("tokens" in first[1]) is sees_cards
            if not sees_cards:
                assert first[1] == {"version": __version__}
            await asyncio.sleep(0.1)
            service.events.publish({"type": "card-inserted", "reader": "Virtual PCD 00 00"})
            try:
                event = await asyncio.wait_for(_next_event(response), 1.5)
            except TimeoutError:
                event = None
            assert (event is not None and event[0] == "card-inserted") is sees_cards


async def _next_event(response: Any) -> tuple[str, dict[str, Any]]:
    name = ""
    while True:
        line = (await response.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name:
            return name, json.loads(line[6:])


async def test_a_denied_site_is_refused_at_the_guard_even_when_a_list_also_allows_it(
    aiohttp_client: Any, softhsm: SoftHsm, origin_store: OriginStore, pinentry: ScriptedPinentry
) -> None:
    # The system file denies it, the user's file (or --allow-origin) allows it: deny wins.
    config = Config(allowed_origins=(ORIGIN, DENIED), denied_origins=(DENIED,))
    service = CardService(open_backends([softhsm.module]), user_timeout=20, sites=SitePolicy(config, origin_store))
    port = free_port()
    settings = ServerSettings(
        port=port,
        allowed_origins=frozenset({ORIGIN, DENIED}),
        token_label="p256",
        pinentry_program=ScriptedPinentry.program,
    )
    client = await aiohttp_client(create_app(service, settings), server_kwargs={"port": port})
    try:
        for method, path in (("GET", "/v1/status"), ("GET", "/v1/events"), ("POST", "/v1/authenticate")):
            response = await client.request(
                method, path, json={"challengeNonce": nonce()} if method == "POST" else None, headers={"Origin": DENIED}
            )
            body = await response.json(content_type=None)
            assert response.status == 403 and body["code"] == "ORIGIN_NOT_ALLOWED", (path, body)
            assert "Access-Control-Allow-Origin" not in response.headers
        assert (await client.get("/v1/status", headers={"Origin": ORIGIN})).status == 200
        assert pinentry.dialogs() == []
    finally:
        await service.aclose()


KNOWN = "https://known.example.no"  # a site the person allowed (in origins.json)


async def _settle() -> None:
    """Let origins.json, just written, age past the time after which a reading is kept."""
    await asyncio.sleep(ANSWERS_SETTLE)


def _requests(client: TestClient[Any, Any]) -> dict[str, Callable[[], Awaitable[Any]]]:
    """Requests of every kind from a new site and from one the person allowed (two logins:
    the pinentry must answer two PINs)."""

    async def events() -> None:
        async with client.get("/v1/events", headers={"Origin": NEW}) as response:
            assert response.status == 200 and (await _next_event(response))[0] == "status"

    async def authenticate(**kwargs: Any) -> None:
        body = {"challengeNonce": nonce()}
        response = await client.post("/v1/authenticate", json=body, headers={"Origin": KNOWN}, **kwargs)
        assert response.status == 200, await response.text()

    return {
        "status, a new site": lambda: client.get("/v1/status", headers={"Origin": NEW}),
        "status, an allowed site": lambda: client.get("/v1/status", headers={"Origin": KNOWN}),
        "preflight": lambda: client.options(
            "/v1/authenticate", headers={"Origin": NEW, "Access-Control-Request-Method": "POST"}
        ),
        "events": events,
        "authenticate": authenticate,
        "authenticate, Expect: 100-continue": lambda: authenticate(expect100=True),
    }


async def test_one_reading_of_the_answers_per_request(
    client: TestClient[Any, Any], origin_store: OriginStore, pinentry: ScriptedPinentry, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin_store.allow(KNOWN)
    await _settle()
    access = FileAccess(origin_store.path).install(monkeypatch)
    pinentry.respond("1234", "1234")
    opens: dict[str, int] = {}
    for name, request in _requests(client).items():
        access.clear()
        await request()
        opens[name] = len(access.opens)
    # The first request reads the file (once) and keeps the reading; the others find it
    # unchanged (a stat, no reading).
    assert list(opens.values()) == [1, 0, 0, 0, 0, 0], opens


async def test_the_answers_are_read_off_the_event_loop(
    client: TestClient[Any, Any], origin_store: OriginStore, pinentry: ScriptedPinentry, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin_store.allow(KNOWN)
    access = FileAccess(origin_store.path).install(monkeypatch)
    loop_thread = threading.get_ident()
    pinentry.respond("1234", "1234")
    for name, request in _requests(client).items():
        access.clear()
        await request()
        assert loop_thread not in access.threads(), name  # never on the event loop's thread
        assert access.stats or access.opens, name  # (the file was looked at)


async def test_an_answer_given_in_another_process_counts_from_the_next_request(
    client: TestClient[Any, Any], origin_store: OriginStore, tmp_path: Path
) -> None:
    env = {**os.environ, "CARDBRIDGE_CONFIG": str(tmp_path / "none.toml")}  # and this test's CARDBRIDGE_STATE_DIR
    origin_store.allow("https://other.example")
    for change, sees_cards in (("allow", True), ("forget", False)):
        await _settle()
        before = await body_of(await client.get("/v1/status", headers={"Origin": NEW}), "/v1/status", "GET")
        assert ("tokens" in before) is not sees_cards  # as before the change (a reading kept now)
        command = [sys.executable, "-m", "cardbridge", "--lang", "en", "origins", change, NEW]
        await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, timeout=60, check=True)
        after = await body_of(await client.get("/v1/status", headers={"Origin": NEW}), "/v1/status", "GET")
        assert ("tokens" in after) is sees_cards, change
