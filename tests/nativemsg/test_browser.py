"""The extension in Debian's Chromium: the demo portal logs in through it, with no HTTP API.

Chromium runs with a profile folder of its own; the host manifest goes into
``PROFILE/NativeMessagingHosts/`` (where Chromium reads it for that profile), naming the
launcher that ``install-native-host`` writes. The extension is loaded unpacked; its fixed
``key`` gives it the id that the manifest allows. The browser passes its environment to the
host, so the host finds the test's config (allowing the portal's origin), the SoftHSM2
card and the scripted pinentry. No ``cardbridge serve`` runs: the portal's JS client uses
the extension only.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cardbridge.nativemsg import EXTENSION_CHROME_ID, HOST_NAME, install
from tests.conftest import ScriptedPinentry
from tests.demo.demo_portal import CHROMIUM, Portal, free_port
from tests.demo.demo_portal import CHROMIUM_ARGS as BASE_CHROMIUM_ARGS
from tests.nativemsg.conftest import Card, write_config

EXTENSION = Path(__file__).resolve().parents[2] / "native-host" / "extension"
CHROMIUM_ARGS = [
    *BASE_CHROMIUM_ARGS,
    f"--disable-extensions-except={EXTENSION}",
    f"--load-extension={EXTENSION}",
]
TIMEOUT_MS = 30_000

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.softhsm,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="Debian's chromium is not installed"),
]


def closed_port() -> int:
    """A loopback port where nothing listens: the HTTP API is off."""
    return free_port()


@pytest.fixture
async def portal(card: Card) -> AsyncIterator[Portal]:
    async with Portal(Path(card.ca_certificate).read_bytes(), closed_port(), "extension") as running:
        yield running


@pytest.fixture
async def browser(
    tmp_path: Path, portal: Portal, card: Card, pinentry: ScriptedPinentry
) -> AsyncIterator[tuple[Any, str]]:
    """Chromium with the extension and the host installed in its profile; yields the
    context and the extension's id."""
    profile = tmp_path / "profile"
    hosts = profile / "NativeMessagingHosts"
    hosts.mkdir(parents=True)
    launcher = tmp_path / "bin" / "cardbridge-native-host"
    install.install("chromium", home=tmp_path / "home", launcher=launcher)  # writes the launcher
    (hosts / f"{HOST_NAME}.json").write_text(json.dumps(install.manifest("chromium", launcher)), encoding="utf-8")
    config_dir = tmp_path / "config"
    config_dir.mkdir(mode=0o700)
    config = write_config(config_dir, allowed_origins=[portal.origin], allow_http_localhost=True)
    env = {
        **os.environ,
        **card.env(),
        **pinentry.env(),
        "CARDBRIDGE_CONFIG": str(config),
        "CARDBRIDGE_DATA_DIR": str(tmp_path / "data"),
        "CARDBRIDGE_LOG_DIR": str(tmp_path / "log"),
        "HOME": str(tmp_path / "home"),
    }
    async with playwright_api.async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, env=env
        )
        try:
            context.set_default_timeout(TIMEOUT_MS)
            worker = context.service_workers[0] if context.service_workers else None
            if worker is None:
                worker = await context.wait_for_event("serviceworker")
            extension_id = worker.url.split("/")[2]
            yield context, extension_id
        finally:
            await context.close()


async def test_the_extension_has_its_fixed_id(browser: tuple[Any, str]) -> None:
    _, extension_id = browser
    assert extension_id == EXTENSION_CHROME_ID


async def test_login_through_the_extension_without_the_http_api(
    browser: tuple[Any, str], portal: Portal, pinentry: ScriptedPinentry, card: Card
) -> None:
    context, _ = browser
    pinentry.respond(card.pin)
    page = await context.new_page()
    await page.goto(portal.origin + "/?lang=en")
    await page.wait_for_selector("#login[data-ready=true]")
    await page.click("#login-button")
    await page.wait_for_url(f"{portal.origin}/citizen?lang=en")
    assert await page.locator("#citizen-name").inner_text() == card.holder
    assert len(portal.state.logins) == 1
    # The one dialog named the portal's origin, which the extension took from the tab.
    (description,) = pinentry.texts("SETDESC")
    assert portal.origin in description


PAGE_CALL = """async ([command, args]) => {
    const answer = new Promise((resolve) => {
        window.addEventListener("message", (event) => {
            if (event.source === window && event.data && event.data.cardbridge === "response"
                && event.data.id === "t1") resolve(event.data);
        });
    });
    window.postMessage({cardbridge: "request", id: "t1", command, arguments: args}, window.location.origin);
    return await answer;
}"""


async def _page_call(context: Any, url: str, command: str, args: dict[str, Any]) -> dict[str, Any]:
    page = await context.new_page()
    await page.goto(url)
    answer: dict[str, Any] = await page.evaluate(PAGE_CALL, [command, args])
    return answer


async def test_a_page_cannot_choose_the_origin(
    browser: tuple[Any, str], portal: Portal, pinentry: ScriptedPinentry
) -> None:
    context, _ = browser
    answer = await _page_call(
        context, portal.origin + "/", "authenticate", {"challengeNonce": "A" * 44, "origin": "https://bank.example"}
    )
    assert answer["error"]["code"] == "INVALID_ARGUMENT"
    assert pinentry.dialogs() == []


async def test_status_and_ping(browser: tuple[Any, str], portal: Portal) -> None:
    context, _ = browser
    answer = await _page_call(context, portal.origin + "/", "status", {})
    assert answer["result"]["version"] and answer["result"]["nativeHost"] == HOST_NAME
    page = context.pages[-1]
    pong = await page.evaluate(
        """() => new Promise((resolve) => {
            window.addEventListener("message", (event) => {
                if (event.source === window && event.data && event.data.cardbridge === "pong") resolve(event.data);
            });
            window.postMessage({cardbridge: "ping"}, window.location.origin);
        })"""
    )
    assert pong["version"] == answer["result"]["extensionVersion"]


async def test_an_origin_that_is_not_allowed_gets_no_dialog(
    browser: tuple[Any, str], card: Card, pinentry: ScriptedPinentry, portal: Portal, tmp_path: Path
) -> None:
    context, _ = browser
    # Only listed sites (the host reads the config for each request).
    write_config(
        tmp_path / "config", allowed_origins=[portal.origin], allow_http_localhost=True, origin_policy="allow-list"
    )
    pinentry.respond(card.pin)
    async with Portal(Path(card.ca_certificate).read_bytes(), closed_port(), "extension") as other:
        answer = await _page_call(context, other.origin + "/", "authenticate", {"challengeNonce": "A" * 44})
    assert answer["error"]["code"] == "ORIGIN_NOT_ALLOWED"
    assert pinentry.dialogs() == []


async def test_closing_the_tab_cancels_the_dialog(
    browser: tuple[Any, str], portal: Portal, pinentry: ScriptedPinentry
) -> None:
    context, _ = browser
    pinentry.respond("HANG")  # the person has not answered yet
    page = await context.new_page()
    await page.goto(portal.origin + "/")
    await page.evaluate(
        """() => window.postMessage({cardbridge: "request", id: "t2", command: "authenticate",
                                     arguments: {challengeNonce: "B".repeat(44)}}, window.location.origin)"""
    )
    deadline = time.monotonic() + 20
    while not pinentry.dialogs() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    (dialog,) = pinentry.dialogs()
    await page.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(dialog["pid"], 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the PIN dialog stayed open after the tab closed")
