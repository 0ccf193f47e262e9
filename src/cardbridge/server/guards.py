"""The guards every request passes before a handler runs and before any body is read:
``Host`` (DNS rebinding), ``Origin`` (the policy: allowed, or new and about to be asked),
CORS preflight, ``Content-Type`` and ``Content-Length``. CORS headers go only to an origin
that passed, and only that origin is echoed: never ``*``, never ``Allow-Credentials``.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from cardbridge.authtoken import check_origin
from cardbridge.errors import (
    CardbridgeError,
    HostNotAllowedError,
    InvalidOriginError,
    MethodNotAllowedError,
    NotFoundError,
    OriginNotAllowedError,
    RequestTooLargeError,
    UnsupportedMediaTypeError,
)
from cardbridge.origins import Decision
from cardbridge.server.problems import Handler
from cardbridge.server.settings import ORIGIN, SERVICE, SETTINGS

PREFLIGHT_MAX_AGE = "600"
ALLOWED_METHODS = "GET, POST"
ALLOWED_HEADERS = "Content-Type"
# Paths that answer without an Origin (a static, public document); an Origin, when sent,
# must still be allowed.
ORIGIN_OPTIONAL = frozenset({"/v1/openapi.json"})
SITE_DECISION = web.RequestKey("site_decision", Decision)  # the policy's, once per request


def check_host(request: web.Request) -> None:
    hosts = request.headers.getall(hdrs.HOST, [])
    if len(hosts) != 1 or hosts[0] not in request.app[SETTINGS].hosts():
        raise HostNotAllowedError("The Host header must name the bridge's loopback address and port.")
    if not request.raw_path.startswith("/"):  # absolute-form: its authority would outrank Host
        raise HostNotAllowedError("The request target must be a path, not a URL.")


async def check_origin_header(request: web.Request) -> str | None:
    """The origin of the request when it may pass; None only where an Origin is optional
    and absent. It passes when it is allowed (``allowed_origins``, or the person allowed it),
    or, under ``origin_policy = "ask"``, when it is an https origin nobody has answered for
    yet (http://localhost too where development allows it): the service asks the person
    about it before any card is touched, and until then it learns nothing about readers and
    cards (:func:`origin_allowed`). The policy decides once per request (off the event loop:
    it reads the person's answers from a file); the guards and handlers share that decision."""
    origins = request.headers.getall(hdrs.ORIGIN, [])
    if not origins and request.path in ORIGIN_OPTIONAL:
        return None
    if len(origins) != 1:
        raise OriginNotAllowedError("The request must carry exactly one Origin header.")
    origin = origins[0]
    service = request.app[SERVICE]
    decision = request.get(SITE_DECISION)  # decided already (by the Expect handler)
    if decision is None:
        decision = await service.site_decision(origin)
        if decision is None:  # a service with no policy: the settings' list alone
            decision = Decision.ALLOW if origin in request.app[SETTINGS].allowed_origins else Decision.DENY
        request[SITE_DECISION] = decision
    # The policy decides first: a denied site stays denied whatever list also names it.
    if decision is Decision.ALLOW or (decision is Decision.ASK and _web_origin(origin, service.allow_http_localhost)):
        return origin
    raise OriginNotAllowedError("This site is not allowed to use the ID card bridge.")


def _web_origin(origin: str, allow_http_localhost: bool) -> bool:
    """An origin in the browser's form: https (http://localhost only in development)."""
    try:
        return check_origin(origin, allow_http_localhost=allow_http_localhost) == origin
    except InvalidOriginError:
        return False


def origin_allowed(request: web.Request) -> bool:
    """Whether the request's origin is allowed (not just on its way to the question), as
    the policy decided for this request in :func:`check_origin_header`."""
    return request.get(ORIGIN) is not None and request.get(SITE_DECISION) is Decision.ALLOW


def _route_error(request: web.Request) -> None:
    exc = request.match_info.http_exception
    if exc is None:
        return
    if isinstance(exc, web.HTTPMethodNotAllowed):
        raise MethodNotAllowedError(f"{request.method} is not allowed here.", allowed=sorted(exc.allowed_methods))
    raise NotFoundError("There is no such endpoint.")


def preflight(request: web.Request) -> web.Response:
    """204 for a CORS preflight from an allowed origin (the origin header is added on prepare)."""
    headers = {
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
    }
    if request.headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
        headers["Access-Control-Allow-Private-Network"] = "true"
    return web.Response(status=204, headers=headers)


def check_body_headers(request: web.Request) -> None:
    """A POST body must be uncompressed UTF-8 JSON and announce a size within the limit (it
    is also read with one)."""
    if request.content_type != "application/json":
        raise UnsupportedMediaTypeError("The request body must be application/json.")
    charset = request.charset
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaTypeError("The request body must be UTF-8 JSON.")
    # No browser compresses a request body; a compressed one is refused unread (no
    # decompression of anything a client sends).
    encodings = ",".join(request.headers.getall(hdrs.CONTENT_ENCODING, []))
    if any(e.strip().lower() not in ("", "identity") for e in encodings.split(",")):
        raise UnsupportedMediaTypeError("The request body must not be compressed (Content-Encoding).")
    length = request.content_length
    limit = request.app[SETTINGS].max_body
    if length is not None and length > limit:
        raise RequestTooLargeError(f"The request body is larger than {limit} bytes.")


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    check_host(request)
    origin = await check_origin_header(request)
    if origin is not None:
        request[ORIGIN] = origin
    if request.method == hdrs.METH_OPTIONS and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers:
        exc = request.match_info.http_exception
        if exc is not None and not isinstance(exc, web.HTTPMethodNotAllowed):
            raise NotFoundError("There is no such endpoint.")
        return preflight(request)
    _route_error(request)
    if request.method == hdrs.METH_POST:
        check_body_headers(request)
    return await handler(request)


async def continue_if_allowed(request: web.Request) -> web.StreamResponse | None:
    """The routes' ``Expect`` handler: ``100 Continue`` invites the body only when the
    guards pass; otherwise (and for any other expectation) nothing is sent before the
    answer, which the guards and handlers give as usual (never a bare 417)."""
    if request.headers.get(hdrs.EXPECT, "").strip().lower() != "100-continue" or request.version < (1, 1):
        return None
    try:
        check_host(request)
        await check_origin_header(request)
        if request.method == hdrs.METH_POST:
            check_body_headers(request)
    except CardbridgeError:
        return None
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    return None


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every response to an allowed origin names that origin."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Cache-Control", "no-store")
    origin = request.get(ORIGIN)
    if origin is None:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    vary = response.headers.get(hdrs.VARY)
    if vary is None:
        response.headers[hdrs.VARY] = "Origin"
    elif "origin" not in vary.lower():
        response.headers[hdrs.VARY] = vary + ", Origin"
