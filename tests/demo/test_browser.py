"""Browser tests: Debian's Chromium (headless, driven by Playwright), the demo portal, and a
real ``cardbridge serve`` process over a SoftHSM2 token, with the scripted pinentry.

Everything listens on loopback. Portals run on ``http://localhost:PORT`` (a secure
context), so the bridge is started with ``--allow-http-localhost``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from tests.conftest import ScriptedPinentry
from tests.demo.demo_portal import CHROMIUM, CHROMIUM_ARGS, Portal, free_port
from tests.softhsm import SoftHsm

TOKEN_LABEL = "p384"
TIMEOUT_MS = 30_000

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="Debian's chromium is not installed"),
]


TEST_PAGES: dict[str, str] = {}  # pages only the tests serve, under /test/NAME (no CSP)


async def serve_test_page(request: web.Request) -> web.Response:
    return web.Response(text=TEST_PAGES[request.match_info["name"]], content_type="text/html")


def http_portal(softhsm: SoftHsm, bridge_port: int) -> Portal:
    """A demo portal whose page uses the localhost API, with the test pages beside it."""
    return Portal(softhsm.ca.cert_path.read_bytes(), bridge_port, "http", (("/test/{name}", serve_test_page),))


@pytest.fixture
def bridge_port() -> int:
    return free_port()


@pytest.fixture
async def portal(softhsm: SoftHsm, bridge_port: int) -> AsyncIterator[Portal]:
    async with Portal(
        softhsm.ca.cert_path.read_bytes(), bridge_port, "http", (("/test/{name}", serve_test_page),)
    ) as running:
        yield running


@pytest.fixture
async def bridge(
    softhsm: SoftHsm, pinentry: ScriptedPinentry, portal: Portal, bridge_port: int, tmp_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``cardbridge serve`` allowing only ``portal``'s origin, on the SoftHSM2 token p384."""
    log = tmp_path / "bridge.log"
    env = {**softhsm.env(), **pinentry.env(), "CARDBRIDGE_CONFIG": str(tmp_path / "no-config.toml")}
    command = [
        sys.executable,
        "-m",
        "cardbridge",
        "serve",
        "--port",
        str(bridge_port),
        "--module",
        softhsm.module,
        "--token",
        TOKEN_LABEL,
        "--allow-origin",
        portal.origin,
        "--allow-http-localhost",
        "--no-pcsc",
    ]
    with open(log, "wb") as out:
        proc = await asyncio.create_subprocess_exec(*command, stdout=out, stderr=out, env=env)
    try:
        await wait_until_answering(proc, bridge_port, log)
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def wait_until_answering(proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while loop.time() < deadline:
            if proc.returncode is not None:
                pytest.fail(f"cardbridge serve stopped: {log.read_text(errors='replace')}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"http://127.0.0.1:{port}/v1/openapi.json") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    pytest.fail(f"cardbridge serve did not answer: {log.read_text(errors='replace')}")


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            env={**os.environ, "HOME": str(tmp_path)},
        )
        try:
            page = await browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            await browser.close()


async def press_login(page: Any, url: str) -> None:
    await page.goto(url)
    await page.wait_for_selector("#login[data-ready=true]")
    await page.click("#login-button")


async def shown_error(page: Any) -> str:
    error = page.locator("#error[data-code]")
    await error.wait_for()
    code: str = await error.get_attribute("data-code")
    return code


# -- the whole login ------------------------------------------------------------------------


async def test_the_demo_login_page_logs_in_and_shows_the_citizen(
    page: Any, portal: Portal, bridge: Any, pinentry: ScriptedPinentry, softhsm: SoftHsm
) -> None:
    pinentry.respond(softhsm.pin)
    await press_login(page, portal.origin + "/")
    await page.wait_for_url(f"{portal.origin}/citizen?lang=nb")
    assert await page.locator("#citizen-name").inner_text() == "Kari Nordmann"
    assert await page.locator("#citizen-id").inner_text() == softhsm.citizen.fodselsnummer
    assert "cardbridge Development ID Card CA" in await page.locator("#citizen-issuer").inner_text()
    # The one PIN dialog named the portal's origin, which came from the browser.
    descriptions = pinentry.texts("SETDESC")
    assert len(descriptions) == 1
    assert portal.origin in descriptions[0]
    assert [c.id_code for c in portal.state.logins] == [softhsm.citizen.id_code]


async def test_the_dialog_speaks_the_pages_language(
    page: Any, portal: Portal, bridge: Any, pinentry: ScriptedPinentry, softhsm: SoftHsm
) -> None:
    pinentry.respond(softhsm.pin)
    await press_login(page, portal.origin + "/?lang=en")
    await page.wait_for_url(f"{portal.origin}/citizen?lang=en")
    assert await page.locator("h1").inner_text() == "You are logged in"
    assert pinentry.texts("SETTITLE") == ["Log in with your ID card"]


async def test_the_same_token_posted_again_is_refused(
    page: Any, portal: Portal, bridge: Any, pinentry: ScriptedPinentry, softhsm: SoftHsm
) -> None:
    pinentry.respond(softhsm.pin)
    async with page.expect_request(lambda r: "/api/login" in r.url) as posted:
        await press_login(page, portal.origin + "/")
    body = (await posted.value).post_data
    await page.wait_for_url(f"{portal.origin}/citizen?lang=nb")
    replay = await page.evaluate(
        """async (body) => {
            const response = await fetch("/api/login", {
                method: "POST", headers: {"Content-Type": "application/json"}, body,
            });
            return {status: response.status, body: await response.json()};
        }""",
        body,
    )
    assert replay["status"] == 401
    assert replay["body"]["code"] == "NONCE_USED"
    assert len(portal.state.logins) == 1


async def test_a_wrong_pin_then_cancel_is_a_cancel_on_the_page(
    page: Any, portal: Portal, bridge: Any, pinentry: ScriptedPinentry
) -> None:
    # A wrong PIN (shown in the second dialog), then Cancel: the page hears that the person cancelled.
    pinentry.respond("9999", "CANCEL")
    await press_login(page, portal.origin + "/")
    assert await shown_error(page) == "USER_CANCELLED"
    assert len(pinentry.dialogs()) == 2
    assert portal.state.logins == []


@pytest.mark.parametrize(
    ("lang", "tries", "line"),
    [
        ("nb", 1, "Feil PIN-kode. Du har 1 forsøk igjen."),
        ("en", 1, "Wrong PIN. You have 1 try left."),
        ("en", 2, "Wrong PIN. You have 2 tries left."),
        ("nn", 3, "Feil PIN-kode. Du har 3 forsøk att."),
    ],
)
async def test_the_login_page_names_the_tries_left_by_the_languages_plural_rule(
    page: Any, portal: Portal, bridge_port: int, lang: str, tries: int, line: str
) -> None:
    # The bridge's answer to a wrong PIN from a card that tells its tries left (SoftHSM2 never
    # does; the virtual cards do), played by the browser itself: the page's own words follow.
    async def wrong_pin(route: Any) -> None:
        headers = {"Access-Control-Allow-Origin": portal.origin, "Access-Control-Allow-Headers": "Content-Type"}
        if route.request.method == "OPTIONS":
            await route.fulfill(status=204, headers={**headers, "Access-Control-Allow-Methods": "GET, POST"})
            return
        problem = {"code": "PIN_INCORRECT", "retriesLeft": tries, "status": 403, "detail": "Wrong PIN."}
        await route.fulfill(status=403, headers=headers, content_type="application/problem+json", json=problem)

    await page.route(f"http://127.0.0.1:{bridge_port}/**", wrong_pin)
    await press_login(page, f"{portal.origin}/?lang={lang}")
    assert await shown_error(page) == "PIN_INCORRECT"
    assert await page.locator("#error").inner_text() == f"{line} (PIN_INCORRECT)"


@pytest.mark.parametrize(
    ("lang", "line"),
    [
        (
            "nb",
            "PIN-koden på ID-kortet ditt er ikke aktivert ennå. "
            "Aktiver den først slik utstederen av kortet sier, og prøv igjen.",
        ),
        (
            "nn",
            "PIN-koden på ID-kortet ditt er ikkje aktivert enno. "
            "Aktiver han først slik utferdaren av kortet seier, og prøv igjen.",
        ),
        (
            "en",
            "The PIN of your ID card is not activated yet. "
            "Activate it first as your card's issuer tells you, then try again.",
        ),
    ],
)
async def test_the_login_page_says_a_pin_not_activated_yet_in_its_own_line(
    page: Any, portal: Portal, bridge_port: int, lang: str, line: str
) -> None:
    # The bridge's answer for a card whose PIN its holder has not activated yet (the Thales
    # application's DF2F 00: the Finnish v4 and the Estonian 2025 card; the emulated ones
    # give it through pcscd, tests/pcsc/test_pin_not_active.py), played by the browser
    # itself: the page has its own line for it, not "The login failed."
    async def not_active(route: Any) -> None:
        headers = {"Access-Control-Allow-Origin": portal.origin, "Access-Control-Allow-Headers": "Content-Type"}
        if route.request.method == "OPTIONS":
            await route.fulfill(status=204, headers={**headers, "Access-Control-Allow-Methods": "GET, POST"})
            return
        problem = {"code": "PIN_NOT_ACTIVE", "status": 403, "detail": "The card's PIN1 is not active yet."}
        await route.fulfill(status=403, headers=headers, content_type="application/problem+json", json=problem)

    await page.route(f"http://127.0.0.1:{bridge_port}/**", not_active)
    await press_login(page, f"{portal.origin}/?lang={lang}")
    assert await shown_error(page) == "PIN_NOT_ACTIVE"
    assert await page.locator("#error").inner_text() == f"{line} (PIN_NOT_ACTIVE)"


async def test_a_page_on_an_origin_that_is_not_allowed_gets_origin_not_allowed_and_no_dialog(
    page: Any, softhsm: SoftHsm, bridge: Any, bridge_port: int, pinentry: ScriptedPinentry
) -> None:
    pinentry.respond(softhsm.pin)
    async with Portal(
        softhsm.ca.cert_path.read_bytes(), bridge_port, "http", (("/test/{name}", serve_test_page),)
    ) as other:
        await press_login(page, other.origin + "/")
        assert await shown_error(page) == "ORIGIN_NOT_ALLOWED"
        assert other.state.logins == []
    assert pinentry.dialogs() == []


# -- the JS client on its own -----------------------------------------------------------------


CALL = """async ([call, options]) => {
    const m = await import("/static/cardbridge.js");
    try {
        const nonce = "A".repeat(44);
        const result = call === "status" ? await m.status(options) : await m.authenticate(nonce, options);
        return {result};
    } catch (e) {
        return {code: e.code, retriesLeft: e.retriesLeft, message: e.message, ours: e instanceof m.CardbridgeError};
    }
}"""


async def test_client_without_a_bridge_gets_bridge_not_running(page: Any, portal: Portal) -> None:
    await page.goto(portal.origin + "/")
    for transport in ("http", "auto"):
        outcome = await page.evaluate(CALL, ["authenticate", {"port": free_port(), "transport": transport}])
        assert outcome["code"] == "BRIDGE_NOT_RUNNING", outcome
        assert outcome["ours"]
        assert outcome["retriesLeft"] is None
    outcome = await page.evaluate(CALL, ["status", {"transport": "extension", "pingTimeout": 100}])
    assert outcome["code"] == "BRIDGE_NOT_RUNNING"


async def test_client_status_over_http(page: Any, portal: Portal, bridge: Any, bridge_port: int) -> None:
    await page.goto(portal.origin + "/")
    outcome = await page.evaluate(CALL, ["status", {"port": bridge_port}])
    assert outcome["result"]["transport"] == "http"
    assert "version" in outcome["result"]


async def test_client_gets_the_signing_certificate_and_signs_over_http(
    page: Any, portal: Portal, bridge: Any, bridge_port: int, pinentry: ScriptedPinentry, softhsm: SoftHsm
) -> None:
    pinentry.respond("OK", softhsm.pin)  # agree to share the certificate, then the signing PIN
    await page.goto(portal.origin + "/")
    outcome = await page.evaluate(
        """async (port) => {
            const m = await import("/static/cardbridge.js");
            const options = {port, transport: "http", lang: "en"};
            const {certificate, supportedSignatureAlgorithms} = await m.getSigningCertificate(options);
            const hash = btoa(String.fromCharCode(...new Uint8Array(48).fill(7)));
            const signed = await m.sign(certificate, hash, "SHA-384", options);
            let refused = null;
            try { await m.sign(certificate, "AAAA", "SHA-384", options); } catch (e) { refused = e.code; }
            return {certificate, supportedSignatureAlgorithms, signed, refused};
        }""",
        bridge_port,
    )
    der = base64.b64decode(outcome["certificate"])
    cert = x509.load_der_x509_certificate(der)
    assert cert.subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER)[0].value == softhsm.citizen.id_code
    assert {"cryptoAlgorithm": "ECC", "hashFunction": "SHA-384", "paddingScheme": "NONE"} in outcome[
        "supportedSignatureAlgorithms"
    ]
    assert outcome["signed"]["signatureAlgorithm"]["hashFunction"] == "SHA-384"
    signature = base64.b64decode(outcome["signed"]["signature"])
    r, s = int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(encode_dss_signature(r, s), bytes([7]) * 48, ec.ECDSA(Prehashed(hashes.SHA384())))
    assert outcome["refused"] == "INVALID_ARGUMENT"  # a hash of the wrong length, refused before any dialog
    assert pinentry.texts("SETTITLE") == ["Share your certificate", "Sign with your ID card"]


