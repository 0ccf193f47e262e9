"""The demo portal: a login page, the challenge and token endpoints, the citizen page.

It shows a portal developer the whole flow with the pieces in :mod:`cardbridge.portal`:

``GET /``
    the login page (``?lang=nb|nn|en``, bokmål by default). Its button fetches a challenge,
    asks cardbridge (``/static/cardbridge.js``) for a token, and posts the token back.
``POST /api/challenge``
    issues a nonce from the nonce store and ties it to the browser's session cookie.
``POST /api/login``
    ``{"token": {...}}``: the validator checks the token against the session's nonce (and
    consumes the nonce, so the same token posted again is refused with ``NONCE_USED``);
    on success the session holds the citizen and the answer names ``/citizen``.
``GET /citizen``
    the verified citizen: name, fødselsnummer, and the certificate's issuer.

Sessions live in memory (one random cookie per browser, ``HttpOnly``, ``SameSite=Strict``).
The POST endpoints take JSON only and only from the portal's own ``Origin``. Errors are
``{"code": ..., "detail": ...}`` with the validator's stable code.
"""

from __future__ import annotations

import asyncio
import html
import json
import secrets
import string
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from cardbridge import DEFAULT_PORT
from cardbridge.authtoken import check_origin
from cardbridge.certs import parse_certificate
from cardbridge.errors import CardbridgeError, InvalidInputError
from cardbridge.i18n import LANGUAGES
from cardbridge.portal import JS_CLIENT
from cardbridge.portal.nonces import InMemoryNonceStore, NonceStore
from cardbridge.portal.validator import AuthTokenValidator, Identity

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"
CLIENT_JS = JS_CLIENT  # the portal library's JS client, served as /static/cardbridge.js
DEFAULT_LANGUAGE = "nb"
SESSION_COOKIE = "cardbridge_demo_session"
MAX_SESSIONS = 10_000
MAX_BODY = 64 * 1024
DEFAULT_BRIDGE_PORT = DEFAULT_PORT

TEXTS: dict[str, dict[str, str]] = {
    "brand": {"nb": "Demoportalen", "nn": "Demoportalen", "en": "The demo portal"},
    "title.login": {"nb": "Logg inn – demoportal", "nn": "Logg inn – demoportal", "en": "Log in – demo portal"},
    "heading.login": {"nb": "Logg inn med ID-kort", "nn": "Logg inn med ID-kort", "en": "Log in with your ID card"},
    "intro": {
        "nb": "Sett ID-kortet i kortleseren og trykk på knappen. cardbridge viser hvilket nettsted "
        "som spør, og ber om PIN-koden din.",
        "nn": "Set ID-kortet i kortlesaren og trykk på knappen. cardbridge viser kva nettstad som "
        "spør, og ber om PIN-koden din.",
        "en": "Put your ID card in the card reader and press the button. cardbridge shows which "
        "website is asking and asks for your PIN.",
    },
    "demo_note": {
        "nb": "Dette er en demo. Innloggingen bruker et emulert ID-kort med en fiktiv person.",
        "nn": "Dette er ein demo. Innlogginga brukar eit emulert ID-kort med ein fiktiv person.",
        "en": "This is a demo. The login uses an emulated ID card with a fictitious person.",
    },
    "button": {"nb": "Logg inn med ID-kort", "nn": "Logg inn med ID-kort", "en": "Log in with ID card"},
    "language": {"nb": "Språk", "nn": "Språk", "en": "Language"},
    "title.citizen": {"nb": "Innlogget – demoportal", "nn": "Innlogga – demoportal", "en": "Logged in – demo portal"},
    "heading.citizen": {"nb": "Du er logget inn", "nn": "Du er logga inn", "en": "You are logged in"},
    "name": {"nb": "Navn", "nn": "Namn", "en": "Name"},
    "fodselsnummer": {"nb": "Fødselsnummer", "nn": "Fødselsnummer", "en": "National identity number"},
    "id_code": {"nb": "Identifikator", "nn": "Identifikator", "en": "Identifier"},
    "issuer": {"nb": "Sertifikatutsteder", "nn": "Sertifikatutferdar", "en": "Certificate issuer"},
    "logout": {"nb": "Logg ut", "nn": "Logg ut", "en": "Log out"},
    # Status and error lines of the login page (the JS shows them; the code is shown beside).
    "msg.working": {
        "nb": "Venter på ID-kortet … Følg instruksjonene i PIN-vinduet.",
        "nn": "Ventar på ID-kortet … Følg instruksjonane i PIN-vindauget.",
        "en": "Waiting for your ID card … Follow the instructions in the PIN window.",
    },
    "msg.verifying": {"nb": "Kontrollerer innloggingen …", "nn": "Kontrollerer innlogginga …", "en": "Verifying …"},
    "msg.retries": {"nb": "Du har {n} forsøk igjen.", "nn": "Du har {n} forsøk att.", "en": "You have {n} tries left."},
    "msg.default": {
        "nb": "Innloggingen mislyktes.",
        "nn": "Innlogginga gjekk ikkje.",
        "en": "The login failed.",
    },
    "msg.BRIDGE_NOT_RUNNING": {
        "nb": "Fant ikke cardbridge på denne maskinen. Er programmet installert og startet?",
        "nn": "Fann ikkje cardbridge på denne maskina. Er programmet installert og starta?",
        "en": "cardbridge was not found on this computer. Is it installed and running?",
    },
    "msg.ORIGIN_NOT_ALLOWED": {
        "nb": "cardbridge godtar ikke innlogging fra dette nettstedet.",
        "nn": "cardbridge godtek ikkje innlogging frå denne nettstaden.",
        "en": "cardbridge does not accept logins from this website.",
    },
    "msg.USER_CANCELLED": {"nb": "Du avbrøt innloggingen.", "nn": "Du avbraut innlogginga.", "en": "You cancelled."},
    "msg.USER_TIMEOUT": {
        "nb": "Du svarte ikke i tide. Prøv igjen.",
        "nn": "Du svara ikkje i tide. Prøv igjen.",
        "en": "You did not answer in time. Try again.",
    },
    "msg.TIMEOUT": {
        "nb": "cardbridge svarte ikke i tide. Prøv igjen.",
        "nn": "cardbridge svara ikkje i tide. Prøv igjen.",
        "en": "cardbridge did not answer in time. Try again.",
    },
    "msg.PIN_INCORRECT": {"nb": "Feil PIN-kode.", "nn": "Feil PIN-kode.", "en": "Wrong PIN."},
    "msg.PIN_BLOCKED": {
        "nb": "PIN-koden er sperret. Lås den opp med PUK-koden.",
        "nn": "PIN-koden er sperra. Lås han opp med PUK-koden.",
        "en": "The PIN is blocked. Unblock it with your PUK code.",
    },
    "msg.NO_TOKEN": {
        "nb": "Fant ikke noe ID-kort. Sett kortet i kortleseren.",
        "nn": "Fann ikkje noko ID-kort. Set kortet i kortlesaren.",
        "en": "No ID card was found. Put your card in the reader.",
    },
    "msg.NO_CERTIFICATE": {
        "nb": "ID-kortet har ikke noe sertifikat for innlogging.",
        "nn": "ID-kortet har ikkje noko sertifikat for innlogging.",
        "en": "The ID card has no login certificate.",
    },
    "msg.BUSY": {
        "nb": "ID-kortet er opptatt med noe annet. Prøv igjen om litt.",
        "nn": "ID-kortet er oppteke med noko anna. Prøv igjen om litt.",
        "en": "The ID card is busy. Try again in a moment.",
    },
    "msg.NONCE_USED": {
        "nb": "Denne innloggingen er allerede brukt. Start på nytt.",
        "nn": "Denne innlogginga er alt brukt. Start på nytt.",
        "en": "This login was already used. Start again.",
    },
    "msg.NONCE_EXPIRED": {
        "nb": "Innloggingen tok for lang tid. Start på nytt.",
        "nn": "Innlogginga tok for lang tid. Start på nytt.",
        "en": "The login took too long. Start again.",
    },
}

