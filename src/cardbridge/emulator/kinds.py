"""The kinds of virtual card ``cardbridge dev card --kind`` runs, by name.

Each kind is a :class:`CardKind`: how to make its card (keys and certificates made once in
the card's folder, from the development PKI) with the PINs given, and which PINs it has
(names and defaults). A kind whose card can be issued with a PIN not yet activated by its
holder (the Thales application's cards: GET DATA says DF2F 00, VERIFY is refused until the
PIN is changed) names those PINs in ``not_active_pins``; ``create(..., not_active=("pin2",))``
issues such a card. :data:`KINDS` maps the name to ``module:attribute`` (imported only
when asked for); ``None`` marks a kind that is announced but not built yet.

To add a kind: a module with a ``CardKind`` object, and its line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from cardbridge.errors import InvalidInputError

if TYPE_CHECKING:
    from cardbridge.emulator.iso7816 import Applet
    from cardbridge.emulator.virtual_card import VirtualCard

KINDS: dict[str, str | None] = {
    "piv": "cardbridge.emulator.virtual_card:PIV_KIND",
    "esteid": "cardbridge.emulator.esteid:KIND",
    "esteid-thales": "cardbridge.emulator.esteid_thales:KIND",
    "fineid": "cardbridge.emulator.fineid:KIND",
    "fineid-v3": "cardbridge.emulator.fineid:KIND_V3",
    "belpic": "cardbridge.emulator.belpic_card:BELPIC_KIND",
}


@dataclass(frozen=True, slots=True)
class PinDefault:
    """One of a kind's PINs: its option name (``pin``, ``pin2``, ``puk``), what the card
    calls it, and the development default."""

    option: str
    name: str
    default: str


class CardKind(Protocol):
    """How to make one kind of virtual card."""

    name: str
    title: str  # "Estonian ID card (IDEMIA, 2018)"
    pins: tuple[PinDefault, ...]
    keys: tuple[str, ...]  # the --key choices; the first is the default
    not_active_pins: tuple[str, ...]  # the PIN options the card can be issued with not activated

    def create(
        self,
        folder: Path,
        *,
        reader: int,
        key: str | None,
        pins: Mapping[str, str],
        not_active: Collection[str] = (),
    ) -> VirtualCard:
        """The card (not started), its keys and certificates made once in ``folder``; the
        PINs named in ``not_active`` (options of :attr:`not_active_pins`) not yet activated."""
        ...


@runtime_checkable
class SetsPinTries(Protocol):
    """An applet whose holder's PINs can be personalised with another retry limit."""

    def set_pin_tries(self, tries: int) -> None:
        """Each of the holder's PINs with ``tries`` tries (its counter full)."""
        ...


PIN_TRIES_RANGE = range(1, 16)  # a retry counter the card can report in 63Cx (one hex digit)


def check_pin_tries(tries: int | None) -> None:
    """InvalidInputError unless ``tries`` is None (the kind's own limit) or 1 to 15."""
    if tries is not None and tries not in PIN_TRIES_RANGE:
        raise InvalidInputError(f"A PIN retry limit is 1 to 15 tries, not {tries} (63Cx has one hex digit).")


@runtime_checkable
class IssuesPinsNotActive(Protocol):
    """An applet that can be issued with a PIN its holder has not activated yet."""

    def issue_not_active(self, option: str) -> None:
        """Mark the PIN ``option`` (``pin``, ``pin2``) as not activated."""
        ...


def check_not_active(kind: CardKind, not_active: Collection[str]) -> None:
    """InvalidInputError when ``kind`` cannot issue one of the PINs ``not_active`` not activated."""
    unknown = [option for option in not_active if option not in kind.not_active_pins]
    if unknown:
        names = {p.option: p.name for p in kind.pins}
        listed = ", ".join(names.get(o, o) for o in unknown)
        raise InvalidInputError(f"The {kind.title} cannot be issued with {listed} not activated.")


@dataclass(slots=True)
class AppletKind:
    """A :class:`CardKind` whose card is one applet in the virtual reader, made by
    ``make(folder, reader, key, pins)``: ``key`` is one of :attr:`keys` (the first when
    none is asked for), ``pins`` has every PIN of :attr:`pins` by option name (the defaults
    where none is given). A new card profile is one such object and its line in KINDS."""

    name: str
    title: str
    pins: tuple[PinDefault, ...]
    keys: tuple[str, ...]
    make: Callable[[Path, int, str, Mapping[str, str]], Applet]
    not_active_pins: tuple[str, ...] = ()

    def create(
        self,
        folder: Path,
        *,
        reader: int,
        key: str | None,
        pins: Mapping[str, str],
        not_active: Collection[str] = (),
    ) -> VirtualCard:
        from cardbridge.emulator.virtual_card import VirtualCard

        if key is not None and key not in self.keys:
            raise InvalidInputError(f"The {self.title} has no {key} key; choose one of {', '.join(self.keys)}.")
        check_not_active(self, not_active)
        applet = self.make(folder, reader, key or self.keys[0], pins_with_defaults(self, pins))
        for option in not_active:
            if not isinstance(applet, IssuesPinsNotActive):  # pragma: no cover - a wrong kind definition
                raise TypeError(f"{type(applet).__name__} cannot issue a PIN not activated")
            applet.issue_not_active(option)
        return VirtualCard(applet, reader=reader)


def card_kind(name: str) -> CardKind:
    """The kind ``name``; InvalidInputError for an unknown kind or one not built yet."""
    if name not in KINDS:
        raise InvalidInputError(f"Unknown card kind {name!r}; choose one of {', '.join(KINDS)}.")
    target = KINDS[name]
    if target is None:
        built = ", ".join(k for k, v in KINDS.items() if v is not None)
        raise InvalidInputError(f"The {name} virtual card is not built yet; available now: {built}.")
    module_name, _, attribute = target.partition(":")
    kind: CardKind = getattr(importlib.import_module(module_name), attribute)
    return kind


def pins_with_defaults(kind: CardKind, given: Mapping[str, str | None]) -> dict[str, str]:
    """The kind's PINs: the ones given, else the defaults. InvalidInputError for a PIN
    given that the kind does not have (``pin2`` for a card with one PIN), rather than
    dropping it."""
    options = {p.option for p in kind.pins}
    extra = [option for option, value in given.items() if value is not None and option not in options]
    if extra:
        has = ", ".join(p.name for p in kind.pins)
        flags = " and ".join(f"--{option}" for option in extra)
        count = "one PIN" if len(kind.pins) == 1 else f"{len(kind.pins)} PINs"
        verb = "does" if len(extra) == 1 else "do"
        named = "" if has == "PIN" else f" ({has})"
        raise InvalidInputError(f"The {kind.title} has {count}{named}: {flags} {verb} not apply to it.")
    return {p.option: given.get(p.option) or p.default for p in kind.pins}
