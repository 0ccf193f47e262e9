"""How many logins this process has asked of PKCS#11 modules (C_Login calls, whatever
their outcome).

A PKCS#11 module loaded into the bridge (OpenSC's, registered with p11-kit) keeps a PC/SC
connection to every card it has a driver for, beside the bridge's own direct drivers. The
direct drivers keep a card's tries left between logins only while nobody else can have
sent it a VERIFY (:mod:`cardbridge.pcsc.pinstate`); a module in this process sends one
only inside a C_Login the bridge asked for, and this count tells them whether that
happened since. The PKCS#11 backend counts; the PC/SC drivers read.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_count = 0


def note() -> None:
    """A C_Login is about to be called (count it before the card can see a VERIFY)."""
    global _count
    with _lock:
        _count += 1


def count() -> int:
    """The logins asked of PKCS#11 modules by this process so far."""
    with _lock:
        return _count
