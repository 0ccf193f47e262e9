"""PIN and consent dialogs: what the service asks for, and where the PIN comes from.

The service hands a :class:`PinRequest` to a :class:`PinSource`; it gets back the PIN in a
``bytearray`` that it wipes after the one C_Login (or VERIFY) it is used for. A source
raises UserCancelledError or UserTimeoutError when the person does not give a PIN.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from cardbridge import i18n
from cardbridge.errors import (
    CardbridgeError,
    PinIncorrectError,
    PinInvalidLengthError,
    PinRepeatedError,
    UserCancelledError,
)
from cardbridge.model import PinKind, PinStatus
from cardbridge.pinentry.assuan import Dialog, Pinentry, wipe

__all__ = [
    "ChoiceOption",
    "ChoiceRequest",
    "ConsentRequest",
    "ConsentSource",
    "Dialog",
    "DialogSource",
    "FixedPinSource",
    "PinRequest",
    "PinSource",
    "PinentrySource",
    "PreparedPinSource",
    "SiteRequest",
    "StreamPinSource",
    "WaitReason",
    "WaitRequest",
    "consent_dialog_for",
    "dialog_for",
    "wipe",
]


@dataclass(frozen=True, slots=True)
class PinRequest:
    """Everything a dialog shows: who asks, with which certificate, which PIN, tries left."""

    origin: str
    holder: str
    kind: PinKind
    status: PinStatus
    lang: str = i18n.DEFAULT_LANGUAGE
    error: CardbridgeError | None = None  # the previous attempt's failure
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    """Before a web page gets the signing certificate: who asks, and whose certificate it is."""

    origin: str
    holder: str
    lang: str = i18n.DEFAULT_LANGUAGE
    timeout: float | None = None


@runtime_checkable
class ConsentSource(Protocol):
    async def confirm(self, request: ConsentRequest) -> None:
        """Return when the person agrees; raise UserCancelledError (Cancel) or
        UserTimeoutError (no answer) otherwise."""
        ...


@dataclass(frozen=True, slots=True)
class SiteRequest:
    """A website that has not used the card before asks to (``origin_policy = "ask"``)."""

    origin: str
    lang: str = i18n.DEFAULT_LANGUAGE
    timeout: float | None = None


class WaitReason(enum.StrEnum):
    """Why no usable card is there yet: each gets its own text."""

    NO_CARD = "no_card"  # readers, but no card in them
    NO_READER = "no_reader"
    NO_SERVICE = "no_service"  # pcscd is not running
    NO_CERTIFICATE = "no_certificate"  # a card, but not with the certificate needed


_WAIT_REASONS = {
    WaitReason.NO_CARD: i18n.N_(
        "Put your ID card in the card reader. This window closes by itself once the card is found."
    ),
    WaitReason.NO_READER: i18n.N_(
        "No card reader is connected. Connect the card reader and put in your ID card. "
        "This window closes by itself once the card is found."
    ),
    WaitReason.NO_SERVICE: i18n.N_(
        "The smart card service (pcscd) is not running, so the card reader cannot be used. Start it "
        "('sudo systemctl start pcscd.socket') or restart the computer. "
        "This window closes by itself once the card is found."
    ),
    WaitReason.NO_CERTIFICATE: i18n.N_(
        "The card in the reader does not have the certificate needed. Put in your ID card. "
        "This window closes by itself once the card is found."
    ),
}


@dataclass(frozen=True, slots=True)
class WaitRequest:
    """Asks the person to insert the card; shown until a usable card arrives."""

    origin: str
    reason: WaitReason
    lang: str = i18n.DEFAULT_LANGUAGE
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class ChoiceOption:
    """One usable certificate, as the choice dialog names it."""

    holder: str
    issuer: str  # the issuer's common name (or its full name)
    card: str  # the token's label and where it is (reader or module)


@dataclass(frozen=True, slots=True)
class ChoiceRequest:
    """Several usable certificates: which one?"""

    origin: str
    options: tuple[ChoiceOption, ...]
    lang: str = i18n.DEFAULT_LANGUAGE
    timeout: float | None = None


@runtime_checkable
class DialogSource(Protocol):
    """The dialogs around a PIN: a new website, waiting for the card, choosing a certificate.
    Each raises UserCancelledError when the person cancels, UserTimeoutError on a timeout."""

    async def allow_site(self, request: SiteRequest) -> None:
        """Return when the person allows the website."""
        ...

    async def wait_for_card(self, request: WaitRequest) -> None:
        """Show the request until cancelled (the card arrived); the person's Cancel raises
        UserCancelledError. Never returns normally."""
        ...

    async def choose(self, request: ChoiceRequest) -> int:
        """The index of the option the person chose."""
        ...


class PinSource(Protocol):
    async def get_pin(self, request: PinRequest) -> bytearray:
        """The PIN the person typed; an empty bytearray on a PIN pad (after consent)."""
        ...


def _tries(request: PinRequest) -> int | None:
    if isinstance(request.error, PinIncorrectError) and request.error.retries_left is not None:
        return request.error.retries_left
    return request.status.retries_left


def dialog_for(request: PinRequest) -> Dialog:
    """The dialog texts for ``request``, in its language."""
    lang = request.lang
    signing = request.kind is PinKind.SIGNING
    lines = [
        (
            i18n.gettext(lang, "The website\n\n    {origin}\n\nasks you to sign a document.", origin=request.origin)
            if signing
            else i18n.gettext(lang, "The website\n\n    {origin}\n\nasks to log you in.", origin=request.origin)
        ),
        "",
        i18n.gettext(lang, "Certificate: {holder}", holder=request.holder),
        "",
    ]
    if request.status.protected_path:
        lines.append(i18n.gettext(lang, "Press OK, then type your PIN on the card reader's keypad."))
    elif request.status.name:  # the PIN as the card and its country call it
        name = request.status.name
        lines.append(
            i18n.gettext(lang, "Enter your {name} to sign if you agree.", name=name)
            if signing
            else i18n.gettext(lang, "Enter your {name} to log in if you agree.", name=name)
        )
    else:
        lines.append(
            i18n.gettext(lang, "Enter your signing PIN (PIN2) if you agree.")
            if signing
            else i18n.gettext(lang, "Enter your login PIN (PIN1) if you agree.")
        )
    tries = _tries(request)
    if tries == 1 or request.status.final_try:
        lines.append(
            # Only that PIN is blocked where the card names it (PIN1, PIN2): the other still works.
            i18n.gettext(
                lang,
                "This is your last try. If you enter a wrong PIN now, {name} will be blocked.",
                name=request.status.name,
            )
            if request.status.name
            else i18n.gettext(lang, "This is your last try. If you enter a wrong PIN now, the card will be blocked.")
        )
    elif tries is not None and request.error is None:
        lines.append(i18n.ngettext(lang, "You have {n} try left.", "You have {n} tries left.", tries, n=tries))
    elif tries is None and request.status.count_low and request.error is None:
        lines.append(
            i18n.gettext(
                lang, "A wrong PIN was entered on this card before. The card is blocked after too many wrong tries."
            )
        )
    error = None
    if isinstance(request.error, PinRepeatedError):
        error = i18n.gettext(lang, "This is the PIN the card just refused. It was not sent to the card again.")
    elif isinstance(request.error, PinIncorrectError):
        retries = request.error.retries_left
        error = (
            i18n.ngettext(
                lang, "Wrong PIN. You have {n} try left.", "Wrong PIN. You have {n} tries left.", retries, n=retries
            )
            if retries is not None
            else i18n.gettext(lang, "Wrong PIN.")
        )
    elif isinstance(request.error, PinInvalidLengthError):
        error = i18n.gettext(
            lang,
            "The PIN must have {min} to {max} characters.",
            min=request.status.min_length,
            max=request.status.max_length,
        )
    return Dialog(
        title=i18n.gettext(lang, "Sign with your ID card")
        if signing
        else i18n.gettext(lang, "Log in with your ID card"),
        description="\n".join(lines),
        prompt=(
            i18n.gettext(lang, "{name}:", name=request.status.name)
            if request.status.name
            else i18n.gettext(lang, "PIN:")
        ),
        error=error,
        ok=i18n.pgettext(lang, "button", "Sign") if signing else i18n.pgettext(lang, "button", "Log in"),
        cancel=i18n.gettext(lang, "Cancel"),
        timeout=request.timeout,
    )


def consent_dialog_for(request: ConsentRequest) -> Dialog:
    """The texts of the dialog that asks before the signing certificate goes to a page."""
    lang = request.lang
    lines = [
        i18n.gettext(lang, "The website\n\n    {origin}\n\nasks for your signing certificate.", origin=request.origin),
        "",
        i18n.gettext(lang, "Certificate: {holder}", holder=request.holder),
        "",
        i18n.gettext(
            lang, "The website will see your name and your national identity number. Press Share if you agree."
        ),
    ]
    return Dialog(
        title=i18n.gettext(lang, "Share your certificate"),
        description="\n".join(lines),
        ok=i18n.gettext(lang, "Share"),
        cancel=i18n.gettext(lang, "Cancel"),
        timeout=request.timeout,
    )


def site_dialog_for(request: SiteRequest) -> Dialog:
    """The question for a new website: its origin first, on a line of its own."""
    lang = request.lang
    return Dialog(
        title=i18n.gettext(lang, "A new website wants your ID card"),
        description="\n".join(
            (
                i18n.gettext(
                    lang,
                    "{origin}\n\nwants to use your ID card. This website has not used it before.",
                    origin=request.origin,
                ),
                "",
                i18n.gettext(
                    lang,
                    "Allow only a website you know and meant to log in to. Your answer is remembered; "
                    "undo it with 'cardbridge origins forget'.",
                ),
            )
        ),
        ok=i18n.gettext(lang, "Allow"),
        cancel=i18n.gettext(lang, "Cancel"),
        timeout=request.timeout,
    )


def wait_dialog_for(request: WaitRequest) -> Dialog:
    """A notice with one button, Cancel (pinentry has no progress dialog: the bridge closes
    this one itself when the card arrives)."""
    lang = request.lang
    return Dialog(
        title=i18n.gettext(lang, "Insert your ID card"),
        description="\n".join(
            (
                i18n.gettext(lang, "{origin}\n\nasks for your ID card.", origin=request.origin),
                "",
                i18n.gettext(lang, _WAIT_REASONS[request.reason]),
            )
        ),
        ok=i18n.gettext(lang, "Cancel"),
        timeout=request.timeout,
        one_button=True,
    )


def choice_dialog_for(request: ChoiceRequest, index: int) -> Dialog:
    """The question for option ``index``: Use this one / Next / Cancel."""
    lang = request.lang
    option = request.options[index]
    n = len(request.options)
    return Dialog(
        title=i18n.gettext(lang, "Choose a certificate"),
        description="\n".join(
            (
                i18n.ngettext(
                    lang,
                    "{origin}\n\nasks for your ID card. You have {n} certificate that fits.",
                    "{origin}\n\nasks for your ID card. You have {n} certificates that fit.",
                    n,
                    origin=request.origin,
                    n=n,
                ),
                "",
                i18n.gettext(
                    lang,
                    "Certificate {index} of {n}:\n    Holder: {holder}\n    Issuer: {issuer}\n    Card: {card}",
                    index=index + 1,
                    n=n,
                    holder=option.holder,
                    issuer=option.issuer,
                    card=option.card,
                ),
                "",
                i18n.gettext(lang, "Do you want to use this certificate?"),
            )
        ),
        ok=i18n.gettext(lang, "Use this one"),
        notok=i18n.gettext(lang, "Next"),
        cancel=i18n.gettext(lang, "Cancel"),
        timeout=request.timeout,
    )


MAX_CHOICE_DIALOGS = 12  # "Next" goes round the options; a choice is made within this many


@runtime_checkable
class PreparedPinSource(PinSource, Protocol):
    """A source that can get ready ahead of the first dialog: the service calls ``prepare``
    once the operation starts, with a task group that the operation owns, and ``aclose``
    when it ends (before the group closes)."""

    def prepare(self, group: asyncio.TaskGroup) -> None: ...

    async def aclose(self) -> None: ...


class PinentrySource:
    """Asks through a pinentry program (GnuPG's Assuan protocol).

    Used by the service, the program is started (``prepare``) while the card is looked up;
    it shows nothing until asked. ``aclose`` ends it if it was never asked.
    """

    def __init__(self, program: str) -> None:
        self.program = program
        self._started: asyncio.Task[Pinentry | CardbridgeError] | None = None

    def prepare(self, group: asyncio.TaskGroup) -> None:
        """Start the program now, ahead of the first dialog, as a task of ``group``."""
        if self._started is None:
            self._started = group.create_task(self._start())

    async def _start(self) -> Pinentry | CardbridgeError:
        # A failure to start is the dialog's failure, told when a dialog is asked for; as a
        # task's exception it would cancel the card lookup that runs beside it.
        try:
            return await Pinentry(self.program).start()
        except CardbridgeError as exc:
            return exc

    async def aclose(self) -> None:
        """End a program that ``prepare`` started and no dialog used. A cancel while it
        waits is not swallowed; the program is closed on that path too."""
        started, self._started = self._started, None
        if started is None:
            return
        try:
            if not started.done():
                started.cancel()  # a start cancelled midway ends its own program
                await asyncio.wait({started})
        finally:
            if started.done() and not started.cancelled():
                outcome = started.result()
                if isinstance(outcome, Pinentry):
                    await outcome.close(kill=True)

    async def _take(self) -> Pinentry:
        """The program ``prepare`` started, else a new one. A cancel while it starts leaves
        it to ``aclose``."""
        started = self._started
        if started is None:
            return Pinentry(self.program)
        outcome = await asyncio.shield(started)
        self._started = None
        if isinstance(outcome, CardbridgeError):
            raise outcome
        return outcome

    async def confirm(self, request: ConsentRequest) -> None:
        """Ask with OK and Cancel (pinentry's CONFIRM); returns when the person agrees."""
        dialog = consent_dialog_for(request)
        pinentry = await self._take()
        async with pinentry:
            await pinentry.confirm(dialog)

    async def allow_site(self, request: SiteRequest) -> None:
        """pinentry's CONFIRM: Allow or Cancel."""
        pinentry = await self._take()
        async with pinentry:
            await pinentry.confirm(site_dialog_for(request))

    async def wait_for_card(self, request: WaitRequest) -> None:
        """pinentry's CONFIRM --one-button, its button saying Cancel; ending this task ends
        the program, so the window closes when the card arrives."""
        pinentry = await self._take()
        async with pinentry:
            await pinentry.confirm(wait_dialog_for(request))
        raise UserCancelledError("The person cancelled while waiting for the card.")

    async def choose(self, request: ChoiceRequest) -> int:
        """One CONFIRM per option (Use this one / Next / Cancel), round the options."""
        for turn in range(MAX_CHOICE_DIALOGS):
            index = turn % len(request.options)
            pinentry = await self._take()
            async with pinentry:
                if await pinentry.ask(choice_dialog_for(request, index)):
                    return index
        raise UserCancelledError("No certificate was chosen.")

    async def get_pin(self, request: PinRequest) -> bytearray:
        dialog = dialog_for(request)
        pinentry = await self._take()
        async with pinentry:
            if request.status.protected_path:
                await pinentry.confirm(dialog)
                return bytearray()
            return await pinentry.get_pin(dialog)


class StreamPinSource:
    """Reads one PIN, one line, from a binary stream (``--pin-stdin``); a second request
    is refused, so a wrong PIN is never retried."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._used = False

    async def get_pin(self, request: PinRequest) -> bytearray:
        if self._used:
            if request.error is not None:
                raise request.error  # no second PIN: the card's answer to the first stands
            raise UserCancelledError("Only one PIN is read from standard input.")
        self._used = True
        if request.status.protected_path:
            return bytearray()
        line = bytearray(await asyncio.to_thread(self._stream.readline, 1024))
        while line and line[-1] in (0x0A, 0x0D):
            line.pop()
        if not line:
            raise UserCancelledError("No PIN on standard input.")
        return line


class FixedPinSource:
    """Gives one known PIN, once: only for emulated cards (``cardbridge demo``), whose PIN is
    public. Like a person, it is asked through the same request and never retried."""

    def __init__(self, pin: str) -> None:
        self._pin: str | None = pin

    async def get_pin(self, request: PinRequest) -> bytearray:
        pin, self._pin = self._pin, None
        if pin is None:
            if request.error is not None:
                raise request.error  # no second PIN: the card's answer to the first stands
            raise UserCancelledError("The scripted PIN was already used.")
        return bytearray(pin.encode("utf-8"))