# A stand-in for the extension's content script, speaking the agreed window.postMessage
# protocol, and a frame that forges answers: the client must take only the real one.
FAKE_EXTENSION_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fake extension</title>
<script>
window.seen = [];
window.addEventListener("message", (event) => {
  const data = event.data;
  if (event.source !== window || !data || typeof data !== "object") return;
  if (data.cardbridge === "ping") window.postMessage({cardbridge: "pong", version: "9.9.9"}, location.origin);
  if (data.cardbridge !== "request") return;
  window.seen.push(data);
  // Forged answers first: from a frame (another event.source), and for an id not sent.
  document.getElementById("frame").contentWindow.postMessage({forge: data.id}, "*");
  window.postMessage({cardbridge: "response", id: "not-" + data.id, result: {}}, location.origin);
  setTimeout(() => {
    const reply = window.reply || {error: {code: "PIN_INCORRECT", message: "Wrong PIN.", retriesLeft: 2}};
    window.postMessage({cardbridge: "response", id: data.id, ...reply}, location.origin);
  }, 300);
});
</script></head>
<body><iframe id="frame" srcdoc="<script>
addEventListener('message', (e) => {
  if (!e.data || !e.data.forge) return;
  parent.postMessage({cardbridge: 'response', id: e.data.forge, result: {unverifiedCertificate: 'Zm9yZ2Vk',
    algorithm: 'ES384', signature: 'Zm9yZ2Vk', format: 'web-eid:1.0'}}, '*');
});
</script>"></iframe></body></html>"""
TEST_PAGES["fake-extension"] = FAKE_EXTENSION_PAGE


