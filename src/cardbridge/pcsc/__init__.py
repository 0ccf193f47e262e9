"""PC/SC: readers, card events, APDU transport, ATR identification, and the built-in PIV
driver. The only package that imports pyscard (``smartcard``), in :mod:`.scard`."""

from __future__ import annotations

from cardbridge.pcsc.atr import CardIdentity, identify
from cardbridge.pcsc.backend import PcscBackend, PivToken, ReaderInfo, deduplicate, list_readers
from cardbridge.pcsc.monitor import CardEvent, CardMonitor, EventKind

__all__ = [
    "CardEvent",
    "CardIdentity",
    "CardMonitor",
    "EventKind",
    "PcscBackend",
    "PivToken",
    "ReaderInfo",
    "deduplicate",
    "identify",
    "list_readers",
]
