"""The only module that calls pyscard: contexts, connections, transactions, and the one
place where PC/SC return codes become :mod:`cardbridge.errors`.

A PC/SC context is used by one thread only (pcsc-lite asks for that): each worker thread,
the card monitor and one-shot listings make their own :class:`PcscContext`. When pcscd
goes away the context is dropped and made again on the next use, so the bridge recovers
by itself when pcscd comes back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from smartcard import scard as _s

from cardbridge.errors import (
    CardBusyError,
    CardError,
    CardRemovedError,
    CardResetError,
    NoCardError,
    NoReadersError,
    ServiceNotRunningError,
)
from cardbridge.pcsc.apdu import split_response

log = logging.getLogger(__name__)

PNP_NOTIFICATION = "\\\\?PnP?\\Notification"

# Return codes (winscard / pcsc-lite), as unsigned 32-bit numbers.
S_SUCCESS = 0x00000000
E_CANCELLED = 0x80100002
E_INVALID_HANDLE = 0x80100003
E_UNKNOWN_READER = 0x80100009
E_TIMEOUT = 0x8010000A
E_SHARING_VIOLATION = 0x8010000B
E_NO_SMARTCARD = 0x8010000C
F_COMM_ERROR = 0x80100013  # pcsc-lite: the socket to pcscd broke
E_PROTO_MISMATCH = 0x8010000F
E_NOT_TRANSACTED = 0x80100016
E_READER_UNAVAILABLE = 0x80100017
E_NO_SERVICE = 0x8010001D
E_SERVICE_STOPPED = 0x8010001E
E_NO_READERS_AVAILABLE = 0x8010002E
W_UNRESPONSIVE_CARD = 0x80100066
W_UNPOWERED_CARD = 0x80100067
W_RESET_CARD = 0x80100068
W_REMOVED_CARD = 0x80100069

# Codes after which the context is useless (pcscd gone or restarted).
_CONTEXT_LOST = frozenset({E_NO_SERVICE, E_SERVICE_STOPPED, E_INVALID_HANDLE, F_COMM_ERROR})

STATE_UNAWARE = _s.SCARD_STATE_UNAWARE
STATE_IGNORE = _s.SCARD_STATE_IGNORE
STATE_CHANGED = _s.SCARD_STATE_CHANGED
STATE_UNKNOWN = _s.SCARD_STATE_UNKNOWN
STATE_UNAVAILABLE = _s.SCARD_STATE_UNAVAILABLE
STATE_EMPTY = _s.SCARD_STATE_EMPTY
STATE_PRESENT = _s.SCARD_STATE_PRESENT
STATE_EXCLUSIVE = _s.SCARD_STATE_EXCLUSIVE
STATE_INUSE = _s.SCARD_STATE_INUSE
STATE_MUTE = _s.SCARD_STATE_MUTE

SHARE_SHARED = _s.SCARD_SHARE_SHARED
SHARE_EXCLUSIVE = _s.SCARD_SHARE_EXCLUSIVE
LEAVE_CARD = _s.SCARD_LEAVE_CARD
RESET_CARD = _s.SCARD_RESET_CARD
PROTOCOLS = _s.SCARD_PROTOCOL_T0 | _s.SCARD_PROTOCOL_T1
INFINITE = 0xFFFFFFFF


def _u32(code: int) -> int:
    return code & 0xFFFFFFFF


def error_for(code: int, reader: str | None = None) -> CardError:
    """The cardbridge error for a PC/SC return code (the one conversion)."""
    code = _u32(code)
    where = {"reader": reader} if reader else {}
    detail: dict[str, Any] = {"pcsc": f"0x{code:08X}", **where}
    if code in (E_NO_SERVICE, E_SERVICE_STOPPED):
        return ServiceNotRunningError("The PC/SC service (pcscd) is not running.", **detail)
    if code == E_NO_READERS_AVAILABLE:
        return NoReadersError("No card reader is connected.", **detail)
    if code in (E_UNKNOWN_READER, E_READER_UNAVAILABLE):
        return NoReadersError(f"The card reader {reader or ''} is not connected.".replace("  ", " "), **detail)
    if code == E_NO_SMARTCARD:
        return NoCardError("There is no card in the reader.", **detail)
    if code == W_REMOVED_CARD:
        return CardRemovedError("The card was removed.", **detail)
    if code == E_SHARING_VIOLATION:
        return CardBusyError("Another program is using the card.", **detail)
    if code == W_RESET_CARD:
        return CardResetError("The card was reset by another program.", **detail)
    if code in (W_UNRESPONSIVE_CARD, W_UNPOWERED_CARD, E_PROTO_MISMATCH):
        return CardError("The card does not answer; insert it again.", **detail)
    if code in (E_INVALID_HANDLE, F_COMM_ERROR):
        return ServiceNotRunningError("The connection to the PC/SC service (pcscd) was lost.", **detail)
    message = _s.SCardGetErrorMessage(code) if code else "unknown"
    return CardError(f"PC/SC error: {message}", **detail)


def _check(code: int, reader: str | None = None) -> None:
    if _u32(code) != S_SUCCESS:
        raise error_for(code, reader)


@dataclass(frozen=True, slots=True)
class ReaderStatus:
    """One reader as SCardGetStatusChange reports it."""

    name: str
    event_state: int
    atr: bytes

    @property
    def present(self) -> bool:
        return bool(self.event_state & STATE_PRESENT) and not self.event_state & STATE_MUTE

    @property
    def mute(self) -> bool:
        return bool(self.event_state & STATE_MUTE)

    @property
    def exclusive(self) -> bool:
        return bool(self.event_state & STATE_EXCLUSIVE)

    @property
    def in_use(self) -> bool:
        return bool(self.event_state & STATE_INUSE)

    @property
    def event_count(self) -> int:
        """pcsc-lite counts insertions and removals in the upper 16 bits."""
        return (self.event_state >> 16) & 0xFFFF


class PcscContext:
    """An SCARDCONTEXT made on first use and made again after pcscd went away.

    Use it from one thread; :meth:`cancel` is the one call that other threads may make.
    """

    def __init__(self) -> None:
        self._handle: int | None = None
        self._lock = threading.Lock()

    @property
    def handle(self) -> int:
        with self._lock:
            if self._handle is None:
                code, handle = _s.SCardEstablishContext(_s.SCARD_SCOPE_USER)
                _check(code)
                self._handle = handle
            return self._handle

    def lost(self, code: int) -> bool:
        """Drop the context when ``code`` says pcscd is gone; True if it was dropped."""
        if _u32(code) in _CONTEXT_LOST:
            self.release()
            return True
        return False

    def release(self) -> None:
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(Exception):
                _s.SCardReleaseContext(handle)

    def cancel(self) -> None:
        """Wake a blocked SCardGetStatusChange (from any thread)."""
        handle = self._handle
        if handle is not None:
            with contextlib.suppress(Exception):
                _s.SCardCancel(handle)

    def _retrying(self, call: str, *args: object) -> list[Any]:
        """Call ``SCard<call>(context, *args)``; once more with a fresh context when the
        old one belonged to a pcscd that is gone (nothing reached a card yet)."""
        for attempt in (0, 1):
            result = list(getattr(_s, call)(self.handle, *args))
            code = int(result[0])
            if self.lost(code) and attempt == 0:
                continue
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def readers(self) -> list[str]:
        """The reader names; [] when there are none."""
        code, names = self._retrying("SCardListReaders", [])
        if _u32(int(code)) in (E_NO_READERS_AVAILABLE,):
            return []
        _check(int(code))
        return list(names)

    def status(self, readers: list[tuple[str, int]], timeout_ms: int = 0) -> tuple[int, list[ReaderStatus]]:
        """SCardGetStatusChange; returns the raw code (timeouts and cancels are normal)."""
        code, states = self._retrying("SCardGetStatusChange", timeout_ms, readers)
        out = [ReaderStatus(name, int(state), bytes(atr)) for name, state, atr in states]
        return _u32(int(code)), out

    def reader_status(self, reader: str) -> ReaderStatus:
        code, states = self.status([(reader, STATE_UNAWARE)], 0)
        if code not in (S_SUCCESS, E_TIMEOUT):
            raise error_for(code, reader)
        status = states[0]
        if status.event_state & STATE_UNKNOWN:
            raise error_for(E_UNKNOWN_READER, reader)
        return status

    def connect(self, reader: str, share: int = SHARE_SHARED) -> CardConnection:
        code, card, protocol = self._retrying("SCardConnect", reader, share, PROTOCOLS)
        _check(int(code), reader)
        return CardConnection(self, reader, int(card), int(protocol))


class CardConnection:
    """A connected card: ``transmit`` (the :class:`~cardbridge.pcsc.apdu.Connection`
    protocol), transactions, and disconnect."""

    def __init__(self, context: PcscContext, reader: str, handle: int, protocol: int) -> None:
        self.context = context
        self.reader = reader
        self._handle = handle
        self._protocol = protocol
        self.disposition = LEAVE_CARD

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        code, response = _s.SCardTransmit(self._handle, self._protocol, list(apdu))
        if _u32(code) != S_SUCCESS:
            self.context.lost(code)
            raise error_for(code, self.reader)
        return split_response(bytes(response))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[CardConnection]:
        """SCardBeginTransaction … SCardEndTransaction around a multi-APDU step."""
        code = _s.SCardBeginTransaction(self._handle)
        if _u32(code) != S_SUCCESS:
            self.context.lost(code)
            raise error_for(code, self.reader)
        try:
            yield self
        finally:
            with contextlib.suppress(Exception):
                _s.SCardEndTransaction(self._handle, LEAVE_CARD)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            _s.SCardDisconnect(self._handle, self.disposition)

    def __enter__(self) -> CardConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
