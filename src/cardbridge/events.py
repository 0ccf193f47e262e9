"""The event hub: card and reader events, and the bridge's own, for the listeners of one process.

A card watcher (``cardbridge.pcsc.CardMonitor``) reports readers and cards coming and going
on its own thread; :class:`EventHub` carries each event to the event loop and hands it to
every :class:`EventSubscription` (the HTTP API's ``/v1/events`` streams, a login waiting for
a card). No card I/O happens here: ``readers()`` is what the watcher last saw.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

__all__ = ["OVERFLOW", "CardWatcher", "EventHub", "EventSubscription", "ReaderState", "WatchedEvent"]

OVERFLOW = {"type": "overflow"}  # in place of the events a slow subscriber lost


class ReaderState(Protocol):
    """A reader as a card watcher last saw it (``cardbridge.pcsc.ReaderInfo``)."""

    @property
    def name(self) -> str: ...

    @property
    def card_present(self) -> bool: ...


class WatchedEvent(Protocol):
    """A reader or card event (``cardbridge.pcsc.CardEvent``): ``to_dict()`` has ``type``."""

    def to_dict(self) -> dict[str, Any]: ...


class CardWatcher(Protocol):
    """Something that sees readers and cards come and go (``cardbridge.pcsc.CardMonitor``).
    It calls subscribers on its own thread; ``readers()`` does no I/O."""

    def subscribe(self, callback: Callable[[WatchedEvent], None]) -> Callable[[], None]: ...

    def readers(self) -> Sequence[ReaderState]: ...


class EventSubscription:
    """Card events for one listener, in order; a slow listener loses the oldest ones
    (and gets an ``overflow`` event in their place). Use as a context manager."""

    def __init__(self, unsubscribe: Callable[[EventSubscription], None], maxsize: int = 64) -> None:
        if maxsize < 2:
            raise ValueError("a subscription keeps at least 2 events (the overflow notice and the newest)")
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        self._unsubscribe = unsubscribe
        self.closed = False

    def put(self, event: dict[str, Any]) -> None:
        queue = self._queue
        if queue.full():  # the oldest go; one notice, first, says so
            waiting = [queue.get_nowait() for _ in range(queue.qsize())]
            events = [e for e in waiting if e != OVERFLOW]
            kept = events[len(events) - (queue.maxsize - 2) :]
            for kept_event in [dict(OVERFLOW), *kept]:
                queue.put_nowait(kept_event)
        queue.put_nowait(event)

    async def get(self) -> dict[str, Any]:
        """The next event (cancel-safe: a timeout around it loses nothing)."""
        return await self._queue.get()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._unsubscribe(self)

    def __enter__(self) -> EventSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventHub:
    """Events from at most one card watcher, and those published on the loop, for every
    subscriber. Use it on the event loop only (the watcher's thread is handled here)."""

    def __init__(self) -> None:
        self._subscriptions: set[EventSubscription] = set()
        self._watcher: CardWatcher | None = None
        self._unwatch: Callable[[], None] | None = None

    def watch(self, watcher: CardWatcher) -> None:
        """Feed ``watcher``'s events to the subscribers (instead of a watcher before)."""
        loop = asyncio.get_running_loop()

        def on_event(event: WatchedEvent) -> None:  # on the watcher's thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens any more
                loop.call_soon_threadsafe(self.publish, event.to_dict())

        self.unwatch()
        self._watcher = watcher
        self._unwatch = watcher.subscribe(on_event)

    def unwatch(self) -> None:
        """Stop listening to the watcher (if any)."""
        if self._unwatch is not None:
            self._unwatch()
        self._unwatch = None
        self._watcher = None

    def readers(self) -> list[ReaderState] | None:
        """The readers the watcher last saw; None when nothing watches readers.
        Raises ServiceNotRunningError when the PC/SC service is down."""
        return None if self._watcher is None else list(self._watcher.readers())

    def publish(self, event: Mapping[str, Any]) -> None:
        """Hand ``event`` (a JSON object with ``type``) to every subscriber, each its own copy."""
        for subscription in list(self._subscriptions):
            subscription.put(dict(event))

    def subscribe(self, maxsize: int = 64) -> EventSubscription:
        """Listen to events until the subscription is closed."""
        subscription = EventSubscription(self._subscriptions.discard, maxsize)
        self._subscriptions.add(subscription)
        return subscription
