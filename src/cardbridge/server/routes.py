"""The endpoints under ``/v1``. Bodies are read with a limit and checked field by field;
the origin always comes from the ``Origin`` header (the guard put it in ``request[ORIGIN]``),
never from the body. A GET never logs in or signs: ``/v1/status`` lists the tokens
(C_GetSlotList and C_GetTokenInfo on the module's worker), nothing else reads a card."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from typing import Any

from aiohttp import hdrs, web

from cardbridge import __version__
from cardbridge.authtoken import b64
from cardbridge.errors import (
    CardbridgeError,
    InvalidInputError,
    ModuleError,
    OriginNotAllowedError,
    RequestTimeoutError,
    RequestTooLargeError,
    ServiceNotRunningError,
)
from cardbridge.i18n import accept_language, request_language
from cardbridge.model import TokenInfo
from cardbridge.pinentry import ConsentSource, PinentrySource
from cardbridge.server.decode import decode_authenticate, decode_sign, decode_signing_certificate
from cardbridge.server.guards import continue_if_allowed, origin_allowed
from cardbridge.server.settings import ID_KEY, LANG, OPENAPI, ORIGIN, SERVICE, SETTINGS, STOPPING
from cardbridge.service import Selection

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

STOPPING_EVENT = "server-stopping"


# -- request bodies ----------------------------------------------------------------------


async def read_body(request: web.Request) -> bytes:
    """The body, read with the size limit (even without a Content-Length) and within the
    request deadline: a body that stops coming, or breaks (a bad chunk, a bad encoding),
    is a 4xx problem and the connection is closed."""
    settings = request.app[SETTINGS]
    limit = settings.max_body
    data = bytearray()
    try:
        async with asyncio.timeout(settings.request_timeout):
            while True:
                chunk = await request.content.read(limit + 1 - len(data))
                if not chunk:
                    break
                data += chunk
                if len(data) > limit:
                    raise RequestTooLargeError(f"The request body is larger than {limit} bytes.")
    except TimeoutError:
        raise RequestTimeoutError(
            f"The request body did not arrive within {settings.request_timeout:g} seconds."
        ) from None
    except web.RequestPayloadError as exc:  # a broken chunk or content encoding
        raise InvalidInputError("The request body is malformed.") from exc
    return bytes(data)


def check_body_origin(request: web.Request, origin: str | None) -> None:
    """A body may repeat the origin, but only the browser's (the Origin header)."""
    if origin is not None and origin != request[ORIGIN]:
        raise OriginNotAllowedError("The origin in the body differs from the browser's Origin header.")


def _lang(request: web.Request, lang: str | None) -> str:
    """The request's language: its body's ``lang``, else ``Accept-Language``, else the bridge's
    setting, by the one rule (a language we lack means English; nothing named, bokmål)."""
    header = accept_language(request.headers.get(hdrs.ACCEPT_LANGUAGE, ""))
    resolved = request_language(lang, *header, request.app[SETTINGS].lang)
    request[LANG] = resolved
    return resolved


def _selection(request: web.Request) -> Selection:
    return Selection(token_label=request.app[SETTINGS].token_label)


# -- endpoints ---------------------------------------------------------------------------


