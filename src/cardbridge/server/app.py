"""The application factory: guards and problem+json as middleware, typed state, lifetimes."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from aiohttp import hdrs, web

from cardbridge import __version__
from cardbridge.errors import BridgeStoppingError
from cardbridge.server.guards import add_cors_headers, guard_middleware
from cardbridge.server.problems import Handler, problem_middleware
from cardbridge.server.routes import STOPPING_EVENT, routes
from cardbridge.server.settings import ID_KEY, OPENAPI, OPERATIONS, SERVICE, SETTINGS, STOPPING, ServerSettings
from cardbridge.service import CardService


def openapi_document(port: int | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the API (``server/openapi.json``), for this version."""
    text = resources.files("cardbridge.server").joinpath("openapi.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    document["info"]["version"] = __version__
    if port is not None:
        document["servers"] = [{"url": f"http://127.0.0.1:{port}"}]
    return document


async def _event_streams(app: web.Application) -> AsyncIterator[None]:
    """Lifetime of the event streams and card operations (see ``begin_stopping``)."""
    app[STOPPING] = asyncio.Event()
    app[OPERATIONS] = {}
    yield
    app[STOPPING].set()


def begin_stopping(app: web.Application) -> set[asyncio.Future[Any]]:
    """The bridge is stopping: each open event stream gets ``server-stopping`` and ends;
    each card operation under way is cancelled now (its dialog closes, nothing is signed)
    and answered BRIDGE_STOPPING at once, without waiting for its clean-up; a new one is
    refused. Returns the cancelled operations' tasks (to wait for their clean-up).
    Synchronous: a signal handler calls it."""
    if STOPPING not in app or app[STOPPING].is_set():
        return set()
    app[STOPPING].set()
    app[SERVICE].events.publish({"type": STOPPING_EVENT})
    operations: dict[asyncio.Future[Any], asyncio.Future[None]] = app[OPERATIONS]
    for work, stopped in operations.items():
        work.cancel()
        if not stopped.done():
            stopped.set_result(None)
    return set(operations)


async def _end_event_streams(app: web.Application) -> None:
    """``on_shutdown``, before the server waits for handlers (see ``begin_stopping``)."""
    begin_stopping(app)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # an answer dropped at the stop: its error is not "never retrieved"


class _Outcome(asyncio.Future[None]):
    """Done when a card operation's task is done or the bridge stops. Cancelling it (as
    aiohttp does when the client goes away) cancels the operation's task at once, in the
    same call, as if the handler had awaited it directly: no card call slips in between."""

    def __init__(self, work: asyncio.Future[Any]) -> None:
        super().__init__()
        self.work = work
        work.add_done_callback(self._work_done)

    def _work_done(self, _: asyncio.Future[Any]) -> None:
        if not self.done():
            self.set_result(None)

    def cancel(self, msg: Any = None) -> bool:
        self.work.cancel(msg)
        return super().cancel(msg)


@web.middleware
async def stopping_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Card operations (every POST) run as a task of their own, so that a stop can answer
    them BRIDGE_STOPPING at once while the task closes its dialog. An answer that was
    ready only after the stop is dropped: no token leaves the bridge after the signal. A
    client that goes away cancels the operation, as before."""
    if request.method != hdrs.METH_POST:
        return await handler(request)
    app = request.app
    stopping = BridgeStoppingError("The bridge is stopping; nothing was signed.")
    if app[STOPPING].is_set():
        raise stopping
    work: asyncio.Future[web.StreamResponse] = asyncio.ensure_future(handler(request))
    outcome = _Outcome(work)
    operations: dict[asyncio.Future[Any], asyncio.Future[None]] = app[OPERATIONS]
    operations[work] = outcome
    work.add_done_callback(lambda done: operations.pop(done, None))
    work.add_done_callback(_retrieve)
    await outcome  # cancelled with the handler when the client goes away
    if app[STOPPING].is_set() or not work.done():
        work.cancel()
        raise stopping
    return work.result()


def create_app(service: CardService, settings: ServerSettings) -> web.Application:
    """The HTTP API over ``service``. The caller owns ``service`` (and closes it)."""
    app = web.Application(
        middlewares=[problem_middleware, guard_middleware, stopping_middleware],
        client_max_size=settings.max_body,
    )
    app[SERVICE] = service
    app[ID_KEY] = secrets.token_bytes(32)
    app[SETTINGS] = settings
    app[OPENAPI] = openapi_document(settings.port)
    app.cleanup_ctx.append(_event_streams)
    app.on_shutdown.append(_end_event_streams)
    app.on_response_prepare.append(add_cors_headers)
    app.add_routes(routes)
    return app
