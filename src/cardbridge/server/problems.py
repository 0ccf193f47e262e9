"""Errors as ``application/problem+json`` (RFC 9457): one table from code to HTTP status,
and the one middleware that turns every failure into a response.

A problem carries ``type`` (``about:blank``), ``title`` (the status phrase), ``status``,
``detail`` (the error's message), our stable ``code``, and ``retriesLeft`` when the card
told. It never carries a stack trace, a PIN, or personal data (the candidates of an
AMBIGUOUS_CERTIFICATE name people: they stay in the log).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import hdrs, web

from cardbridge.errors import (
    CardbridgeError,
    Code,
    HostNotAllowedError,
    InternalError,
    InvalidInputError,
    MethodNotAllowedError,
    NotFoundError,
    OriginNotAllowedError,
    RequestTooLargeError,
    UnsupportedMediaTypeError,
)
from cardbridge.i18n import accept_language, error_message, resolve_language
from cardbridge.server.settings import LANG, SETTINGS

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

HTTP_STATUS: dict[Code, int] = {
    **dict.fromkeys((Code.INVALID_ORIGIN, Code.INVALID_NONCE, Code.INVALID_ARGUMENT), 400),
    **dict.fromkeys(
        (
            Code.ORIGIN_NOT_ALLOWED,
            Code.HOST_NOT_ALLOWED,
            Code.PIN_INCORRECT,
            Code.PIN_BLOCKED,
            Code.PIN_NOT_ACTIVE,
            Code.USER_CANCELLED,
        ),
        403,
    ),
    **dict.fromkeys(
        (Code.NOT_FOUND, Code.NO_TOKEN, Code.NO_CERTIFICATE, Code.KEY_NOT_FOUND, Code.NO_CARD, Code.NO_READERS), 404
    ),
    Code.METHOD_NOT_ALLOWED: 405,
    **dict.fromkeys((Code.USER_TIMEOUT, Code.REQUEST_TIMEOUT), 408),
    **dict.fromkeys((Code.BUSY, Code.CARD_BUSY, Code.AMBIGUOUS_CERTIFICATE, Code.CARD_REMOVED, Code.CARD_RESET), 409),
    Code.REQUEST_TOO_LARGE: 413,
    Code.UNSUPPORTED_MEDIA_TYPE: 415,
    **dict.fromkeys((Code.PIN_INVALID_LENGTH, Code.UNSUPPORTED_KEY, Code.DUAL_USE_KEY, Code.UNSUPPORTED_CARD), 422),
    **dict.fromkeys((Code.INTERNAL, Code.CONFIG_ERROR, Code.PORT_IN_USE), 500),
    **dict.fromkeys((Code.MODULE_ERROR, Code.PINENTRY_FAILED, Code.CARD_ERROR), 502),
    **dict.fromkeys((Code.SERVICE_NOT_RUNNING, Code.MODULE_NOT_FOUND, Code.BRIDGE_STOPPING), 503),
}

# Errors after which the connection is closed: the body did not come, or the bridge stops.
_CLOSE_AFTER = frozenset({Code.REQUEST_TIMEOUT, Code.BRIDGE_STOPPING})

# Details that may leave the bridge; everything else in ``CardbridgeError.details`` stays in the log.
_PUBLIC_DETAILS = frozenset({"minLength", "maxLength"})


def http_status(code: Code) -> int:
    """The HTTP status for ``code`` (500 for a code the table does not know)."""
    return HTTP_STATUS.get(code, 500)


def problem(error: CardbridgeError, headers: dict[str, str] | None = None, lang: str | None = None) -> web.Response:
    """``error`` as a problem+json response; ``text`` says it in plain words in ``lang``
    (for the login page to show), ``detail`` is the technical message."""
    status = http_status(error.code)
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": error.message,
        "code": str(error.code),
        "text": error_message(error, resolve_language(lang)),
    }
    if error.retries_left is not None:
        body["retriesLeft"] = error.retries_left
    body.update({k: v for k, v in error.details.items() if k in _PUBLIC_DETAILS})
    allowed = error.details.get("allowed")
    if isinstance(allowed, list):
        headers = {**(headers or {}), "Allow": ", ".join(str(m) for m in allowed)}
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False),
        content_type=PROBLEM_JSON,
        charset="utf-8",
        headers=headers,
    )


def _from_http_exception(exc: web.HTTPException) -> tuple[CardbridgeError, dict[str, str]]:
    """aiohttp's own refusals (no route, wrong method, body over ``client_max_size``)."""
    headers: dict[str, str] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowedError(f"{exc.method} is not allowed here.", allowed=sorted(exc.allowed_methods)), headers
    if exc.status == 404:
        return NotFoundError("There is no such endpoint."), headers
    if exc.status == 413:
        return RequestTooLargeError("The request body is too large."), headers
    if exc.status == 415:
        return UnsupportedMediaTypeError("The request body must be application/json."), headers
    if 400 <= exc.status < 500:
        return InvalidInputError(exc.reason or "The request is invalid."), headers
    return InternalError("The bridge failed to answer."), headers


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LOG_INTERVAL = 10.0


class RateLimitedLog:
    """One log line per ``interval`` at most; the lines left out are counted in the next."""

    def __init__(self, logger: logging.Logger, level: int, interval: float | None = None) -> None:
        """``interval``: default ``$CARDBRIDGE_LOG_INTERVAL`` seconds, else ``LOG_INTERVAL``."""
        if interval is None:
            interval = float(os.environ.get("CARDBRIDGE_LOG_INTERVAL") or LOG_INTERVAL)
        self._logger = logger
        self._level = level
        self._interval = interval
        self._last = -interval
        self._suppressed = 0

    def __call__(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            self._suppressed += 1
            return
        if self._suppressed:
            message += " (and %d more like it in the last %.0f s)"
            args = (*args, self._suppressed, now - self._last)
        self._last = now
        self._suppressed = 0
        self._logger.log(self._level, message, *args)


# A refused request (bad input, a foreign Host or Origin) is logged one line per interval:
# a hostile client must not wash the log files away (they rotate at 1 MiB).
_refusals = RateLimitedLog(log, logging.INFO)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place where a failure becomes a response."""
    try:
        return await handler(request)
    except CardbridgeError as error:
        refused = isinstance(error, InvalidInputError | HostNotAllowedError | OriginNotAllowedError)
        (_refusals if refused else log.info)(
            "%s %s: %s: %s", request.method, request.path[:100], error.code, error.message
        )
        response = problem(error, lang=_language(request))
        if error.code in _CLOSE_AFTER:
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        converted, headers = _from_http_exception(exc)
        _refusals("%s %s: %s", request.method, request.path[:100], converted.code)
        return problem(converted, headers, lang=_language(request))
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return problem(InternalError("Unexpected error in the bridge; see its log."), lang=_language(request))


def _language(request: web.Request) -> str:
    """The request's language: as its body's ``lang`` chose it, else from ``Accept-Language``
    and the bridge's setting by the same rule (:func:`~cardbridge.i18n.resolve_language`)."""
    if LANG in request:
        return request[LANG]
    return resolve_language(*accept_language(request.headers.get(hdrs.ACCEPT_LANGUAGE, "")), request.app[SETTINGS].lang)
