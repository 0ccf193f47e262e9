"""Ending the card work before a process leaves: the one call every entry point (the CLI,
the native host) makes, so that none of them reaches into a card layer itself.

Importing this loads nothing. Today only the PKCS#11 layer has something to end
(:func:`cardbridge.pkcs11.shutdown`: the module call in progress waited for, sessions
closed, modules finalized); PC/SC connections close with their backend.
"""

from __future__ import annotations


def shutdown() -> bool:
    """End the card work of this process. False when a card call still runs after the
    bounded wait (a module that hangs): the process must then leave without it
    (``os._exit``)."""
    from cardbridge import pkcs11

    return pkcs11.shutdown()