NO_APP = "() => { window.reply = {error: {code: 'EXTENSION_NATIVE_HOST_MISSING', message: 'No app.'}}; }"


async def test_client_sends_the_language_tags_primary_subtag_and_the_bridge_maps_it(page: Any, portal: Portal) -> None:
    # The client keeps no list of languages: "no" and "nb-NO" both reach the bridge, which
    # maps them (i18n.our_language); a tag that is not well formed is left out.
    await page.goto(portal.origin + "/test/fake-extension")
    await page.wait_for_function("document.getElementById('frame').contentDocument.readyState === 'complete'")
    await page.evaluate("() => { window.reply = {error: {code: 'USER_CANCELLED', message: 'Cancelled.'}}; }")
    cases = [("nn-NO", "nn"), ("no", "no"), ("nb_NO", "nb"), ("EN-gb", "en"), ("de-AT", "de"), ("x-private", None)]
    for given, _ in cases:
        outcome = await page.evaluate(CALL, ["authenticate", {"lang": given, "port": free_port()}])
        assert outcome["code"] == "USER_CANCELLED"
    seen = [request["arguments"].get("lang") for request in await page.evaluate("window.seen")]
    assert seen == [sent for _, sent in cases]


async def test_client_speaks_the_extension_protocol_and_takes_only_its_answers(page: Any, portal: Portal) -> None:
    await page.goto(portal.origin + "/test/fake-extension")
    await page.wait_for_function("document.getElementById('frame').contentDocument.readyState === 'complete'")
    outcome = await page.evaluate(CALL, ["authenticate", {"lang": "en", "port": free_port()}])
    assert outcome == {"code": "PIN_INCORRECT", "retriesLeft": 2, "message": "Wrong PIN.", "ours": True}
    seen = await page.evaluate("window.seen")
    assert len(seen) == 1
    assert seen[0]["cardbridge"] == "request"
    assert seen[0]["command"] == "authenticate"
    assert seen[0]["arguments"] == {"challengeNonce": "A" * 44, "lang": "en"}  # never an origin
    assert isinstance(seen[0]["id"], str)
    assert len(seen[0]["id"]) >= 16

    token = {
        "unverifiedCertificate": "Q0VSVA==",
        "algorithm": "ES384",
        "signature": "U0lH",
        "format": "web-eid:1.0",
        "appVersion": "https://cardbridge.invalid/cardbridge/releases/0.1.0",
    }
    await page.evaluate("(token) => { window.reply = {result: token}; }", token)
    outcome = await page.evaluate(CALL, ["authenticate", {}])
    assert outcome == {"result": token}
    assert (await page.evaluate("window.seen"))[1]["arguments"] == {"challengeNonce": "A" * 44, "lang": "en"}

    await page.evaluate("() => { window.reply = {result: {format: 'web-eid:1.0'}}; }")
    assert (await page.evaluate(CALL, ["authenticate", {}]))["code"] == "INVALID_RESPONSE"
    await page.evaluate("() => { window.reply = {error: {code: 'not a code'}}; }")
    assert (await page.evaluate(CALL, ["authenticate", {}]))["code"] == "INVALID_RESPONSE"
    # The extension without its app: "auto" asks the localhost API (here: none runs).
    await page.evaluate(NO_APP)
    assert (await page.evaluate(CALL, ["authenticate", {"port": free_port()}]))["code"] == "BRIDGE_NOT_RUNNING"
    only_extension = await page.evaluate(CALL, ["authenticate", {"transport": "extension"}])
    assert only_extension["code"] == "EXTENSION_NATIVE_HOST_MISSING"