def token_id(key: bytes, origin: str, token: TokenInfo) -> str:
    """An opaque id for ``token`` as seen by ``origin``: the same card gives the same id to
    the same origin while the bridge runs, and nothing that another origin (or a later run)
    could match. HMAC-SHA-256 under a per-process random key, 96 bits, base64url."""
    identity = "\0".join((token.backend, token.source, token.serial, token.label))
    mac = hmac.new(key, f"{origin}\0{identity}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:12]).decode("ascii")


async def status_body(request: web.Request) -> dict[str, Any]:
    """Version, readers and tokens for a web origin: reader names, presence and the kind of
    card, never a token's label or serial (on many cards the label is the holder's name);
    each token has an opaque per-origin ``id`` instead. An origin that is not allowed (yet)
    learns only that the bridge answers, and its version."""
    if not origin_allowed(request):
        return {"version": __version__}
    service = request.app[SERVICE]
    errors: list[CardbridgeError] = []
    try:
        readers = service.events.readers()
        pcsc: dict[str, Any] = {"watched": readers is not None, "running": True if readers is not None else None}
    except ServiceNotRunningError as exc:
        readers, pcsc = [], {"watched": True, "running": False}
        errors.append(exc)
    try:
        tokens, token_errors = await asyncio.wait_for(service.token_infos(), request.app[SETTINGS].status_timeout)
        errors.extend(token_errors)
    except TimeoutError:
        tokens = []
        errors.append(ModuleError("A PKCS#11 module did not answer in time."))
    key, origin = request.app[ID_KEY], request.get(ORIGIN, "")
    return {
        "version": __version__,
        "busy": service.busy,
        "pcsc": pcsc,
        "readers": [{"name": r.name, "cardPresent": r.card_present} for r in readers or ()],
        "tokens": [
            {
                "id": token_id(key, origin, t),
                "backend": t.backend,
                "manufacturer": t.manufacturer,
                "model": t.model,
                "cardPresent": True,
                **({"reader": t.reader} if t.reader is not None else {}),
            }
            for t in tokens
        ],
        "errors": [{"code": str(e.code), "message": e.message} for e in errors],
    }


_CARD_FIELDS = ("name", "driver", "known")


def public_event(event: dict[str, Any]) -> dict[str, Any]:
    """A card or reader event as a web origin may see it: its type, the reader's name and
    the kind of card (name, driver, known); nothing else (no ATR, no module path)."""
    out: dict[str, Any] = {"type": str(event.get("type", "event"))}
    reader = event.get("reader")
    if isinstance(reader, str):
        out["reader"] = reader
    card = event.get("card")
    if isinstance(card, dict):
        out["card"] = {k: card[k] for k in _CARD_FIELDS if k in card}
    return out


@routes.get("/v1/status", allow_head=False, expect_handler=continue_if_allowed)
async def status(request: web.Request) -> web.Response:
    return web.json_response(await status_body(request))


@routes.get("/v1/openapi.json", allow_head=False, expect_handler=continue_if_allowed)
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


@routes.post("/v1/authenticate", expect_handler=continue_if_allowed)
async def authenticate(request: web.Request) -> web.Response:
    body = decode_authenticate(await read_body(request))
    check_body_origin(request, body.origin)
    service, settings = request.app[SERVICE], request.app[SETTINGS]
    token = await service.authenticate(
        request[ORIGIN],
        body.challenge_nonce,
        settings.new_pin_source(),
        lang=_lang(request, body.lang),
        selection=_selection(request),
    )
    return web.json_response(token.to_dict())


@routes.post("/v1/signing-certificate", expect_handler=continue_if_allowed)
async def signing_certificate(request: web.Request) -> web.Response:
    body = decode_signing_certificate(await read_body(request))
    check_body_origin(request, body.origin)
    settings = request.app[SETTINGS]
    source = settings.new_pin_source()
    # The certificate names the person: it goes to the page only after they agree in a dialog.
    consent = source if isinstance(source, ConsentSource) else PinentrySource(settings.pinentry_program)
    certificate, algorithms = await request.app[SERVICE].signing_certificate(
        request[ORIGIN], consent, lang=_lang(request, body.lang), selection=_selection(request)
    )
    return web.json_response(
        {"certificate": b64(certificate.der), "supportedSignatureAlgorithms": [a.to_webeid() for a in algorithms]}
    )


@routes.post("/v1/sign", expect_handler=continue_if_allowed)
async def sign(request: web.Request) -> web.Response:
    body = decode_sign(await read_body(request))
    check_body_origin(request, body.origin)
    service, settings = request.app[SERVICE], request.app[SETTINGS]
    signature, algorithm = await service.sign(
        request[ORIGIN],
        body.certificate,
        body.digest,
        body.hash_function,
        settings.new_pin_source(),
        lang=_lang(request, body.lang),
    )
    return web.json_response({"signature": b64(signature), "signatureAlgorithm": algorithm.to_webeid()})


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@routes.get("/v1/events", allow_head=False, expect_handler=continue_if_allowed)
async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: ``status`` first (as GET /v1/status), then one event per reader
    or card change (``reader-added``, ``card-inserted``, …), and a comment now and then."""
    service, settings = request.app[SERVICE], request.app[SETTINGS]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
    allowed = origin_allowed(request)  # else: the version, keep-alives and the end, nothing of cards
    with service.events.subscribe() as subscription:
        snapshot = await status_body(request)
        await response.prepare(request)
        try:
            await response.write(_sse("status", snapshot))
            while not request.app[STOPPING].is_set():
                try:
                    event = await asyncio.wait_for(subscription.get(), settings.heartbeat)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if not allowed and event.get("type") != STOPPING_EVENT:
                    continue
                public = public_event(event)
                await response.write(_sse(public["type"], public))
                if event.get("type") == STOPPING_EVENT:
                    break
        except ConnectionError:
            log.debug("an event stream's client went away")
    return response
