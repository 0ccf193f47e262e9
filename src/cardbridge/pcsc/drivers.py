"""The built-in card drivers, by name: the ``driver`` of a row in :data:`cardbridge.pcsc.atr.KNOWN_CARDS`.

Each entry names a :class:`~cardbridge.pcsc.cardtoken.CardToken` subclass (``module:Class``),
imported only when a card needs it. The backend picks the driver by ATR, then the token
confirms the card by SELECT of its application (``identify_card``); a card whose ATR no row
names is tried with :data:`DEFAULT_DRIVER`.

To add a card: a token class, one line here, and its ATR row(s) in ``atr.py``.
"""

from __future__ import annotations

import importlib

from cardbridge.pcsc.cardtoken import CardToken

DRIVERS: dict[str, str] = {
    "piv": "cardbridge.pcsc.piv_token:PivToken",
    "esteid": "cardbridge.pcsc.esteid:EsteidToken",
    "esteid-thales": "cardbridge.pcsc.esteid:EsteidThalesToken",
    "belpic": "cardbridge.pcsc.belpic:BelpicToken",
    "fineid": "cardbridge.pcsc.fineid:FineidToken",
    "fineid-v3": "cardbridge.pcsc.fineid:FineidV3Token",
}
DEFAULT_DRIVER = "piv"  # an unknown ATR: PIV tokens come with many ATRs


def driver_class(name: str) -> type[CardToken] | None:
    """The token class of driver ``name``; None when there is no such driver."""
    target = DRIVERS.get(name)
    if target is None:
        return None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, CardToken)):  # pragma: no cover - a wrong table entry
        raise TypeError(f"{target} is not a CardToken")
    return cls
