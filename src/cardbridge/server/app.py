"""The application factory: guards and problem+json as middleware, typed state, lifetimes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from aiohttp import web

from cardbridge import __version__
from cardbridge.server.guards import add_cors_headers, guard_middleware
from cardbridge.server.problems import problem_middleware
from cardbridge.server.routes import STOPPING_EVENT, routes
from cardbridge.server.settings import OPENAPI, SERVICE, SETTINGS, STOPPING, ServerSettings
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
    """Lifetime of the event streams (see ``_end_event_streams``)."""
    app[STOPPING] = asyncio.Event()
    yield
    app[STOPPING].set()


async def _end_event_streams(app: web.Application) -> None:
    """``on_shutdown``, before the server waits for handlers: each open event stream gets
    ``server-stopping`` and ends, so shutdown does not wait for them."""
    app[STOPPING].set()
    app[SERVICE].publish({"type": STOPPING_EVENT})


def create_app(service: CardService, settings: ServerSettings) -> web.Application:
    """The HTTP API over ``service``. The caller owns ``service`` (and closes it)."""
    app = web.Application(
        middlewares=[problem_middleware, guard_middleware],
        client_max_size=settings.max_body,
    )
    app[SERVICE] = service
    app[SETTINGS] = settings
    app[OPENAPI] = openapi_document(settings.port)
    app.cleanup_ctx.append(_event_streams)
    app.on_shutdown.append(_end_event_streams)
    app.on_response_prepare.append(add_cors_headers)
    app.add_routes(routes)
    return app
