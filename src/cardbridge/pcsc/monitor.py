"""The card monitor: readers and cards coming and going, without polling.

One thread blocks in SCardGetStatusChange (with the ``\\\\?PnP?\\Notification`` pseudo-reader,
so a new reader wakes it too) with a long timeout; :meth:`CardMonitor.stop` wakes it with
SCardCancel. When pcscd goes away the monitor reports SERVICE_STOPPED, waits (with an
Event, so stop stays immediate) and connects again; SERVICE_STARTED follows when pcscd is
back. Subscribers are called on the monitor thread: hand events to an event loop with
``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cardbridge.errors import CardbridgeError, ServiceNotRunningError
from cardbridge.pcsc.atr import CardIdentity, identify
from cardbridge.pcsc.readers import ReaderInfo
from cardbridge.pcsc.scard import (
    E_CANCELLED,
    E_NO_READERS_AVAILABLE,
    E_TIMEOUT,
    E_UNKNOWN_READER,
    PNP_NOTIFICATION,
    S_SUCCESS,
    STATE_CHANGED,
    STATE_UNAVAILABLE,
    STATE_UNAWARE,
    STATE_UNKNOWN,
    PcscContext,
    ReaderStatus,
    error_for,
)

log = logging.getLogger(__name__)

WAIT_MS = 60_000  # wake once a minute at most when nothing happens
_RETRY_S = (0.25, 0.5, 1.0, 2.0)  # waiting for pcscd to come back


class EventKind(enum.StrEnum):
    READER_ADDED = "reader-added"
    READER_REMOVED = "reader-removed"
    CARD_INSERTED = "card-inserted"
    CARD_REMOVED = "card-removed"
    SERVICE_STOPPED = "service-stopped"
    SERVICE_STARTED = "service-started"


@dataclass(frozen=True, slots=True)
class CardEvent:
    """Something changed. ``at`` is ``time.monotonic()`` when the monitor saw it."""

    kind: EventKind
    reader: str | None = None
    card: CardIdentity | None = None
    at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": str(self.kind)}
        if self.reader is not None:
            out["reader"] = self.reader
        if self.card is not None:
            out["card"] = self.card.to_dict()
        return out


Subscriber = Callable[[CardEvent], None]


class CardMonitor:
    """Watches every reader from one background thread; ``start()``, ``stop()``."""

    def __init__(self, *, wait_ms: int = WAIT_MS, context: PcscContext | None = None) -> None:
        self._wait_ms = wait_ms
        self._context = context if context is not None else PcscContext()
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Written only by the monitor thread, read by any thread: each change replaces the
        # whole mapping, so readers() needs no lock and never waits for the monitor.
        self._states: dict[str, ReaderStatus] = {}
        self._service_up: bool | None = None
        self._ready = threading.Event()

    # -- public -------------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` for every event (on the monitor thread); returns unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def start(self) -> CardMonitor:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pcsc-monitor", daemon=True)
            self._thread.start()
        return self

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the first state of the readers is known (or pcscd is known down)."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._context.cancel()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def readers(self) -> list[ReaderInfo]:
        """The last known readers and cards (no I/O). ServiceNotRunningError if pcscd is down."""
        if self._service_up is False:
            raise ServiceNotRunningError("The PC/SC service (pcscd) is not running.")
        return [ReaderInfo.from_status(s) for s in self._states.values()]

    def __enter__(self) -> CardMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the thread -----------------------------------------------------------------
    # Events are emitted with no lock held: a subscriber may call back into the monitor.
    def _emit(self, kind: EventKind, reader: str | None = None, atr: bytes | None = None) -> None:
        event = CardEvent(kind, reader, identify(atr) if atr else None, time.monotonic())
        log.debug("card event %s", event.to_dict())
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("A card event subscriber failed")

    def _run(self) -> None:
        retry = 0
        try:
            while not self._stopping.is_set():
                try:
                    self._watch()
                    retry = 0
                except ServiceNotRunningError:
                    self._service_down()
                    self._stopping.wait(_RETRY_S[min(retry, len(_RETRY_S) - 1)])
                    retry += 1
                except CardbridgeError:
                    log.warning("The card monitor hit an error; watching again", exc_info=True)
                    self._stopping.wait(1.0)
        finally:
            self._context.release()

    def _service_down(self) -> None:
        self._context.release()
        if self._service_up is not False:
            gone = list(self._states.values())
            self._states = {}
            for status in gone:
                if status.present:
                    self._emit(EventKind.CARD_REMOVED, status.name)
                self._emit(EventKind.READER_REMOVED, status.name)
            self._service_up = False
            self._emit(EventKind.SERVICE_STOPPED)
        self._ready.set()

    def _watch(self) -> None:
        """List the readers, then wait for changes until the reader list changes."""
        names = self._context.readers()  # establishes the context; ServiceNotRunningError
        if self._service_up is False:
            self._service_up = True
            self._emit(EventKind.SERVICE_STARTED)
        self._service_up = True
        gone = [status for name, status in self._states.items() if name not in names]
        if gone:
            self._states = {name: status for name, status in self._states.items() if name in names}
        for old in gone:
            if old.present:
                self._emit(EventKind.CARD_REMOVED, old.name)
            self._emit(EventKind.READER_REMOVED, old.name)
        known = {
            name: self._states[name].event_state & ~STATE_CHANGED if name in self._states else STATE_UNAWARE
            for name in names
        }
        pnp_state = len(names) << 16
        first = True
        while not self._stopping.is_set():
            request = [(name, state) for name, state in known.items()] + [(PNP_NOTIFICATION, pnp_state)]
            code, states = self._context.status(request, 0 if first else self._wait_ms)
            if code in (E_TIMEOUT, E_CANCELLED):
                if first:
                    self._ready.set()
                    first = False
                continue
            if code == E_UNKNOWN_READER:
                return  # a reader vanished between listing and waiting
            if code == E_NO_READERS_AVAILABLE:
                self._ready.set()
                return
            if code != S_SUCCESS:
                if self._context.lost(code):
                    raise ServiceNotRunningError("The PC/SC service (pcscd) stopped.")
                raise error_for(code)
            relist = False
            for status in states:
                if status.name == PNP_NOTIFICATION:
                    if status.event_state & STATE_CHANGED:
                        relist = True
                    pnp_state = status.event_state & ~STATE_CHANGED
                    continue
                if status.event_state & (STATE_UNKNOWN | STATE_UNAVAILABLE):
                    relist = True
                    continue
                self._update(status)
                known[status.name] = status.event_state & ~STATE_CHANGED
            if first:
                self._ready.set()
                first = False
            if relist:
                return

    def _update(self, status: ReaderStatus) -> None:
        old = self._states.get(status.name)
        self._states = {**self._states, status.name: status}
        if old is None:
            self._emit(EventKind.READER_ADDED, status.name)
            if status.present:
                self._emit(EventKind.CARD_INSERTED, status.name, status.atr)
            return
        changed_card = old.event_count != status.event_count or old.atr != status.atr
        if old.present and (not status.present or changed_card):
            self._emit(EventKind.CARD_REMOVED, status.name)
        if status.present and (not old.present or changed_card):
            self._emit(EventKind.CARD_INSERTED, status.name, status.atr)
