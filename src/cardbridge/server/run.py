"""Run the HTTP API on loopback: 127.0.0.1 and, where there is one, [::1]; never another
address, and never another port than the one asked for (a taken port is PORT_IN_USE)."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from collections.abc import Callable, Sequence
from dataclasses import replace

from aiohttp import web

from cardbridge.errors import ConfigError, PortInUseError
from cardbridge.server.app import begin_stopping, create_app
from cardbridge.server.limits import ACCEPT_BACKLOG, BridgeRunner, connection_cap, quiet_accept_errors
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
        sock.listen(ACCEPT_BACKLOG)
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


def make_runner(app: web.Application, settings: ServerSettings, *, shutdown_timeout: float = 0.5) -> BridgeRunner:
    """The runner with the server's limits: the time limits of ``settings``, the connection
    cap, no access log, compressed bodies left compressed (and refused), and a client that
    goes away cancels its handler."""
    return BridgeRunner(
        app,
        max_connections=settings.max_connections or connection_cap(),
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=settings.request_timeout,
        lingering_time=min(2.0, settings.request_timeout),
        auto_decompress=False,
    )


async def run_server(
    service: CardService,
    settings: ServerSettings,
    *,
    stop: asyncio.Event | None = None,
    stop_signals: Sequence[int] = (),
    on_ready: Callable[[list[str]], None] | None = None,
    shutdown_timeout: float = 0.5,
) -> None:
    """Serve until ``stop`` is set or one of ``stop_signals`` comes (forever without).

    Client disconnects cancel their handler, so a dialog whose caller went away is closed
    and nothing is signed. On a stop signal the card operations under way are cancelled at
    once (in the signal's own loop turn, so no token leaves after it), answered
    BRIDGE_STOPPING, and the server closes within about a second. After it returns the
    ``stop_signals`` are ignored (the caller's process is ending: the service's close waits
    for a card call still in progress).
    """
    sockets = bind_loopback(settings.port)
    port = sockets[0].getsockname()[1]
    app = create_app(service, replace(settings, port=port))
    runner = make_runner(app, settings, shutdown_timeout=shutdown_timeout)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        begin_stopping(app)
        stop.set()

    for signum in stop_signals:
        loop.add_signal_handler(signum, on_signal)
    try:
        with quiet_accept_errors(loop):
            await runner.setup()
            for sock in sockets:
                await web.SockSite(runner, sock, backlog=ACCEPT_BACKLOG).start()
            log.info("listening on %s (at most %d connections)", ", ".join(urls(sockets)), runner.max_connections)
            if on_ready is not None:
                on_ready(urls(sockets))
            await stop.wait()
            cancelled = begin_stopping(app)
            if cancelled:  # answered already; let each close its dialog before the service closes
                await asyncio.wait(cancelled, timeout=shutdown_timeout)
    finally:
        for signum in stop_signals:
            loop.remove_signal_handler(signum)  # (asyncio puts back the default action)
            # The process is ending: another stop signal must not end it inside a card call
            # the service still waits for (its close comes after this returns).
            signal.signal(signum, signal.SIG_IGN)
        await runner.cleanup()
        for sock in sockets:
            sock.close()