async def test_client_falls_back_to_http_when_the_extension_has_no_app(
    page: Any, portal: Portal, bridge: Any, bridge_port: int
) -> None:
    await page.goto(portal.origin + "/test/fake-extension")
    await page.evaluate(NO_APP)
    outcome = await page.evaluate(CALL, ["status", {"port": bridge_port}])
    assert outcome.get("result", {}).get("transport") == "http", outcome
    assert len(await page.evaluate("window.seen")) == 1  # asked the extension first
    await page.evaluate("() => { window.reply = {result: {version: '9.9.9'}}; }")
    outcome = await page.evaluate(CALL, ["status", {"port": bridge_port}])
    assert outcome["result"] == {"version": "9.9.9", "transport": "extension"}


TEST_PAGES["silent-extension"] = (
    '<!doctype html><script>addEventListener("message", (e) => { if (e.source === window && e.data'
    ' && e.data.cardbridge === "ping") postMessage({cardbridge: "pong", version: "1"}, location.origin); });'
    "</script>"
)


async def test_client_times_out_when_the_extension_does_not_answer(page: Any, portal: Portal) -> None:
    await page.goto(portal.origin + "/test/silent-extension")
    outcome = await page.evaluate(CALL, ["authenticate", {"timeout": 500}])
    assert outcome["code"] == "TIMEOUT"
