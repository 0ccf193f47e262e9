"""The localhost HTTP API (aiohttp): guards, routes, problem+json errors, OpenAPI.

``create_app(service, settings)`` builds the application; ``run_server`` binds it to
loopback (127.0.0.1 and [::1]) for ``cardbridge serve``. The only package besides
``portal`` that imports aiohttp.
"""

from __future__ import annotations

from cardbridge.server.app import create_app, openapi_document
from cardbridge.server.run import bind_loopback, make_runner, run_server
from cardbridge.server.settings import MAX_BODY, ServerSettings

__all__ = [
    "MAX_BODY",
    "ServerSettings",
    "bind_loopback",
    "create_app",
    "make_runner",
    "openapi_document",
    "run_server",
]
