"""PC/SC: readers, card events, APDU transport, ATR identification, and the built-in card
drivers (PIV, national ID cards). The only package that imports pyscard (``smartcard``),
in :mod:`.scard`.

Rooms: :mod:`.readers` (readers, one worker per reader), :mod:`.cardtoken` (what every
driver's token shares), :mod:`.filesystem` (the base for ISO 7816-4 file-system cards),
:mod:`.drivers` (driver name → token class), :mod:`.backend` (the Backend), one module per
card application (:mod:`.piv` + :mod:`.piv_token`, :mod:`.esteid`, …).
"""

from __future__ import annotations

from cardbridge.pcsc.atr import CardIdentity, identify
from cardbridge.pcsc.backend import PcscBackend
from cardbridge.pcsc.cardtoken import CardToken
from cardbridge.pcsc.monitor import CardEvent, CardMonitor, EventKind
from cardbridge.pcsc.piv_token import PivToken
from cardbridge.pcsc.readers import ReaderInfo, list_readers

__all__ = [
    "CardEvent",
    "CardIdentity",
    "CardMonitor",
    "CardToken",
    "EventKind",
    "PcscBackend",
    "PivToken",
    "ReaderInfo",
    "identify",
    "list_readers",
]
