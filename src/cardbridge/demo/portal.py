"""The demo portal: a login page, the challenge and token endpoints, the citizen page.

It shows a portal developer the whole flow with the pieces in :mod:`cardbridge.portal`:

``GET /``
    the login page (``?lang=nb|nn|en``; bokmål by default, English for another language). Its
    button fetches a challenge, asks cardbridge (``/static/cardbridge.js``) for a token, and posts the token back.
``POST /api/challenge``
    issues a nonce from the nonce store and ties it to the browser's session cookie.
``POST /api/login``
    ``{"token": {...}}``: the validator checks the token against the session's nonce (and
    consumes the nonce, so the same token posted again is refused with ``NONCE_USED``);
    on success the session holds the citizen and the answer names ``/citizen``.
``GET /citizen``
    the verified citizen: name, personal identifier (named as its country names it: the
    fødselsnummer, the isikukood …) and the certificate's issuer.

Sessions live in memory (one random cookie per browser, ``HttpOnly``, ``SameSite=Strict``).
The POST endpoints take JSON only and only from the portal's own ``Origin``. Errors are
``{"code": ..., "detail": ...}`` with the validator's stable code.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import secrets
import string
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from cardbridge import DEFAULT_PORT, i18n
from cardbridge.authtoken import check_origin
from cardbridge.certs import parse_certificate
from cardbridge.errors import CardbridgeError, InvalidInputError
from cardbridge.i18n import LANGUAGES, N_
from cardbridge.portal import JS_CLIENT
from cardbridge.portal.nonces import InMemoryNonceStore, NonceStore
from cardbridge.portal.validator import AuthTokenValidator, Identity

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"
CLIENT_JS = JS_CLIENT  # the portal library's JS client, served as /static/cardbridge.js
SESSION_COOKIE = "cardbridge_demo_session"
MAX_SESSIONS = 10_000
MAX_BODY = 64 * 1024
DEFAULT_BRIDGE_PORT = DEFAULT_PORT

# The login page's status and error lines (its script shows them; the code is shown beside).
WORKING = N_("Waiting for your ID card … Follow the instructions in the PIN window.")
VERIFYING = N_("Verifying …")
LOGIN_FAILED = N_("The login failed.")
ERROR_LINES = {
    "BRIDGE_NOT_RUNNING": N_("cardbridge was not found on this computer. Is it installed and running?"),
    "ORIGIN_NOT_ALLOWED": N_("cardbridge does not accept logins from this website."),
    "USER_CANCELLED": N_("You cancelled."),
    "USER_TIMEOUT": N_("You did not answer in time. Try again."),
    "TIMEOUT": N_("cardbridge did not answer in time. Try again."),
    "PIN_INCORRECT": N_("Wrong PIN."),
    "PIN_BLOCKED": N_("The PIN is blocked. Unblock it with your PUK code."),
    "PIN_NOT_ACTIVE": N_(
        "The PIN of your ID card is not activated yet. Activate it first as your card's issuer tells you, "
        "then try again."
    ),
    "NO_TOKEN": N_("No ID card was found. Put your card in the reader."),
    "NO_CERTIFICATE": N_("The ID card has no login certificate."),
    "BUSY": N_("The ID card is busy. Try again in a moment."),
    "NONCE_USED": N_("This login was already used. Start again."),
    "NONCE_EXPIRED": N_("The login took too long. Start again."),
}
MAX_TRIES = 15  # a card's PIN try counter (ISO 7816 63Cx): the page gets the line for each

# What a citizen's personal identifier is called: an ETSI EN 319 412-1 semantics identifier
# (``PNO`` + country + ``-`` + the number) names its country; the countries whose
# certificates carry the bare number are known by the certificate's country (C).
_PERSONAL_NUMBERS = {
    "NO": N_("National identity number (fødselsnummer)"),
    "EE": N_("Personal code (isikukood)"),
    "FI": N_("Personal identity code (henkilötunnus)"),
    "BE": N_("National register number (rijksregisternummer)"),
}
_BARE_NUMBERS = {
    # Finnish certificates carry the SATU, the population register's electronic
    # identification number, not the henkilötunnus.
    "FI": N_("Electronic identification number (SATU)"),
    "BE": _PERSONAL_NUMBERS["BE"],
}
IDENTIFIER = N_("Identifier")
_SEMANTICS_IDENTIFIER = re.compile(r"PNO([A-Z]{2})-(.+)")


def personal_identifier(id_code: str, country: str | None) -> tuple[str, str]:
    """What the certificate's identifier is called (a message to translate) and its value:
    ``("National identity number (fødselsnummer)", "01816512375")`` for
    ``PNONO-01816512375``; the whole identifier as an "Identifier" when it is not known."""
    found = _SEMANTICS_IDENTIFIER.fullmatch(id_code)
    if found is not None and found[1] in _PERSONAL_NUMBERS:
        return _PERSONAL_NUMBERS[found[1]], found[2]
    if found is None and country in _BARE_NUMBERS:
        return _BARE_NUMBERS[country], id_code
    return IDENTIFIER, id_code


@dataclass(frozen=True, slots=True)
class VerifiedCitizen:
    """What the portal verified at one login."""

    name: str
    id_code: str
    country: str | None
    identifier: str  # the number alone (``01816512375``)
    identifier_label: str  # what it is called, in English (translate with i18n.gettext)
    issuer: str
    algorithm: str
    at: float  # time.time()

    @classmethod
    def from_identity(cls, identity: Identity) -> VerifiedCitizen:
        if identity.given_name and identity.surname:
            name = f"{identity.given_name} {identity.surname}"
        else:
            name = identity.common_name or identity.id_code
        issuer = parse_certificate(identity.certificate).issuer
        label, identifier = personal_identifier(identity.id_code, identity.country)
        return cls(name, identity.id_code, identity.country, identifier, label, issuer, identity.algorithm, time.time())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "idCode": self.id_code,
            "country": self.country,
            "identifier": self.identifier,
            "issuer": self.issuer,
            "algorithm": self.algorithm,
        }


@dataclass(frozen=True)
class DemoSettings:
    """How one demo portal runs.

    ``origin``: the portal's own origin as the browser sees it (``http://localhost:PORT`` in
    development; ``http`` only for localhost). ``trusted_ca_certificates``: PEM or DER of
    the CAs that issue the citizens' certificates (the development CA for emulated cards).
    ``bridge_port`` and ``transport`` are passed to the JS client.
    """

    origin: str
    trusted_ca_certificates: tuple[bytes, ...]
    bridge_port: int = DEFAULT_BRIDGE_PORT
    transport: str = "auto"  # "auto" | "extension" | "http"

    def __post_init__(self) -> None:
        check_origin(self.origin, allow_http_localhost=True)
        if self.transport not in ("auto", "extension", "http"):
            raise InvalidInputError("transport must be auto, extension or http")
        if not 1 <= self.bridge_port <= 65535:
            raise InvalidInputError("bridge_port must be a TCP port")


@dataclass
class Session:
    nonce: str | None = None
    citizen: VerifiedCitizen | None = None


@dataclass
class DemoState:
    """The portal's state: its validator, nonce store, sessions and the logins it verified."""

    settings: DemoSettings
    validator: AuthTokenValidator
    nonces: NonceStore
    sessions: OrderedDict[str, Session] = field(default_factory=OrderedDict)
    logins: list[VerifiedCitizen] = field(default_factory=list)
    login_event: asyncio.Event = field(default_factory=asyncio.Event)

    def session(self, request: web.Request) -> tuple[str, Session] | None:
        sid = request.cookies.get(SESSION_COOKIE)
        if sid is None or sid not in self.sessions:
            return None
        self.sessions.move_to_end(sid)
        return sid, self.sessions[sid]

    def new_session(self) -> tuple[str, Session]:
        while len(self.sessions) >= MAX_SESSIONS:
            self.sessions.popitem(last=False)
        sid = secrets.token_urlsafe(32)
        session = self.sessions[sid] = Session()
        return sid, session


