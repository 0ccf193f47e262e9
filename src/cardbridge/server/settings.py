"""The server's settings and its typed application and request state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from cardbridge import DEFAULT_PORT
from cardbridge.pinentry import PinentrySource, PinSource
from cardbridge.service import CardService

MAX_BODY = 16 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """What the HTTP API needs besides the service. Origins must already be checked with
    ``check_origin`` (the CLI does); they are compared exactly, never by prefix or suffix."""

    port: int = DEFAULT_PORT
    allowed_origins: frozenset[str] = frozenset()
    pinentry_program: str = "pinentry"
    token_label: str | None = None  # use only the token with this label (``serve --token``)
    lang: str | None = None  # dialog language when the request names none of ours
    max_body: int = MAX_BODY
    heartbeat: float = 15.0  # seconds between SSE keep-alive comments
    status_timeout: float = 3.0  # seconds a status waits for a module to list its tokens
    # Seconds a client has to send a request's head (from the connection's start or the end
    # of its last answer) and, once read, its body; an idle keep-alive connection closes
    # after as long.
    request_timeout: float = 10.0
    # Open connections at most (more are closed at once); None: from RLIMIT_NOFILE.
    max_connections: int | None = None
    # Where PINs come from; default: a pinentry dialog per operation. Never from a request.
    pin_source: Callable[[], PinSource] | None = field(default=None, compare=False)

    def hosts(self) -> frozenset[str]:
        """The ``Host`` header values the bridge answers to."""
        return frozenset(f"{host}:{self.port}" for host in LOOPBACK_HOSTS)

    def new_pin_source(self) -> PinSource:
        return self.pin_source() if self.pin_source is not None else PinentrySource(self.pinentry_program)


SERVICE = web.AppKey("service", CardService)
SETTINGS = web.AppKey("settings", ServerSettings)
OPENAPI = web.AppKey("openapi", dict[str, Any])
STOPPING = web.AppKey("stopping", asyncio.Event)
# Card operations under way: each task, and the future that tells it the bridge stops.
OPERATIONS = web.AppKey("operations", dict[asyncio.Future[Any], asyncio.Future[None]])
ID_KEY = web.AppKey("id_key", bytes)  # per-process random key of the tokens' per-origin ids

# The allowed origin a request came from (set by the guard once the Origin passed).
ORIGIN = web.RequestKey("origin", str)
LANG = web.RequestKey("lang", str)  # the language of the request, once its body named one
