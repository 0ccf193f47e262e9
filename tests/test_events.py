"""The event hub (``cardbridge.events``): events reach every subscriber in order, a slow one
loses the oldest, a watcher's thread is carried to the loop. No card I/O is involved; the
hub with the real ``CardMonitor`` over pcscd is tested in ``tests/pcsc/test_events_http.py``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from cardbridge.events import EventHub, WatchedEvent


@dataclass(frozen=True)
class Reader:
    name: str
    card_present: bool


@dataclass(frozen=True)
class Event:
    kind: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "reader": "Virtual PCD 00 00"}


class ThreadWatcher:
    """Copies ``CardMonitor``'s contract (the part the hub relies on): subscribers are called
    on the watcher's own thread, ``subscribe`` returns the call that ends the subscription,
    ``readers()`` does no I/O."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[WatchedEvent], None]] = []
        self.present = False
        self.errors: list[Exception] = []

    def subscribe(self, callback: Callable[[WatchedEvent], None]) -> Callable[[], None]:
        self.callbacks.append(callback)
        return lambda: self.callbacks.remove(callback)

    def readers(self) -> list[Reader]:
        return [Reader("Virtual PCD 00 00", self.present)]

    def emit(self, kind: str) -> None:
        """Call the subscribers on a thread of its own; what they raise is kept in ``errors``."""
        self.present = kind == "card-inserted"

        def call() -> None:
            for callback in list(self.callbacks):
                try:
                    callback(Event(kind))
                except Exception as exc:  # CardMonitor logs it and goes on
                    self.errors.append(exc)

        thread = threading.Thread(target=call)
        thread.start()
        thread.join()


async def test_every_subscriber_gets_each_event_in_order_and_its_own_copy() -> None:
    hub = EventHub()
    with hub.subscribe() as first, hub.subscribe() as second:
        hub.publish({"type": "a"})
        hub.publish({"type": "b"})
        got = [await first.get(), await first.get()]
        assert got == [{"type": "a"}, {"type": "b"}]
        copy = await second.get()
        copy["type"] = "changed"
        assert got[0] == {"type": "a"} and await second.get() == {"type": "b"}


async def test_a_slow_subscriber_loses_the_oldest_and_is_told() -> None:
    hub = EventHub()
    with hub.subscribe(maxsize=3) as slow:
        for n in range(5):
            hub.publish({"type": "card-inserted", "n": n})
        got = [await slow.get() for _ in range(3)]
    assert got[0] == {"type": "overflow"} and got[-1] == {"type": "card-inserted", "n": 4}


async def test_a_closed_subscription_gets_nothing_more() -> None:
    hub = EventHub()
    subscription = hub.subscribe()
    subscription.close()
    subscription.close()  # twice is harmless
    hub.publish({"type": "a"})
    assert subscription.closed
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await subscription.get()


async def test_a_watchers_events_reach_the_loop_and_unwatch_ends_them() -> None:
    hub = EventHub()
    assert hub.readers() is None  # nothing watches readers
    watcher = ThreadWatcher()
    hub.watch(watcher)
    with hub.subscribe() as events:
        watcher.emit("card-inserted")
        async with asyncio.timeout(5):
            assert await events.get() == {"type": "card-inserted", "reader": "Virtual PCD 00 00"}
        assert hub.readers() == [Reader("Virtual PCD 00 00", True)]
        hub.unwatch()
        assert watcher.callbacks == [] and hub.readers() is None
        hub.unwatch()  # twice is harmless


async def test_a_second_watcher_replaces_the_first() -> None:
    hub = EventHub()
    first, second = ThreadWatcher(), ThreadWatcher()
    hub.watch(first)
    hub.watch(second)
    assert first.callbacks == [] and len(second.callbacks) == 1
    hub.unwatch()


def test_an_event_after_the_loop_closed_is_dropped() -> None:
    hub = EventHub()
    watcher = ThreadWatcher()

    async def watch() -> None:
        hub.watch(watcher)

    asyncio.run(watch())  # the loop is closed now; the watcher still calls
    watcher.emit("card-removed")
    assert watcher.errors == []  # no RuntimeError on the watcher's thread
    hub.unwatch()


@pytest.mark.parametrize("maxsize", [2, 3, 8])
async def test_after_an_overflow_the_newest_events_are_kept_behind_one_notice(maxsize: int) -> None:
    hub = EventHub()
    with hub.subscribe(maxsize=maxsize) as slow:
        for n in range(3 * maxsize):
            hub.publish({"type": "card-inserted", "n": n})
        got = [await slow.get() for _ in range(maxsize)]
        assert got[0] == {"type": "overflow"}
        assert [e["n"] for e in got[1:]] == list(range(2 * maxsize + 1, 3 * maxsize))
        hub.publish({"type": "card-removed"})  # after it was read, nothing more is lost
        assert await slow.get() == {"type": "card-removed"}


def test_a_subscription_keeps_at_least_the_notice_and_the_newest() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        EventHub().subscribe(maxsize=1)
