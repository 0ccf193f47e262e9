"""A login cancelled at any moment stops there: no dialog and no card call after the cancel.

200 cancels through the service API (the task is cancelled, as the native host does when
the browser closes its pipe) and 200 through the HTTP API (the client drops its connection
and aiohttp cancels the handler). Half fall at a random time within a login; the other half
a few event-loop turns after one of its steps (a card call or a dialog) completed, where a
cancel that ``asyncio.wait_for`` on Python 3.11 can lose lands.

What counts is watched from the event loop, so "after the cancel" is exact: every
``get_pin`` call (a dialog) and every call handed to the PKCS#11 worker thread, marked
before or after the cancel. The scripted pinentry's log and SoftHSM2's C_Login calls are
checked against them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from cardbridge.pinentry import PinentrySource, PinRequest
from cardbridge.service import CardService, Selection, open_backends
from tests.conftest import ScriptedPinentry, ended
from tests.softhsm import LoginSpy, SoftHsm
from tests.test_service import ORIGIN, nonce

pytestmark = pytest.mark.softhsm
RUNS = 200
WRONG, RIGHT = "9999", "1234"  # a wrong PIN then the right one: two dialogs, two logins
STEPS = 6  # survey, dialog, sign (wrong PIN), PIN state, dialog, sign
# The scripted pinentry, started without site-packages (it needs none): 400 logins' dialogs
# start in a third of the time.
PINENTRY = f"{sys.executable} -S {ScriptedPinentry.program}"


@dataclass
class Probe:
    """One login, seen from the event loop."""

    loop: asyncio.AbstractEventLoop
    cancelled: bool = False
    dialogs_before: int = 0
    dialogs_after: int = 0
    calls_before: list[str] = field(default_factory=list)
    calls_after: list[str] = field(default_factory=list)
    steps: int = 0
    trigger_step: int | None = None  # cancel after this many completed steps …
    trigger_turns: int = 0  # … and this many more turns of the event loop
    action: Callable[[], None] | None = None

    def dialog(self) -> None:
        if self.cancelled:
            self.dialogs_after += 1
        else:
            self.dialogs_before += 1

    def call(self, name: str) -> None:
        (self.calls_after if self.cancelled else self.calls_before).append(name)

    def step_done(self) -> None:
        """A card call or a dialog completed (called on the loop)."""
        self.steps += 1
        if self.trigger_step is not None and self.steps == self.trigger_step:
            # From outside the login's task, as a browser's or client's cancel comes.
            self.loop.call_soon(self._after_turns, self.trigger_turns)

    def _after_turns(self, turns: int) -> None:
        if turns == 0:
            self.fire()
        else:
            self.loop.call_soon(self._after_turns, turns - 1)

    def fire(self) -> None:
        if self.action is not None:
            action, self.action = self.action, None
            action()


class Watch:
    """The current probe, and the spies that report to it."""

    def __init__(self, logins: LoginSpy) -> None:
        self.probe: Probe | None = None
        self.login_spy = logins

    @property
    def logins(self) -> int:
        """C_Login calls so far."""
        return self.login_spy.count


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch, login_spy: LoginSpy) -> Watch:
    watched = Watch(login_spy)
    submit = ThreadPoolExecutor.submit

    def spied_submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = submit(self, fn, *args, **kwargs)
        probe = watched.probe
        card_worker = getattr(self, "_thread_name_prefix", "").startswith("pkcs11-")
        if probe is not None and card_worker and threading.current_thread() is threading.main_thread():
            probe.call(getattr(fn, "__name__", repr(fn)))
            loop = probe.loop

            def done(_: Future[Any]) -> None:  # on the worker thread
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    loop.call_soon_threadsafe(probe.step_done)

            future.add_done_callback(done)
        return future

    monkeypatch.setattr(ThreadPoolExecutor, "submit", spied_submit)
    return watched


class ProbedPinentry(PinentrySource):
    """The real pinentry client; each ``get_pin`` call is reported to the probe."""

    def __init__(self, program: str, watch: Watch) -> None:
        super().__init__(program)
        self._watch = watch

    async def get_pin(self, request: PinRequest) -> bytearray:
        probe = self._watch.probe
        assert probe is not None
        probe.dialog()
        try:
            return await super().get_pin(request)
        finally:
            probe.step_done()


def plan(probe: Probe, rng: random.Random, run: int, full_login: float) -> float | None:
    """Even runs: cancel a few loop turns after a step; odd runs: at a random time (returned)."""
    if run % 2 == 0:
        probe.trigger_step = rng.randint(1, STEPS)
        probe.trigger_turns = rng.randint(0, 6)
        return None
    return rng.uniform(0, full_login)


@pytest.fixture
async def service(softhsm: SoftHsm) -> AsyncIterator[CardService]:
    svc = CardService(open_backends([softhsm.module]), user_timeout=30)
    yield svc
    await svc.aclose()


async def _until_free(service: CardService) -> None:
    async with asyncio.timeout(10):
        while service.busy:
            await asyncio.sleep(0.005)


def _check_run(probe: Probe, pinentry: ScriptedPinentry, run: int) -> None:
    assert probe.dialogs_after == 0, f"run {run}: {probe.dialogs_after} dialog(s) after the cancel"
    assert probe.calls_after == [], f"run {run}: card calls after the cancel: {probe}"
    shown = pinentry.dialogs()
    assert len(shown) <= probe.dialogs_before, f"run {run}: the pinentry showed more dialogs than were asked for"
    assert all(ended(d["pid"]) for d in shown), f"run {run}: a dialog is still open"


def _no_asyncio_errors(caplog: pytest.LogCaptureFixture) -> None:
    """No task destroyed while pending, no exception that nobody retrieved."""
    errors = [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]
    assert errors == []


async def test_cancel_at_any_moment_of_a_login_through_the_service(
    service: CardService, pinentry: ScriptedPinentry, watch: Watch, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    rng = random.Random(20261129)
    p256 = Selection(token_label="p256")
    # One login to the end: how long it takes, and that it is the six steps counted above.
    pinentry.respond(WRONG, RIGHT)
    watch.probe = Probe(loop)
    started = time.monotonic()
    await service.authenticate(ORIGIN, nonce(), ProbedPinentry(PINENTRY, watch), selection=p256)
    full_login = time.monotonic() - started
    assert watch.probe.steps == STEPS and watch.probe.dialogs_before == 2
    calls_before = logins_before = cancelled = 0
    watch.login_spy.sessions.clear()
    for run in range(RUNS):
        pinentry.respond(WRONG, RIGHT)
        probe = watch.probe = Probe(loop)
        task = asyncio.ensure_future(
            service.authenticate(ORIGIN, nonce(), ProbedPinentry(PINENTRY, watch), selection=p256)
        )

        def cancel(task: asyncio.Future[Any] = task, probe: Probe = probe) -> None:
            probe.cancelled = task.cancel()  # False: the login had already ended

        probe.action = cancel
        delay = plan(probe, rng, run, full_login)
        if delay is not None:
            loop.call_later(delay, probe.fire)
        try:
            async with asyncio.timeout(15):
                await asyncio.wait({task})
        finally:
            probe.action = None
        if probe.cancelled:
            cancelled += 1
            outcome = "" if task.cancelled() else repr(task.exception()) or type(task.result()).__name__
            assert task.cancelled(), f"run {run}: the cancel was lost: {outcome}"
        elif not task.cancelled():
            task.exception()  # retrieved: a login that ended before the cancel may end any way
        assert not service.busy
        _check_run(probe, pinentry, run)
        calls_before += probe.calls_before.count("sign_digest")
        logins_before = watch.logins
        assert logins_before <= calls_before, f"run {run}: more C_Login calls than sign calls before the cancels"
    assert cancelled >= RUNS // 2, f"only {cancelled} of {RUNS} cancels fell inside a login"
    # Nothing went on in the background, and the token still logs in.
    await asyncio.sleep(0.2)
    assert watch.logins == logins_before
    pinentry.respond(RIGHT)
    watch.probe = Probe(loop)
    await service.authenticate(ORIGIN, nonce(), ProbedPinentry(PINENTRY, watch), selection=p256)
    gc.collect()
    _no_asyncio_errors(caplog)


async def test_a_client_that_drops_the_connection_at_any_moment_cancels_the_login(
    service: CardService,
    pinentry: ScriptedPinentry,
    watch: Watch,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import json

    from aiohttp import web_protocol

    from cardbridge.server import ServerSettings
    from cardbridge.server.run import run_server

    loop = asyncio.get_running_loop()
    rng = random.Random(11292026)
    # The moment the server learns that the client has gone is the cancel.
    connection_lost = web_protocol.RequestHandler.connection_lost

    def spied_connection_lost(self: web_protocol.RequestHandler, exc: BaseException | None) -> None:
        if watch.probe is not None:
            watch.probe.cancelled = True
        connection_lost(self, exc)

    monkeypatch.setattr(web_protocol.RequestHandler, "connection_lost", spied_connection_lost)
    settings = ServerSettings(
        port=0,
        allowed_origins=frozenset({ORIGIN}),
        token_label="p256",
        pin_source=lambda: ProbedPinentry(PINENTRY, watch),
    )
    stop = asyncio.Event()
    ready: asyncio.Future[list[str]] = loop.create_future()
    server = asyncio.ensure_future(run_server(service, settings, stop=stop, on_ready=ready.set_result))
    try:
        port = int((await ready)[0].rsplit(":", 1)[1])

        async def post() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            body = json.dumps({"challengeNonce": nonce()}).encode()
            writer.write(
                b"POST /v1/authenticate HTTP/1.1\r\n"
                + f"Host: 127.0.0.1:{port}\r\nOrigin: {ORIGIN}\r\n".encode()
                + b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            return reader, writer

        pinentry.respond(WRONG, RIGHT)
        watch.probe = Probe(loop)
        started = time.monotonic()
        reader, writer = await post()
        answer = await asyncio.wait_for(reader.read(), 15)
        full_login = time.monotonic() - started
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert watch.probe.steps == STEPS
        dropped = 0
        for run in range(RUNS):
            pinentry.respond(WRONG, RIGHT)
            probe = watch.probe = Probe(loop)
            reader, writer = await post()

            def drop(writer: asyncio.StreamWriter = writer) -> None:
                writer.transport.abort()

            probe.action = drop
            delay = plan(probe, rng, run, full_login)
            if delay is not None:
                loop.call_later(delay, probe.fire)
            try:
                answer = await asyncio.wait_for(reader.read(), 15)
            except ConnectionError:
                answer = b""
            probe.fire()  # dropped already, or the answer came first: close now
            await _until_free(service)
            if not answer.startswith(b"HTTP/1.1 "):
                dropped += 1
            else:
                assert not answer.startswith(b"HTTP/1.1 409"), f"run {run}: BUSY after a dropped request"
            _check_run(probe, pinentry, run)
        assert dropped >= RUNS // 2, f"only {dropped} of {RUNS} drops fell inside a login"
    finally:
        stop.set()
        await asyncio.wait_for(server, 10)
    gc.collect()
    _no_asyncio_errors(caplog)
