"""The demo portal's server side, through aiohttp's test client (no browser, no card).

Tokens are made with software keys and certificates from the test session's development
CA (tests/portal/conftest.py), exactly as a card would sign them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography import x509

from cardbridge.demo.portal import DEMO_STATE, SESSION_COOKIE, DemoSettings, create_app, personal_identifier
from cardbridge.emulator.belgium import BelgianCitizen, CertificateHolder
from cardbridge.emulator.devpki import Citizen, DevCA, FinnishCitizen, Person, PrivateKey
from cardbridge.emulator.esteid import EstonianCitizen
from cardbridge.model import Purpose
from tests.portal.helpers import make_token

ORIGIN = "http://localhost:18080"
HEADERS = {"Origin": ORIGIN, "Content-Type": "application/json"}

MakeClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
Client = TestClient[web.Request, web.Application]


@pytest.fixture
def app(dev_ca: DevCA) -> web.Application:
    return create_app(DemoSettings(ORIGIN, (dev_ca.cert_path.read_bytes(),), bridge_port=24999, transport="http"))


@pytest.fixture
async def client(aiohttp_client: MakeClient, app: web.Application) -> Client:
    return await aiohttp_client(app)


async def start_login(client: Client) -> str:
    """Load the login page (session cookie) and fetch a challenge; returns the nonce."""
    page = await client.get("/")
    assert page.status == 200
    response = await client.post("/api/challenge", data="{}", headers=HEADERS)
    assert response.status == 200
    nonce = (await response.json())["nonce"]
    assert isinstance(nonce, str)
    assert len(nonce) == 44
    return nonce


async def post_token(client: Client, token: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post("/api/login", data=json.dumps({"token": token}), headers=HEADERS)
    return response.status, await response.json()


async def test_login_page_is_bokmal_by_default_with_nynorsk_and_english(client: Client) -> None:
    page = await client.get("/")
    body = await page.text()
    assert '<html lang="nb">' in body
    assert "Logg inn med ID-kort" in body
    assert "Sett ID-kortet i kortleseren" in body
    assert SESSION_COOKIE in page.cookies
    assert page.cookies[SESSION_COOKIE]["httponly"]
    assert page.cookies[SESSION_COOKIE]["samesite"] == "Strict"
    csp = page.headers["Content-Security-Policy"]
    assert "connect-src 'self' http://127.0.0.1:24999" in csp
    assert "script-src 'self'" in csp
    config = json.loads(re.search(r'data-config="([^"]*)"', body).group(1).replace("&quot;", '"'))  # type: ignore[union-attr]
    assert config["bridgePort"] == 24999
    assert config["transport"] == "http"
    assert config["lang"] == "nb"
    assert "ORIGIN_NOT_ALLOWED" in config["messages"]
    # The tries left, one line per number, by the language's plural rule (the page's script picks).
    assert config["messages"]["retries"]["1"] == "Du har 1 forsøk igjen."
    assert config["messages"]["retries"]["3"] == "Du har 3 forsøk igjen."

    nynorsk = await (await client.get("/?lang=nn")).text()
    assert '<html lang="nn">' in nynorsk
    assert "Set ID-kortet i kortlesaren" in nynorsk
    english = await (await client.get("/?lang=en")).text()
    assert '<html lang="en">' in english
    assert "Log in with your ID card" in english
    english_config = json.loads(re.search(r'data-config="([^"]*)"', english).group(1).replace("&quot;", '"'))  # type: ignore[union-attr]
    assert english_config["messages"]["retries"]["1"] == "You have 1 try left."
    assert english_config["messages"]["retries"]["2"] == "You have 2 tries left."
    assert '<a href="/?lang=nn" lang="nn">Nynorsk</a>' in english
    # The bridge's rule: a language we lack reads English, "no" is bokmål, junk names none.
    for query, expected in [("sv", "en"), ("fi-FI", "en"), ("no", "nb"), ("", "nb"), ("<b>", "nb")]:
        page = await (await client.get("/", params={"lang": query})).text()
        assert f'<html lang="{expected}">' in page, query


async def test_the_js_client_is_served(client: Client) -> None:
    for path in ("/static/cardbridge.js", "/static/demo-login.js"):
        response = await client.get(path)
        assert response.status == 200
        assert "javascript" in response.content_type
    assert "export async function authenticate" in await (await client.get("/static/cardbridge.js")).text()


async def test_login_shows_the_verified_citizen(
    client: Client, app: web.Application, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    nonce = await start_login(client)
    token = json.loads(make_token(keys["p384"], auth_certs["p384"], "ES384", origin=ORIGIN, nonce=nonce))
    status, body = await post_token(client, token)
    assert status == 200, body
    assert body["redirect"] == "/citizen?lang=nb"
    fnr = Citizen().fodselsnummer
    assert body["citizen"]["identifier"] == fnr
    assert body["citizen"]["country"] == "NO"
    page = await client.get("/citizen")
    html = await page.text()
    assert 'id="citizen-name">Kari Nordmann<' in html
    assert f'id="citizen-id">{fnr}<' in html
    assert "cardbridge Development ID Card CA" in html
    assert "Fødselsnummer" in html
    logins = app[DEMO_STATE].logins
    assert [c.name for c in logins] == ["Kari Nordmann"]
    assert logins[0].id_code == "PNONO-" + fnr


FINNISH = FinnishCitizen()
BELGIAN = BelgianCitizen()


@pytest.mark.parametrize(
    ("person", "identifier", "labels"),
    [
        (
            Citizen(),
            Citizen().fodselsnummer,
            {"nb": "Fødselsnummer", "nn": "Fødselsnummer", "en": "National identity number (fødselsnummer)"},
        ),
        (
            EstonianCitizen(),
            "38001085718",
            {
                "nb": "Estisk personkode (isikukood)",
                "nn": "Estisk personkode (isikukood)",
                "en": "Personal code (isikukood)",
            },
        ),
        (
            FINNISH,
            FINNISH.satu,
            {
                "nb": "Finsk elektronisk identifikasjonsnummer (SATU)",
                "nn": "Finsk elektronisk identifikasjonsnummer (SATU)",
                "en": "Electronic identification number (SATU)",
            },
        ),
        (
            CertificateHolder(BELGIAN, Purpose.AUTHENTICATION),
            BELGIAN.national_number,
            {
                "nb": "Belgisk nasjonalt registernummer (rijksregisternummer)",
                "nn": "Belgisk nasjonalt registernummer (rijksregisternummer)",
                "en": "National register number (rijksregisternummer)",
            },
        ),
    ],
    ids=["NO", "EE", "FI", "BE"],
)
async def test_the_citizen_page_names_the_identifier_as_the_certificates_country_does(
    client: Client,
    dev_ca: DevCA,
    keys: dict[str, PrivateKey],
    person: Person,
    identifier: str,
    labels: dict[str, str],
) -> None:
    certificate = dev_ca.issue(keys["p256"].public_key(), person, Purpose.AUTHENTICATION)
    nonce = await start_login(client)
    status, body = await post_token(client, make_token(keys["p256"], certificate, "ES256", origin=ORIGIN, nonce=nonce))
    assert status == 200, body
    assert body["citizen"]["identifier"] == identifier
    for lang, label in labels.items():
        page = await (await client.get(f"/citizen?lang={lang}")).text()
        assert f'<dt>{label}</dt><dd id="citizen-id">{identifier}</dd>' in page, page
        assert "ødselsnummer" not in page or person == Citizen()


@pytest.mark.parametrize(
    ("id_code", "country", "expected"),
    [
        ("PNONO-01816512375", "NO", ("National identity number (fødselsnummer)", "01816512375")),
        ("PNOEE-38001085718", "EE", ("Personal code (isikukood)", "38001085718")),
        ("PNOFI-010101-123N", "FI", ("Personal identity code (henkilötunnus)", "010101-123N")),
        ("PNOBE-90072199939", "BE", ("National register number (rijksregisternummer)", "90072199939")),
        ("999123450", "FI", ("Electronic identification number (SATU)", "999123450")),
        ("90072199939", "BE", ("National register number (rijksregisternummer)", "90072199939")),
        ("PNOSE-198001011234", "SE", ("Identifier", "PNOSE-198001011234")),
        ("IDCEE-AB1234567", "EE", ("Identifier", "IDCEE-AB1234567")),
        ("01816512375", None, ("Identifier", "01816512375")),
    ],
)
def test_personal_identifier(id_code: str, country: str | None, expected: tuple[str, str]) -> None:
    assert personal_identifier(id_code, country) == expected


async def test_the_same_token_posted_again_is_refused(
    client: Client, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    nonce = await start_login(client)
    token = make_token(keys["p256"], auth_certs["p256"], "ES256", origin=ORIGIN, nonce=nonce)
    assert (await post_token(client, token))[0] == 200
    status, body = await post_token(client, token)
    assert status == 401
    assert body["code"] == "NONCE_USED"
    assert body["message"] == "Denne innloggingen er allerede brukt. Start på nytt."


async def test_a_token_for_another_nonce_or_origin_is_refused(
    client: Client, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    nonce = await start_login(client)
    other = make_token(keys["p384"], auth_certs["p384"], "ES384", origin="https://evil.example", nonce=nonce)
    status, body = await post_token(client, other)
    assert (status, body["code"]) == (401, "TOKEN_SIGNATURE_INVALID")
    # The failed attempt used up the challenge: even the right token needs a new one.
    right = make_token(keys["p384"], auth_certs["p384"], "ES384", origin=ORIGIN, nonce=nonce)
    assert (await post_token(client, right))[1]["code"] == "NONCE_USED"
    assert (await client.get("/citizen", allow_redirects=False)).status == 303


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("not json", "TOKEN_MALFORMED"),
        ({"format": "web-eid:1.0"}, "TOKEN_MALFORMED"),
        (
            {
                "unverifiedCertificate": "QUJD",
                "algorithm": "ES384",
                "signature": "QUJD",
                "format": "web-eid:2.0",
                "appVersion": "https://example.invalid/x" * 4,
            },
            "TOKEN_FORMAT_UNSUPPORTED",
        ),
        (
            {
                "unverifiedCertificate": "QUJD",
                "algorithm": "HS256",
                "signature": "QUJD",
                "format": "web-eid:1.0",
                "appVersion": "https://example.invalid/x" * 4,
            },
            "TOKEN_ALGORITHM_UNSUPPORTED",
        ),
        (42, "TOKEN_MALFORMED"),
    ],
)
async def test_bad_tokens_are_refused_with_their_code(client: Client, token: Any, code: str) -> None:
    await start_login(client)
    status, body = await post_token(client, token)
    assert status in (400, 401)
    assert body["code"] == code


async def test_an_untrusted_certificate_is_refused(
    client: Client, foreign_ca: DevCA, keys: dict[str, PrivateKey]
) -> None:
    from cardbridge.model import Purpose

    nonce = await start_login(client)
    cert = foreign_ca.issue(keys["p384"].public_key(), Citizen(), Purpose.AUTHENTICATION)
    status, body = await post_token(client, make_token(keys["p384"], cert, "ES384", origin=ORIGIN, nonce=nonce))
    assert (status, body["code"]) == (401, "CERTIFICATE_UNTRUSTED")


async def test_login_without_a_challenge_is_refused(
    client: Client, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    await client.get("/")
    token = make_token(keys["p384"], auth_certs["p384"], "ES384", origin=ORIGIN)
    status, body = await post_token(client, token)
    assert (status, body["code"]) == (400, "NONCE_UNKNOWN")


async def test_posts_from_another_origin_or_without_json_are_refused(client: Client) -> None:
    await client.get("/")
    other = await client.post(
        "/api/challenge", data="{}", headers={"Origin": "http://localhost:9", "Content-Type": "application/json"}
    )
    assert other.status == 403
    assert (await other.json())["code"] == "ORIGIN_NOT_ALLOWED"
    none = await client.post("/api/challenge", data="{}", headers={"Content-Type": "application/json"})
    assert none.status == 403
    form = await client.post("/api/login", data="token=x", headers={"Origin": ORIGIN, "Content-Type": "text/plain"})
    assert form.status == 415


async def test_logout_ends_the_session(
    client: Client, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    nonce = await start_login(client)
    token = make_token(keys["p384"], auth_certs["p384"], "ES384", origin=ORIGIN, nonce=nonce)
    assert (await post_token(client, token))[0] == 200
    response = await client.post("/logout?lang=en", headers={"Origin": ORIGIN}, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/?lang=en"
    assert (await client.get("/citizen", allow_redirects=False)).status == 303


def test_settings_are_checked(dev_ca: DevCA) -> None:
    from cardbridge.errors import InvalidInputError, InvalidOriginError

    ca = (dev_ca.cert_path.read_bytes(),)
    with pytest.raises(InvalidOriginError):
        DemoSettings("http://portal.example", ca)
    with pytest.raises(InvalidInputError):
        DemoSettings(ORIGIN, ca, transport="carrier-pigeon")


def test_the_persons_pinentry_falls_back_to_an_installed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from cardbridge.demo import runner as demo_runner

    installed = {"pinentry-curses": "/usr/bin/pinentry-curses", "my-pinentry": "/opt/my-pinentry"}
    monkeypatch.setattr(demo_runner.shutil, "which", installed.get)
    assert demo_runner.person_pinentry("my-pinentry --timeout 10") == "my-pinentry --timeout 10"
    assert demo_runner.person_pinentry("pinentry") == "pinentry-curses"
    monkeypatch.setattr(demo_runner.shutil, "which", lambda name: None)
    assert demo_runner.person_pinentry("pinentry") == "pinentry"