DEMO_STATE = web.AppKey("cardbridge_demo_state", DemoState)


def _lang(request: web.Request) -> str:
    """``?lang`` by the bridge's rule (i18n.resolve_language, without the server's locale):
    ours as named (``no`` is bokmål), English for a language we lack, bokmål when absent."""
    return i18n.resolve_language(request.query.get("lang"), system=False)


def _render(name: str, values: Mapping[str, str], raw: Sequence[str] = ()) -> str:
    template = string.Template((TEMPLATE_DIR / name).read_text(encoding="utf-8"))
    return template.substitute({k: v if k in raw else html.escape(v, quote=True) for k, v in values.items()})


def language_name(lang: str) -> str:
    """The name of ``lang`` in that language (its catalogue's translation of "English")."""
    # Translators: the name of your language, in your language, as in a menu of languages.
    return i18n.pgettext(lang, "this language's name", "English")


def _language_links(path: str, lang: str) -> str:
    links = []
    for code in LANGUAGES:
        label = html.escape(language_name(code))
        current = ' aria-current="true"' if code == lang else ""
        links.append(f'<a href="{html.escape(path)}?lang={code}" lang="{code}"{current}>{label}</a>')
    return "".join(links)


def _security_headers(state: DemoState) -> dict[str, str]:
    bridge = f"http://127.0.0.1:{state.settings.bridge_port}"
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self' {bridge}; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _set_cookie(response: web.StreamResponse, state: DemoState, sid: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        sid,
        httponly=True,
        samesite="Strict",
        secure=state.settings.origin.startswith("https://"),
        path="/",
    )


