"""Run the HTTP API on loopback: 127.0.0.1 and, where there is one, [::1]; never another
address, and never another port than the one asked for (a taken port is PORT_IN_USE)."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import replace

from aiohttp import web

from cardbridge.errors import ConfigError, PortInUseError
from cardbridge.server.app import create_app
from cardbridge.server.settings import ServerSettings
from cardbridge.service import CardService

log = logging.getLogger(__name__)

_NO_IPV6 = (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT)


def _listen(family: socket.AddressFamily, address: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR lets a restarted bridge bind past TIME_WAIT; on Linux it never lets
        # two sockets listen on one port, so a taken port still fails here.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_loopback(port: int) -> list[socket.socket]:
    """Listening sockets on 127.0.0.1:``port`` and [::1]:``port`` (when the host has IPv6
    loopback). ``port`` 0 picks a free port, the same on both (tests)."""
    for _attempt in range(5):
        try:
            v4 = _listen(socket.AF_INET, "127.0.0.1", port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"Port {port} on 127.0.0.1 is in use by another program. Stop it, or choose another "
                    "port with --port (and tell the login pages' JS client about it).",
                    port=port,
                ) from exc
            raise ConfigError(f"Cannot listen on 127.0.0.1:{port}: {exc.strerror}.") from exc
        actual = v4.getsockname()[1]
        if not socket.has_ipv6:
            return [v4]
        try:
            return [v4, _listen(socket.AF_INET6, "::1", actual)]
        except OSError as exc:
            if exc.errno in _NO_IPV6:
                log.info("no IPv6 loopback; listening on 127.0.0.1 only")
                return [v4]
            v4.close()
            if exc.errno == errno.EADDRINUSE and port == 0:
                continue  # the free IPv4 port is taken on IPv6: pick another pair
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"Port {port} on [::1] is in use by another program. Stop it, or choose another port with --port.",
                    port=port,
                ) from exc
            raise ConfigError(f"Cannot listen on [::1]:{actual}: {exc.strerror}.") from exc
    raise PortInUseError("Could not find a free port on both 127.0.0.1 and [::1].")


def urls(sockets: Sequence[socket.socket]) -> list[str]:
    out = []
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        out.append(f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}")
    return out


async def run_server(
    service: CardService,
    settings: ServerSettings,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[list[str]], None] | None = None,
    shutdown_timeout: float = 5.0,
) -> None:
    """Serve until ``stop`` is set (forever without one). Client disconnects cancel their
    handler, so a dialog whose caller went away is closed and nothing is signed."""
    sockets = bind_loopback(settings.port)
    port = sockets[0].getsockname()[1]
    app = create_app(service, replace(settings, port=port))
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=shutdown_timeout)
    try:
        await runner.setup()
        for sock in sockets:
            await web.SockSite(runner, sock).start()
        if on_ready is not None:
            on_ready(urls(sockets))
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
        for sock in sockets:
            sock.close()
