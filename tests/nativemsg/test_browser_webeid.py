"""cardbridge standing in for the Web eID app, in Debian's Chromium: a test extension that
connects to ``eu.webeid`` (a copy of ours with that host name and an id of its own) logs in
to the demo portal. The host manifest is the one ``install-native-host --web-eid`` writes,
allowed for the test extension through ``allowed_extensions`` in the test's config; it is
copied into the test profile's ``NativeMessagingHosts``. The portal is not on any list:
under the default ``origin_policy = "ask"`` the first login asks the person about it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cardbridge.nativemsg import WEBEID_HOST_NAME
from cardbridge.origins import OriginStore
from tests.conftest import ScriptedPinentry
from tests.demo.demo_portal import CHROMIUM, Portal
from tests.demo.demo_portal import CHROMIUM_ARGS as BASE_CHROMIUM_ARGS
from tests.nativemsg.conftest import Card, write_config
from tests.nativemsg.test_browser import _page_call, closed_port

OUR_EXTENSION = Path(__file__).resolve().parents[2] / "native-host" / "extension"
TIMEOUT_MS = 30_000

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.softhsm,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="Debian's chromium is not installed"),
]


def test_extension(folder: Path) -> str:
    """Copy our extension into ``folder``, make it connect to ``eu.webeid`` and give it a key
    of its own; returns its Chrome extension id (from the key, as Chrome computes it)."""
    shutil.copytree(OUR_EXTENSION, folder)
    background = folder / "background.js"
    source = background.read_text(encoding="utf-8")
    assert 'const HOST = "no.cardbridge.host";' in source
    background.write_text(source.replace('"no.cardbridge.host"', f'"{WEBEID_HOST_NAME}"'), encoding="utf-8")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["key"] = base64.b64encode(der).decode()
    manifest["name"] = "eu.webeid test extension"
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return "".join("abcdefghijklmnop"[int(c, 16)] for c in hashlib.sha256(der).hexdigest()[:32])


test_extension.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture
async def portal(card: Card) -> AsyncIterator[Portal]:
    async with Portal(Path(card.ca_certificate).read_bytes(), closed_port(), "extension") as running:
        yield running


@pytest.fixture
def host_env(tmp_path: Path, card: Card, pinentry: ScriptedPinentry) -> dict[str, str]:
    """What the browser passes to the host (and what the CLI is run with)."""
    return {
        **os.environ,
        **card.env(),
        **pinentry.env(),
        "CARDBRIDGE_CONFIG": str(tmp_path / "config" / "config.toml"),
        "CARDBRIDGE_DATA_DIR": str(tmp_path / "data"),
        "CARDBRIDGE_LOG_DIR": str(tmp_path / "log"),
        "HOME": str(tmp_path / "home"),
    }


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cardbridge", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.fixture
def extension_id(tmp_path: Path) -> str:
    return test_extension(tmp_path / "webeid-test-extension")


@pytest.fixture
async def browser(tmp_path: Path, host_env: dict[str, str], extension_id: str) -> AsyncIterator[Any]:
    extension = tmp_path / "webeid-test-extension"
    (tmp_path / "config").mkdir(mode=0o700)
    write_config(
        tmp_path / "config", allowed_extensions=[f"chrome-extension://{extension_id}/"], allow_http_localhost=True
    )
    installed = cli(host_env, "install-native-host", "--web-eid", "--browser", "chromium", "--json")
    assert installed.returncode == 0, installed.stderr
    written = tmp_path / "home" / ".config" / "chromium" / "NativeMessagingHosts" / f"{WEBEID_HOST_NAME}.json"
    manifest = json.loads(written.read_text(encoding="utf-8"))
    assert f"chrome-extension://{extension_id}/" in manifest["allowed_origins"]
    profile = tmp_path / "profile"
    (profile / "NativeMessagingHosts").mkdir(parents=True)
    shutil.copy(written, profile / "NativeMessagingHosts" / written.name)
    args = [*BASE_CHROMIUM_ARGS, f"--disable-extensions-except={extension}", f"--load-extension={extension}"]
    async with playwright_api.async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=args, env=host_env
        )
        try:
            context.set_default_timeout(TIMEOUT_MS)
            worker = (
                context.service_workers[0] if context.service_workers else await context.wait_for_event("serviceworker")
            )
            assert worker.url.split("/")[2] == extension_id
            yield context
        finally:
            await context.close()


async def _log_in(context: Any, portal: Portal) -> str:
    page = await context.new_page()
    try:
        await page.goto(portal.origin + "/?lang=en")
        await page.wait_for_selector("#login[data-ready=true]")
        await page.click("#login-button")
        await page.wait_for_url(f"{portal.origin}/citizen?lang=en")
        name: str = await page.locator("#citizen-name").inner_text()
        return name
    finally:
        await page.close()


def _question(dialog: dict[str, Any]) -> str | None:
    """The text of a dialog when it asked about a new website."""
    commands = dialog["commands"]
    if ["CONFIRM", ""] not in commands:
        return None
    desc: str = next(arg for verb, arg in commands if verb == "SETDESC")
    return desc if "wants to use your ID card" in desc else None


async def test_login_through_eu_webeid_asks_about_the_portal_once(
    browser: Any,
    portal: Portal,
    pinentry: ScriptedPinentry,
    card: Card,
    origin_store: OriginStore,
    host_env: dict[str, str],
) -> None:
    # The first login: the question (naming the portal first), then the PIN.
    pinentry.respond("OK", card.pin)
    assert await _log_in(browser, portal) == card.holder
    question, pin = pinentry.dialogs()
    text = _question(question)
    assert text is not None and text.splitlines()[0] == portal.origin
    assert _question(pin) is None and portal.origin in next(a for v, a in pin["commands"] if v == "SETDESC")
    assert origin_store.is_allowed(portal.origin)

    # The second: the PIN only.
    pinentry.respond(card.pin)
    assert await _log_in(browser, portal) == card.holder
    (only,) = pinentry.dialogs()
    assert _question(only) is None

    # `cardbridge origins forget` brings the question back.
    forgot = cli(host_env, "origins", "forget", portal.origin)
    assert forgot.returncode == 0, forgot.stderr
    pinentry.respond("OK", card.pin)
    assert await _log_in(browser, portal) == card.holder
    assert _question(pinentry.dialogs()[0]) is not None
    assert len(portal.state.logins) == 3


async def test_a_denied_portal_is_never_asked(
    browser: Any, portal: Portal, pinentry: ScriptedPinentry, card: Card, tmp_path: Path, extension_id: str
) -> None:
    write_config(
        tmp_path / "config",
        allowed_extensions=[f"chrome-extension://{extension_id}/"],
        allow_http_localhost=True,
        denied_origins=[portal.origin],
    )
    pinentry.respond("OK", card.pin)
    answer = await _page_call(browser, portal.origin + "/", "authenticate", {"challengeNonce": "A" * 44})
    assert answer["error"]["code"] == "ORIGIN_NOT_ALLOWED"
    assert pinentry.dialogs() == []