def _problem(status: int, code: str, detail: str, lang: str) -> web.Response:
    message = i18n.gettext(lang, ERROR_LINES.get(code, LOGIN_FAILED))
    return web.json_response({"code": code, "message": message, "detail": detail}, status=status)


async def login_page(request: web.Request) -> web.Response:
    state = request.app[DEMO_STATE]
    lang = _lang(request)
    found = state.session(request)
    sid, _ = found if found is not None else state.new_session()
    config = {
        "lang": lang,
        "bridgePort": state.settings.bridge_port,
        "transport": state.settings.transport,
        "messages": {
            **{code: i18n.gettext(lang, line) for code, line in ERROR_LINES.items()},
            "working": i18n.gettext(lang, WORKING),
            "verifying": i18n.gettext(lang, VERIFYING),
            "default": i18n.gettext(lang, LOGIN_FAILED),
            # The tries left after a wrong PIN, one line per number (the language's plural rule).
            "retries": {
                n: i18n.ngettext(lang, "You have {n} try left.", "You have {n} tries left.", n, n=n)
                for n in range(MAX_TRIES + 1)
            },
        },
    }
    body = _render(
        "login.html",
        {
            "lang": lang,
            "title": i18n.gettext(lang, "Log in – demo portal"),
            "brand": i18n.gettext(lang, "The demo portal"),
            "language_label": i18n.gettext(lang, "Language"),
            "language_links": _language_links("/", lang),
            "config": json.dumps(config, ensure_ascii=False),
            "heading": i18n.gettext(lang, "Log in with your ID card"),
            "intro": i18n.gettext(
                lang,
                "Put your ID card in the card reader and press the button. "
                "cardbridge shows which website is asking and asks for your PIN.",
            ),
            "demo_note": i18n.gettext(
                lang, "This is a demo. The login uses an emulated ID card with a fictitious person."
            ),
            "button": i18n.gettext(lang, "Log in with ID card"),
        },
        raw=("language_links",),
    )
    response = web.Response(text=body, content_type="text/html", headers=_security_headers(state))
    _set_cookie(response, state, sid)
    return response


async def citizen_page(request: web.Request) -> web.StreamResponse:
    state = request.app[DEMO_STATE]
    lang = _lang(request)
    found = state.session(request)
    if found is None or found[1].citizen is None:
        raise web.HTTPSeeOther(f"/?lang={lang}")
    citizen = found[1].citizen
    body = _render(
        "citizen.html",
        {
            "lang": lang,
            "title": i18n.gettext(lang, "Logged in – demo portal"),
            "brand": i18n.gettext(lang, "The demo portal"),
            "language_label": i18n.gettext(lang, "Language"),
            "language_links": _language_links("/citizen", lang),
            "heading": i18n.gettext(lang, "You are logged in"),
            "name_label": i18n.gettext(lang, "Name"),
            "name": citizen.name,
            "id_label": i18n.gettext(lang, citizen.identifier_label),
            "id_value": citizen.identifier,
            "issuer_label": i18n.gettext(lang, "Certificate issuer"),
            "issuer": citizen.issuer,
            "logout": i18n.gettext(lang, "Log out"),
        },
        raw=("language_links",),
    )
    return web.Response(text=body, content_type="text/html", headers=_security_headers(state))


