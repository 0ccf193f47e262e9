"""Limits on what a client can hold: time and connections.

- Time: a client has ``request_timeout`` seconds, from the connection's start or the end of
  its last answer, to send a request's head (aiohttp closes a connection that has not sent
  a whole head by then: the keep-alive timer runs while the connection waits for a head);
  an idle keep-alive connection closes after as long; the body has as long again once the
  handler reads it (``routes.read_body``).
- Connections: at most :func:`connection_cap` open at once, below the descriptor limit;
  one more is closed as soon as it is accepted, with no traceback and at most one log line
  per interval. Should the process still run out of descriptors, asyncio's accept error is
  one rate-limited line too (:func:`quiet_accept_errors`).
- Users: on Linux a connection from a program of another user (loopback is shared by all
  users) is closed as soon as it is accepted, nothing read or written, one rate-limited
  log line (:mod:`cardbridge.server.peers`).
- A malformed request (aiohttp's parser refused it) is answered with problem+json and
  logged as one rate-limited line, never a traceback.

aiohttp has no public API for a connection cap or for the answer to a request its parser
refused (its issue 3287 asks for one; no middleware sees such a request), so this module
relies on these aiohttp internals, checked by tests/server/test_aiohttp_internals.py
(pyproject.toml bounds aiohttp to the minor version they were checked with):

- ``web.AppRunner._make_server()``: where the runner makes its ``web.Server`` (the app's
  handler and request factory, after the app's startup); overridden to make a
  :class:`BridgeServer` from it;
- ``web.Server``'s attributes ``request_handler``, ``request_factory``,
  ``handler_cancellation`` and ``_kwargs``: what the app's server was made with (``_kwargs``:
  the keyword arguments for each ``web.RequestHandler``: access log, timeouts, debug flag,
  the app's handler_args);
- ``web.RequestHandler(manager, loop=…, **kwargs)`` and its ``handle_error(request,
  status, exc, message)``: the connection's protocol, and the method aiohttp answers a
  refused request (and a handler's crash or timeout) with.

The rest is aiohttp's public API: ``web.Server`` is a protocol factory for
``loop.create_server`` (one call, one ``RequestHandler``) whose ``connections`` lists the
open connections; ``BaseRequest.writer.output_size`` (``aiohttp.abc.AbstractStreamWriter``)
counts what was sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from cardbridge.errors import CardbridgeError, InternalError, InvalidInputError, RequestTooLargeError
from cardbridge.server.peers import same_user
from cardbridge.server.problems import RateLimitedLog, problem

log = logging.getLogger(__name__)

# Descriptors kept for everything else (log files, the PKCS#11 modules' files, pinentry
# pipes, the PC/SC socket, listening sockets): a quarter of the limit, at least this many.
RESERVED_DESCRIPTORS = 64
# The listen backlog, which is also how many connections asyncio accepts in one go: a
# refused connection holds its descriptor for a few loop turns, so two such bursts are
# kept free as well.
ACCEPT_BACKLOG = 128
MAX_CONNECTIONS = 1024  # a bridge for one person's browser never needs more
# Where the descriptor limit cannot be read (no ``resource`` module: Windows): 512 sockets
# is what select() on Windows handles (FD_SETSIZE), which gives a cap of 128 connections.
FALLBACK_DESCRIPTORS = 512


def connection_cap(limit: int | None = None) -> int:
    """How many connections the server keeps open at most, from the soft RLIMIT_NOFILE
    (``limit`` when given): a quarter of the descriptors (at least 64) stays free, and
    room for two accept bursts (1,024 descriptors: 512 connections). Without the
    ``resource`` module (Windows), a fixed :data:`FALLBACK_DESCRIPTORS`."""
    if limit is None:
        try:
            import resource
        except ImportError:
            limit = FALLBACK_DESCRIPTORS
        else:
            soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            limit = soft if soft != resource.RLIM_INFINITY else 1 << 20
    reserve = max(RESERVED_DESCRIPTORS, limit // 4) + 2 * ACCEPT_BACKLOG
    return max(8, min(MAX_CONNECTIONS, limit - reserve))


class _Refused(asyncio.Protocol):
    """A connection over the cap: closed as soon as it is made, nothing read or written."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class BridgeRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, with problem+json and one log line for a request its
    parser refused (instead of text/plain and an ERROR with a traceback)."""

    def __init__(self, server: BridgeServer, **kwargs: Any) -> None:
        super().__init__(server, **kwargs)
        self.bridge = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self.bridge
        server.connected(self)
        super().connection_made(transport)
        if not same_user(transport.get_extra_info("peername"), transport.get_extra_info("sockname")):
            server.foreign("refused a connection from another user's program (port %s)", _port(transport))
            transport.close()  # before a byte is read: no answer at all

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        error: CardbridgeError
        if status >= 500:
            # Only a bug gets here (the problem middleware answers every handler error).
            log.error("error handling a request: %s: %s", type(exc).__name__, exc)
            error = InternalError("The bridge failed to answer.")
        else:
            reason = f"{type(exc).__name__}: {str(exc)[:120]!r}" if exc is not None else (message or "")
            self.bridge.malformed("malformed request refused (%s): %s", status, reason)
            if status in (413, 431):
                error = RequestTooLargeError("The request is too large.")
            else:
                error = InvalidInputError("The request is malformed.")
        if request.writer.output_size > 0:
            raise ConnectionError("part of the answer was sent already")
        response = problem(error)
        response.force_close()
        return response


def _port(transport: asyncio.BaseTransport) -> object:
    peer = transport.get_extra_info("peername")
    return peer[1] if peer else "?"


class BridgeServer(web.Server):
    """aiohttp's server with a cap on open connections."""

    def __init__(
        self,
        handler: Any,
        *,
        loop: asyncio.AbstractEventLoop,
        max_connections: int,
        request_factory: Any = None,
        handler_cancellation: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            handler, request_factory=request_factory, handler_cancellation=handler_cancellation, loop=loop, **kwargs
        )
        self.max_connections = max_connections
        self.loop = loop
        self.handler_kwargs = kwargs  # for each RequestHandler, as web.Server passes them
        # Handlers made but not yet connected (asyncio connects them a loop turn later).
        self._pending: dict[BridgeRequestHandler, float] = {}
        self.malformed = RateLimitedLog(log, logging.INFO)
        self._refusal_log = RateLimitedLog(log, logging.WARNING)
        self.foreign = RateLimitedLog(log, logging.WARNING)

    @property
    def open_connections(self) -> int:
        return len(self.connections) + len(self._pending)

    def connected(self, handler: BridgeRequestHandler) -> None:
        self._pending.pop(handler, None)

    def __call__(self) -> Any:  # the protocol factory
        if self._pending:
            stale = time.monotonic() - 5.0  # never connected (the accept failed): forget it
            for handler in [h for h, made in self._pending.items() if made < stale]:
                del self._pending[handler]
        if self.open_connections >= self.max_connections:
            self._refusal_log(
                "refused a connection: %d are open, the limit is %d", self.open_connections, self.max_connections
            )
            return _Refused()
        handler = BridgeRequestHandler(self, loop=self.loop, **self.handler_kwargs)
        self._pending[handler] = time.monotonic()
        return handler


class BridgeRunner(web.AppRunner):
    """``web.AppRunner`` whose server is a :class:`BridgeServer`."""

    def __init__(self, app: web.Application, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.max_connections = max_connections

    async def _make_server(self) -> web.Server:  # aiohttp internal (see the module's docstring)
        plain = await super()._make_server()  # runs the app's startup, freezes it
        return BridgeServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=asyncio.get_running_loop(),
            max_connections=self.max_connections,
            **plain._kwargs,
        )


@contextmanager
def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """While inside: asyncio's "socket.accept() out of system resource" (EMFILE and the
    like; asyncio retries the accept a second later) is one rate-limited warning line
    instead of a traceback each time; other loop errors go where they went before."""
    previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None = loop.get_exception_handler()
    out_of_resources = RateLimitedLog(log, logging.WARNING)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            out_of_resources("cannot accept connections: %s", context.get("exception"))
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    try:
        yield
    finally:
        loop.set_exception_handler(previous)
