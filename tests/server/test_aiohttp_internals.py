"""The aiohttp internals that ``cardbridge.server.limits`` relies on, because aiohttp has no
public API for a connection cap or for the answer to a request its parser refused (see that
module's docstring; pyproject.toml bounds aiohttp to the minor version they were checked
with). A newer aiohttp that drops or changes one fails here, naming it, before the bridge
misbehaves in a subtler way. In process, on loopback, no card."""

from __future__ import annotations

import asyncio
import inspect

import aiohttp
from aiohttp import web

from cardbridge.server.limits import BridgeRequestHandler, BridgeRunner, BridgeServer


def changed(internal: str) -> str:
    return (
        f"aiohttp {aiohttp.__version__} no longer has {internal} as cardbridge.server.limits uses it "
        "(see that module's docstring): adapt limits.py to this aiohttp, then move the aiohttp bound "
        "in pyproject.toml and `make lock`"
    )


def test_the_app_runner_makes_its_server_in_make_server() -> None:
    make_server = getattr(web.AppRunner, "_make_server", None)
    assert inspect.iscoroutinefunction(make_server), changed("the coroutine web.AppRunner._make_server()")


def test_the_request_handler_is_made_with_its_server_and_answers_errors_in_handle_error() -> None:
    init = list(inspect.signature(web.RequestHandler.__init__).parameters)
    assert init[:2] == ["self", "manager"] and "loop" in init, changed("web.RequestHandler(manager, loop=…, **kwargs)")
    method = getattr(web.RequestHandler, "handle_error", None)
    handle_error = list(inspect.signature(method).parameters) if callable(method) else []
    assert handle_error == ["self", "request", "status", "exc", "message"], changed(
        "web.RequestHandler.handle_error(request, status, exc, message)"
    )


async def test_a_server_keeps_what_it_was_made_with() -> None:
    async def answer(request: web.BaseRequest) -> web.Response:
        return web.Response()

    server = web.Server(answer, handler_cancellation=True, keepalive_timeout=7.0)
    for name in ("request_handler", "request_factory", "handler_cancellation"):
        assert hasattr(server, name), changed(f"web.Server.{name}")
    assert server.request_handler is answer and server.handler_cancellation is True, changed("web.Server's attributes")
    assert getattr(server, "_kwargs", None) == {"keepalive_timeout": 7.0}, changed(
        "web.Server._kwargs (the keyword arguments for each RequestHandler)"
    )


async def test_the_bridge_runner_serves_through_its_own_server_and_handler() -> None:
    """The runner's server is a BridgeServer with the app's handler options; a connection
    gets a BridgeRequestHandler; a request aiohttp's parser refuses gets problem+json."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = BridgeRunner(app, max_connections=8, keepalive_timeout=5.0, access_log=None)
    await runner.setup()
    try:
        server = runner.server
        assert isinstance(server, BridgeServer), changed("web.AppRunner._make_server() (the runner's server)")
        assert server.handler_kwargs.get("keepalive_timeout") == 5.0, changed("web.Server._kwargs")
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200"), head
            assert [type(c) for c in server.connections] == [BridgeRequestHandler], changed(
                "web.Server as the protocol factory (its __call__) and web.Server.connections"
            )
            await asyncio.wait_for(reader.readexactly(len(b"hello")), 10)
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n")
            refused = await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()
        assert refused.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400")), refused[:200]
        assert b"application/problem+json" in refused, changed("web.RequestHandler.handle_error() (a refused request)")
        assert b'"code":"INVALID_ARGUMENT"' in refused.replace(b" ", b""), refused
    finally:
        await runner.cleanup()
