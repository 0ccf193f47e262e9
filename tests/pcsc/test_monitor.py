"""The card monitor when a reader is pulled out.

vpcd's readers never go away while pcscd runs, so the reader removal comes from a fake
PC/SC context. It copies what pcsc-lite does when a USB reader is unplugged:
SCardGetStatusChange returns SCARD_S_SUCCESS with that reader's state
SCARD_STATE_UNKNOWN | SCARD_STATE_CHANGED and the PnP pseudo-reader's count changed, and
the next SCardListReaders no longer lists it. Everything else it answers as pcscd does for
readers that do not change: SCARD_E_TIMEOUT after the wait, SCARD_E_CANCELLED on SCardCancel.
"""

from __future__ import annotations

import threading
from typing import Any

from cardbridge.pcsc.monitor import CardEvent, CardMonitor, EventKind
from cardbridge.pcsc.scard import (
    E_CANCELLED,
    E_TIMEOUT,
    PNP_NOTIFICATION,
    S_SUCCESS,
    STATE_CHANGED,
    STATE_EMPTY,
    STATE_PRESENT,
    STATE_UNKNOWN,
    PcscContext,
    ReaderStatus,
)

ATR = bytes.fromhex("3B8880010000000000000000")  # any ATR; the monitor only passes it on


class UnpluggingContext(PcscContext):
    """Two readers, a card in the first; :meth:`unplug` pulls the first reader out."""

    def __init__(self) -> None:
        super().__init__()
        self.names = ["Reader A", "Reader B"]
        self._unplugged = threading.Event()
        self._reported = False
        self._wake = threading.Event()

    def unplug(self) -> None:
        self._unplugged.set()
        self._wake.set()

    @property
    def handle(self) -> int:
        return 1

    def release(self) -> None:
        pass

    def cancel(self) -> None:
        self._wake.set()

    def readers(self) -> list[str]:
        return list(self.names)

    def status(self, readers: list[tuple[str, int]], timeout_ms: int = 0) -> tuple[int, list[ReaderStatus]]:
        if self._unplugged.is_set() and not self._reported:
            self._reported = True
            self.names = ["Reader B"]
            out = []
            for name, _known in readers:
                if name == "Reader A":
                    out.append(ReaderStatus(name, STATE_UNKNOWN | STATE_CHANGED, b""))
                elif name == PNP_NOTIFICATION:
                    out.append(ReaderStatus(name, (1 << 16) | STATE_CHANGED, b""))
                else:
                    out.append(ReaderStatus(name, STATE_EMPTY, b""))
            return S_SUCCESS, out
        fresh = [(n, s) for n, s in readers if n != PNP_NOTIFICATION and s == 0]
        if fresh:
            out = [
                ReaderStatus(
                    n,
                    (STATE_PRESENT if n == "Reader A" else STATE_EMPTY) | STATE_CHANGED,
                    ATR if n == "Reader A" else b"",
                )
                for n, _ in fresh
            ]
            return S_SUCCESS, out
        if timeout_ms == 0:
            return E_TIMEOUT, []
        woke = self._wake.wait(timeout_ms / 1000)
        self._wake.clear()
        return (E_CANCELLED if woke else E_TIMEOUT), []


def _call_within(fn: Any, seconds: float) -> Any:
    """``fn()`` on a thread; fails the test if it has not returned within ``seconds``."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{fn} blocked for more than {seconds} s"
    return result[0]


def test_a_pulled_reader_is_reported_and_the_monitor_still_answers() -> None:
    context = UnpluggingContext()
    events: list[CardEvent] = []
    seen = threading.Condition()

    def on_event(event: CardEvent) -> None:
        with seen:
            events.append(event)
            seen.notify_all()

    monitor = CardMonitor(context=context, wait_ms=60_000)
    monitor.subscribe(on_event)
    monitor.start()
    try:
        assert monitor.wait_ready(5)
        assert {r.name for r in _call_within(monitor.readers, 1.0)} == {"Reader A", "Reader B"}
        context.unplug()
        with seen:
            assert seen.wait_for(
                lambda: any(e.kind is EventKind.READER_REMOVED and e.reader == "Reader A" for e in events), timeout=5
            ), [e.to_dict() for e in events]
        kinds = [(e.kind, e.reader) for e in events]
        assert kinds.index((EventKind.CARD_REMOVED, "Reader A")) < kinds.index((EventKind.READER_REMOVED, "Reader A"))
        # The monitor thread is not stuck: it answers at once and a subscriber can still be added.
        assert [r.name for r in _call_within(monitor.readers, 1.0)] == ["Reader B"]
        _call_within(lambda: monitor.subscribe(lambda _e: None), 1.0)
        _call_within(monitor.stop, 5.0)
    finally:
        monitor.stop()
