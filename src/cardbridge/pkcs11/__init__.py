"""PKCS#11 modules: the only importer of python-pkcs11 (in :mod:`.backend` and below).

Importing this package loads nothing: :func:`shutdown` is here so that every entry point
can end the card work before its process leaves without loading python-pkcs11 for it.
"""

from __future__ import annotations

import sys


def shutdown() -> bool:
    """The PKCS#11 layer's one shutdown routine (``backend.shutdown``), for every entry point
    before its process ends: queued module calls cancelled, the call in progress waited for
    (bounded: a C_Login writes the token's files), sessions closed, modules finalized.
    Nothing to do when this process never loaded a module. False when a module call still
    runs after the wait (a module that hangs): the process must then leave without it."""
    backend = sys.modules.get("cardbridge.pkcs11.backend")
    if backend is None:
        return True
    done: bool = backend.shutdown()
    return done
