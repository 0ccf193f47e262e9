"""PIN and consent dialogs: what the service asks for, and where the PIN comes from.

The service hands a :class:`PinRequest` to a :class:`PinSource`; it gets back the PIN in a
``bytearray`` that it wipes after the one C_Login (or VERIFY) it is used for. A source
raises UserCancelledError or UserTimeoutError when the person does not give a PIN.
"""

from __future__ import annotations

import asyncio
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
    "ConsentRequest",
    "ConsentSource",
    "Dialog",
    "FixedPinSource",
    "PinRequest",
    "PinSource",
    "PinentrySource",
    "PreparedPinSource",
    "StreamPinSource",
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
        i18n.text("dialog.asking.signing" if signing else "dialog.asking", lang, origin=request.origin),
        "",
        i18n.text("dialog.certificate", lang, holder=request.holder),
        "",
    ]
    if request.status.protected_path:
        lines.append(i18n.text("dialog.pinpad", lang))
    elif request.status.name:  # the PIN as the card and its country call it
        key = "dialog.pin.named.signing" if signing else "dialog.pin.named.authentication"
        lines.append(i18n.text(key, lang, name=request.status.name))
    else:
        lines.append(i18n.text("dialog.pin.signing" if signing else "dialog.pin.authentication", lang))
    tries = _tries(request)
    if tries == 1 or request.status.final_try:
        lines.append(i18n.text("dialog.last_try", lang))
    elif tries is not None and request.error is None:
        lines.append(i18n.text("dialog.tries_left", lang, n=tries))
    elif tries is None and request.status.count_low and request.error is None:
        lines.append(i18n.text("dialog.count_low", lang))
    error = None
    if isinstance(request.error, PinRepeatedError):
        error = i18n.text("dialog.error.pin_repeated", lang)
    elif isinstance(request.error, PinIncorrectError):
        retries = request.error.retries_left
        error = (
            i18n.text("dialog.error.pin_incorrect_tries", lang, n=retries)
            if retries is not None
            else i18n.text("dialog.error.pin_incorrect", lang)
        )
    elif isinstance(request.error, PinInvalidLengthError):
        error = i18n.text("dialog.error.pin_length", lang, min=request.status.min_length, max=request.status.max_length)
    return Dialog(
        title=i18n.text("dialog.title.signing" if signing else "dialog.title.authentication", lang),
        description="\n".join(lines),
        prompt=(
            i18n.text("dialog.prompt.named", lang, name=request.status.name)
            if request.status.name
            else i18n.text("dialog.prompt", lang)
        ),
        error=error,
        ok=i18n.text("dialog.ok.signing" if signing else "dialog.ok", lang),
        cancel=i18n.text("dialog.cancel", lang),
        timeout=request.timeout,
    )


def consent_dialog_for(request: ConsentRequest) -> Dialog:
    """The texts of the dialog that asks before the signing certificate goes to a page."""
    lang = request.lang
    lines = [
        i18n.text("dialog.consent.asking", lang, origin=request.origin),
        "",
        i18n.text("dialog.certificate", lang, holder=request.holder),
        "",
        i18n.text("dialog.consent.shares", lang),
    ]
    return Dialog(
        title=i18n.text("dialog.consent.title", lang),
        description="\n".join(lines),
        ok=i18n.text("dialog.consent.ok", lang),
        cancel=i18n.text("dialog.cancel", lang),
        timeout=request.timeout,
    )


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