async def logout(request: web.Request) -> web.StreamResponse:
    state = request.app[DEMO_STATE]
    if request.headers.get("Origin") != state.settings.origin:
        return _problem(403, "ORIGIN_NOT_ALLOWED", "Log out from the portal's own pages.", _lang(request))
    found = state.session(request)
    if found is not None:
        del state.sessions[found[0]]
    raise web.HTTPSeeOther(f"/?lang={_lang(request)}")


def _guard_post(request: web.Request, state: DemoState) -> web.Response | None:
    """Same-origin JSON only: the browser's Origin header is the portal's own."""
    lang = _lang(request)
    if request.headers.get("Origin") != state.settings.origin:
        return _problem(403, "ORIGIN_NOT_ALLOWED", "Only the portal's own pages may post here.", lang)
    if request.content_type != "application/json":
        return _problem(415, "INVALID_ARGUMENT", "Send application/json.", lang)
    return None


async def challenge(request: web.Request) -> web.Response:
    state = request.app[DEMO_STATE]
    refused = _guard_post(request, state)
    if refused is not None:
        return refused
    found = state.session(request)
    sid, session = found if found is not None else state.new_session()
    try:
        session.nonce = state.nonces.issue()
    except CardbridgeError as exc:
        return _problem(503, str(exc.code), exc.message, _lang(request))
    response = web.json_response({"nonce": session.nonce}, headers={"Cache-Control": "no-store"})
    _set_cookie(response, state, sid)
    return response


async def login(request: web.Request) -> web.Response:
    state = request.app[DEMO_STATE]
    lang = _lang(request)
    refused = _guard_post(request, state)
    if refused is not None:
        return refused
    found = state.session(request)
    if found is None or found[1].nonce is None:
        return _problem(400, "NONCE_UNKNOWN", "This browser has no challenge: load the login page first.", lang)
    session = found[1]
    nonce = found[1].nonce  # kept: a replay of the token meets the used nonce in the store
    try:
        body = await request.json()
    except ValueError:
        return _problem(400, "TOKEN_MALFORMED", "The body is not JSON.", lang)
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, dict | str):
        return _problem(400, "TOKEN_MALFORMED", 'The body must be {"token": {...}}.', lang)
    try:
        identity = await asyncio.to_thread(state.validator.validate, token, nonce)
    except CardbridgeError as exc:
        return _problem(401, str(exc.code), exc.message, lang)
    citizen = VerifiedCitizen.from_identity(identity)
    session.citizen = citizen
    state.logins.append(citizen)
    del state.logins[:-100]
    state.login_event.set()
    return web.json_response({"redirect": f"/citizen?lang={lang}", "citizen": citizen.to_dict()})


async def client_js(request: web.Request) -> web.FileResponse:
    return web.FileResponse(CLIENT_JS)


def create_app(settings: DemoSettings, *, nonce_store: NonceStore | None = None) -> web.Application:
    """The demo portal for ``settings`` (an in-memory nonce store unless one is given)."""
    store = nonce_store or InMemoryNonceStore()
    validator = AuthTokenValidator(
        site_origin=settings.origin,
        trusted_ca_certificates=list(settings.trusted_ca_certificates),
        allow_http_localhost=settings.origin.startswith("http://"),
        nonce_store=store,
    )
    app = web.Application(client_max_size=MAX_BODY)
    app[DEMO_STATE] = DemoState(settings=settings, validator=validator, nonces=store)
    app.router.add_get("/", login_page)
    app.router.add_get("/citizen", citizen_page)
    app.router.add_post("/logout", logout)
    app.router.add_post("/api/challenge", challenge)
    app.router.add_post("/api/login", login)
    app.router.add_get("/static/cardbridge.js", client_js)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    return app
