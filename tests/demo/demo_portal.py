"""What the browser tests share: Debian's Chromium with the flags cardbridge itself uses
(``cardbridge.demo.headless``), a free loopback port, and the demo portal served on
http://localhost:PORT (a secure context; listening on 127.0.0.1 only)."""

from __future__ import annotations

import socket

from aiohttp import web

from cardbridge.demo.headless import CHROMIUM_ARGS as BASE_CHROMIUM_ARGS
from cardbridge.demo.portal import DEMO_STATE, DemoSettings, DemoState, create_app
from cardbridge.demo.runner import free_port as free_port  # the one helper, imported here for the tests

CHROMIUM = "/usr/bin/chromium"  # Debian's; never a downloaded browser
CHROMIUM_ARGS = list(BASE_CHROMIUM_ARGS)


class Portal:
    """A running demo portal; ``transport`` is how its page reaches the bridge."""

    def __init__(
        self,
        ca_pem: bytes,
        bridge_port: int,
        transport: str,
        routes: tuple[tuple[str, web.Handler], ...] = (),
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.setblocking(False)
        self.origin = f"http://localhost:{self.sock.getsockname()[1]}"
        self.app = create_app(DemoSettings(self.origin, (ca_pem,), bridge_port=bridge_port, transport=transport))
        for path, handler in routes:
            self.app.router.add_get(path, handler)
        self.runner = web.AppRunner(self.app, access_log=None)

    @property
    def state(self) -> DemoState:
        return self.app[DEMO_STATE]

    async def __aenter__(self) -> Portal:
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()
        self.sock.close()
