"""The endpoints under ``/v1``. Bodies are read with a limit and checked field by field;
the origin always comes from the ``Origin`` header (the guard put it in ``request[ORIGIN]``),
never from the body. A GET never touches a card."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from typing import Any

from aiohttp import web

from cardbridge import __version__
from cardbridge.authtoken import b64, check_nonce
from cardbridge.errors import (
    CardbridgeError,
    InvalidInputError,
    ModuleError,
    OriginNotAllowedError,
    RequestTooLargeError,
    ServiceNotRunningError,
)
from cardbridge.i18n import request_language
from cardbridge.model import HASH_LENGTHS
from cardbridge.pinentry import ConsentSource, PinentrySource
from cardbridge.server.settings import LANG, OPENAPI, ORIGIN, SERVICE, SETTINGS, STOPPING
from cardbridge.service import Selection

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

STOPPING_EVENT = "server-stopping"
_BASE64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


# -- request bodies ----------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidInputError(f"The field {key!r} appears more than once.")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise InvalidInputError(f"{name} is not JSON.")


async def read_json(request: web.Request, required: frozenset[str], optional: frozenset[str]) -> dict[str, Any]:
    """The body as a JSON object with exactly the ``required`` fields and some ``optional``
    ones; read with the size limit even when no Content-Length was sent."""
    limit = request.app[SETTINGS].max_body
    data = bytearray()
    while True:
        chunk = await request.content.read(limit + 1 - len(data))
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise RequestTooLargeError(f"The request body is larger than {limit} bytes.")
    try:
        body = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidInputError("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise InvalidInputError("The request body must be a JSON object.")
    missing = sorted(required - body.keys())
    if missing:
        raise InvalidInputError(f"The field {missing[0]!r} is missing.")
    unknown = sorted(body.keys() - required - optional)
    if unknown:
        raise InvalidInputError(f"Unknown field {unknown[0][:40]!r}.")
    for key, value in body.items():
        if not isinstance(value, str):
            raise InvalidInputError(f"The field {key!r} must be a string.")
    origin = body.get("origin")
    if origin is not None and origin != request[ORIGIN]:
        raise OriginNotAllowedError("The origin in the body differs from the browser's Origin header.")
    return body


def _lang(request: web.Request, body: dict[str, Any]) -> str:
    resolved = request_language(body.get("lang"), request.app[SETTINGS].lang)
    request[LANG] = resolved
    return resolved


def _base64(body: dict[str, Any], key: str) -> bytes:
    value: str = body[key]
    if not _BASE64.match(value):
        raise InvalidInputError(f"The field {key!r} must be standard base64 with padding.")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise InvalidInputError(f"The field {key!r} must be standard base64 with padding.") from exc


def _selection(request: web.Request) -> Selection:
    return Selection(token_label=request.app[SETTINGS].token_label)


# -- endpoints ---------------------------------------------------------------------------


async def status_body(request: web.Request) -> dict[str, Any]:
    """Version, readers and tokens: names and presence only; no certificate, no person."""
    service = request.app[SERVICE]
    errors: list[CardbridgeError] = []
    try:
        readers = service.readers()
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
    return {
        "version": __version__,
        "busy": service.busy,
        "pcsc": pcsc,
        "readers": [{"name": r.name, "cardPresent": r.card_present} for r in readers or ()],
        "tokens": [
            {
                "label": t.label,
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


@routes.get("/v1/status", allow_head=False)
async def status(request: web.Request) -> web.Response:
    return web.json_response(await status_body(request))


@routes.get("/v1/openapi.json", allow_head=False)
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


@routes.post("/v1/authenticate")
async def authenticate(request: web.Request) -> web.Response:
    body = await read_json(request, frozenset({"challengeNonce"}), frozenset({"lang", "origin"}))
    nonce = check_nonce(body["challengeNonce"])
    service, settings = request.app[SERVICE], request.app[SETTINGS]
    token = await service.authenticate(
        request[ORIGIN], nonce, settings.new_pin_source(), lang=_lang(request, body), selection=_selection(request)
    )
    return web.json_response(token.to_dict())


@routes.post("/v1/signing-certificate")
async def signing_certificate(request: web.Request) -> web.Response:
    body = await read_json(request, frozenset(), frozenset({"lang", "origin"}))
    settings = request.app[SETTINGS]
    source = settings.new_pin_source()
    # The certificate names the person: it goes to the page only after they agree in a dialog.
    consent = source if isinstance(source, ConsentSource) else PinentrySource(settings.pinentry_program)
    certificate, algorithms = await request.app[SERVICE].signing_certificate(
        request[ORIGIN], consent, lang=_lang(request, body), selection=_selection(request)
    )
    return web.json_response(
        {"certificate": b64(certificate.der), "supportedSignatureAlgorithms": [a.to_webeid() for a in algorithms]}
    )


@routes.post("/v1/sign")
async def sign(request: web.Request) -> web.Response:
    body = await read_json(request, frozenset({"certificate", "hash", "hashFunction"}), frozenset({"lang", "origin"}))
    hash_function = body["hashFunction"]
    if hash_function not in HASH_LENGTHS:
        raise InvalidInputError(f"hashFunction must be one of {', '.join(HASH_LENGTHS)}.")
    certificate = _base64(body, "certificate")
    digest = _base64(body, "hash")
    if len(digest) != HASH_LENGTHS[hash_function]:
        raise InvalidInputError(f"The hash does not have the length of {hash_function}.")
    service, settings = request.app[SERVICE], request.app[SETTINGS]
    signature, algorithm = await service.sign(
        request[ORIGIN], certificate, digest, hash_function, settings.new_pin_source(), lang=_lang(request, body)
    )
    return web.json_response({"signature": b64(signature), "signatureAlgorithm": algorithm.to_webeid()})


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@routes.get("/v1/events", allow_head=False)
async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: ``status`` first (as GET /v1/status), then one event per reader
    or card change (``reader-added``, ``card-inserted``, …), and a comment now and then."""
    service, settings = request.app[SERVICE], request.app[SETTINGS]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
    with service.subscribe() as subscription:
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
                await response.write(_sse(str(event.get("type", "event")), event))
                if event.get("type") == STOPPING_EVENT:
                    break
        except ConnectionError:
            log.debug("an event stream's client went away")
    return response