_ERROR_MESSAGES = [key.removeprefix("msg.") for key in TEXTS if key.startswith("msg.")]


def text(key: str, lang: str) -> str:
    """The demo portal's text ``key`` in ``lang`` (bokmål when missing)."""
    entry = TEXTS[key]
    return entry.get(lang, entry[DEFAULT_LANGUAGE])


def fodselsnummer(id_code: str) -> str | None:
    """The fødselsnummer in a Norwegian ``PNONO-`` semantics identifier, else None."""
    return id_code.removeprefix("PNONO-") if id_code.startswith("PNONO-") else None


@dataclass(frozen=True, slots=True)
class VerifiedCitizen:
    """What the portal verified at one login."""

    name: str
    id_code: str
    fodselsnummer: str | None
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
        return cls(name, identity.id_code, fodselsnummer(identity.id_code), issuer, identity.algorithm, time.time())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "idCode": self.id_code,
            "fodselsnummer": self.fodselsnummer,
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
    lang = request.query.get("lang", DEFAULT_LANGUAGE)
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def _render(name: str, values: Mapping[str, str], raw: Sequence[str] = ()) -> str:
    template = string.Template((TEMPLATE_DIR / name).read_text(encoding="utf-8"))
    return template.substitute({k: v if k in raw else html.escape(v, quote=True) for k, v in values.items()})


def _language_links(path: str, lang: str) -> str:
    names = {"nb": "Bokmål", "nn": "Nynorsk", "en": "English"}
    links = []
    for code, label in names.items():
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
    message = text(f"msg.{code}", lang) if f"msg.{code}" in TEXTS else text("msg.default", lang)
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
        "messages": {key: text(f"msg.{key}", lang) for key in _ERROR_MESSAGES},
    }
    body = _render(
        "login.html",
        {
            "lang": lang,
            "title": text("title.login", lang),
            "brand": text("brand", lang),
            "language_label": text("language", lang),
            "language_links": _language_links("/", lang),
            "config": json.dumps(config, ensure_ascii=False),
            "heading": text("heading.login", lang),
            "intro": text("intro", lang),
            "demo_note": text("demo_note", lang),
            "button": text("button", lang),
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
            "title": text("title.citizen", lang),
            "brand": text("brand", lang),
            "language_label": text("language", lang),
            "language_links": _language_links("/citizen", lang),
            "heading": text("heading.citizen", lang),
            "name_label": text("name", lang),
            "name": citizen.name,
            "id_label": text("fodselsnummer" if citizen.fodselsnummer else "id_code", lang),
            "id_value": citizen.fodselsnummer or citizen.id_code,
            "issuer_label": text("issuer", lang),
            "issuer": citizen.issuer,
            "logout": text("logout", lang),
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
