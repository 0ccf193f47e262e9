"""Certificate selection: which certificate on which card an operation uses.

:class:`CertificateFinder` surveys the backends for the certificates of a purpose that the
caller's :class:`Selection` allows (a card two backends reach counts once), waits for a card
with an "insert your ID card" notice when none is usable yet, and lets the person choose
when several fit. It reads cards through :class:`~cardbridge.workers.Workers` (never on the
event loop) and is woken by the card events of the :class:`~cardbridge.events.EventHub`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cardbridge.errors import (
    AmbiguousCertificateError,
    CardbridgeError,
    CardRemovedError,
    CardResetError,
    NoCardError,
    NoCertificateError,
    NoReadersError,
    NoTokenError,
    ServiceNotRunningError,
    UnsupportedCardError,
    UserCancelledError,
    UserTimeoutError,
)
from cardbridge.events import EventHub
from cardbridge.model import (
    Backend,
    BackendKind,
    CertificateInfo,
    PinStatus,
    Purpose,
    ReadersState,
    SignatureAlgorithm,
    Token,
    TokenInfo,
    names_reader,
)
from cardbridge.pinentry import ChoiceOption, ChoiceRequest, DialogSource, WaitReason, WaitRequest
from cardbridge.workers import Deadline, Workers, end_task

__all__ = ["POLL_INTERVAL", "Candidate", "CertificateFinder", "Selection", "once_per_card"]

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0  # seconds between looks for a card while waiting for one (card events wake it sooner)
# No usable card yet, for one of these reasons: the person is asked to insert the card and
# the operation waits. Any other failure (a card another program holds, a hung module, a
# bad configuration) ends it with its own code.
_WAITABLE = (
    NoTokenError,
    NoCardError,
    NoReadersError,
    NoCertificateError,
    ServiceNotRunningError,
    CardRemovedError,
    CardResetError,
    UnsupportedCardError,
)


@dataclass(frozen=True, slots=True)
class Selection:
    """How the caller narrows the choice of certificate (all optional)."""

    token_label: str | None = None
    certificate_sha256: str | None = None
    reader: str | None = None

    @property
    def narrowed(self) -> bool:
        """The caller named a token or a certificate: several that fit are its mistake, not
        a choice to put to the person."""
        return self.token_label is not None or self.certificate_sha256 is not None


@dataclass(frozen=True, slots=True)
class Candidate:
    token: Token
    certificate: CertificateInfo
    # What the token can sign with the key and its PIN state, when the survey read them.
    ready: tuple[Sequence[SignatureAlgorithm], PinStatus] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "sha256": self.certificate.sha256,
            "holder": self.certificate.holder_name,
            "issuer": self.certificate.issuer,
            "token": self.token.info.label,
            "source": self.token.info.source,
        }


class CertificateFinder:
    """Finds the one certificate an operation uses, on ``backends`` (in their order)."""

    def __init__(self, backends: Sequence[Backend], workers: Workers, events: EventHub) -> None:
        self._backends = tuple(backends)
        self._workers = workers
        self._events = events

    async def candidates(
        self, purpose: Purpose, selection: Selection
    ) -> tuple[list[Candidate], CardbridgeError | None]:
        """Certificates for ``purpose`` that ``selection`` allows, at most one per SHA-256
        (a card two backends reach counts once), or none and why. One worker call per
        backend where its tokens share its thread: each call to a worker costs a thread
        hand-over."""
        seen_token = False
        errors: list[CardbridgeError] = []
        found: dict[str, Candidate] = {}
        direct: set[str] = set()  # readers whose card a built-in driver read: not asked of modules
        readers: ReadersState | None = None  # the PC/SC readers as the built-in drivers saw them
        drivers: Backend | None = None  # the backend whose built-in drivers served a card
        for backend in self._backends:
            if drivers is not None and readers is None:
                try:
                    readers = await self._workers.run(drivers, drivers.readers_state)
                except CardbridgeError as exc:
                    log.info("backend %s: %s", drivers.name, exc)
            try:
                surveyed = await self._workers.run(
                    backend, _survey, backend, purpose, selection, frozenset(direct), readers
                )
            except CardbridgeError as exc:
                log.info("backend %s: %s", backend.name, exc)
                errors.append(exc)
                continue
            for token, surveyed_candidates in surveyed:
                seen_token = True
                if surveyed_candidates is None:  # its thread is not the backend's: ask it there
                    try:
                        certificates = await self._workers.run(token, token.certificates)
                        surveyed_candidates = [Candidate(token, c) for c in _matching(certificates, purpose, selection)]
                    except CardbridgeError as exc:
                        surveyed_candidates = exc
                if isinstance(surveyed_candidates, CardbridgeError):
                    errors.append(surveyed_candidates)
                    continue
                if token.info.backend == BackendKind.PCSC and token.info.reader:
                    direct.add(token.info.reader)
                    drivers = backend
                for candidate in surveyed_candidates:
                    found.setdefault(candidate.certificate.sha256, candidate)
        if found:
            return list(found.values()), None
        if errors:
            return [], _most_telling(errors)
        if not seen_token:
            return [], NoTokenError("No ID card was found. Insert your card into the reader.")
        return [], NoCertificateError(f"No {purpose} certificate was found on the card.")

    async def ready(self, candidate: Candidate) -> tuple[Sequence[SignatureAlgorithm], PinStatus]:
        """What the candidate's token can sign with its key, and the PIN state."""
        if candidate.ready is not None:
            return candidate.ready
        return await self._workers.run(candidate.token, _algorithms_and_pin, candidate.token, candidate.certificate)

    async def choose(
        self,
        purpose: Purpose,
        selection: Selection,
        origin: str,
        dialogs: DialogSource | None,
        lang: str,
        deadline: Deadline,
    ) -> Candidate:
        """The one certificate to use. No usable card: with ``dialogs``, the person is asked
        to insert it and the search goes on until one arrives (or the person cancels or
        the ``deadline`` passes). Several: with ``dialogs`` and a selection the caller did
        not narrow itself, the person chooses; otherwise AMBIGUOUS_CERTIFICATE."""
        candidates, failure = await self.candidates(purpose, selection)
        if not candidates:
            if dialogs is None or not isinstance(failure, _WAITABLE):
                raise failure or NoCertificateError(f"No {purpose} certificate was found on the card.")
            candidates = await self._wait_for_card(purpose, selection, origin, dialogs, lang, failure, deadline)
        if len(candidates) == 1:
            return candidates[0]
        if dialogs is None or selection.narrowed:
            raise AmbiguousCertificateError(
                f"{len(candidates)} {purpose} certificates fit; choose one by its SHA-256 or the token label.",
                candidates=[c.describe() for c in candidates],
            )
        request = ChoiceRequest(
            origin=origin, options=tuple(_option(c) for c in candidates), lang=lang, timeout=deadline.left()
        )
        index = await deadline.answer(dialogs.choose(request), "No certificate was chosen in time.")
        chosen = candidates[index]
        log.info("the person chose %s of %d certificates", chosen.certificate.sha256[:16], len(candidates))
        return chosen

    async def _wait_for_card(
        self,
        purpose: Purpose,
        selection: Selection,
        origin: str,
        dialogs: DialogSource,
        lang: str,
        failure: CardbridgeError,
        deadline: Deadline,
    ) -> list[Candidate]:
        """Show "insert your ID card" (its text says why: no card, no reader, pcscd down)
        and look again on every card event and at least once a second, until a usable
        certificate is there; then close the dialog. Cancel → USER_CANCELLED; after the
        ``deadline`` → USER_TIMEOUT."""
        shown: WaitReason | None = None
        dialog: asyncio.Task[None] | None = None
        log.info("no usable card yet (%s); waiting", failure.code)
        with self._events.subscribe(maxsize=8) as events:  # PC/SC card events wake the search at once
            try:
                while True:
                    reason = _wait_reason(failure)
                    if reason is not shown:  # a new situation: a new text
                        await end_task(dialog)
                        request = WaitRequest(origin, reason, lang, timeout=max(1.0, deadline.left()))
                        dialog = asyncio.ensure_future(dialogs.wait_for_card(request))
                        shown = reason
                    assert dialog is not None
                    remaining = deadline.left()
                    if remaining <= 0:
                        raise UserTimeoutError("No ID card was inserted in time.")
                    event = asyncio.ensure_future(events.get())
                    try:
                        await asyncio.wait({dialog, event}, timeout=min(POLL_INTERVAL, remaining))
                    finally:
                        event.cancel()
                    if dialog.done():
                        dialog.result()  # the person's Cancel, a timeout, a dialog that failed
                        raise UserCancelledError("The person cancelled while waiting for the card.")
                    candidates, found_failure = await self.candidates(purpose, selection)
                    if candidates:
                        log.info("a usable card arrived")
                        return candidates
                    failure = found_failure or NoCertificateError(f"No {purpose} certificate was found on the card.")
                    if not isinstance(failure, _WAITABLE):
                        raise failure
            finally:
                await end_task(dialog)


def once_per_card(infos: Sequence[TokenInfo]) -> list[TokenInfo]:
    """Each card once, without reading it (for a status): a PKCS#11 slot in a reader where
    a built-in driver has the card (OpenSC's module, registered with p11-kit) is the same
    card, and the direct driver wins, as it does when a login surveys the certificates. A
    module names a slot's reader in its description (at most 64 characters: a longer
    reader name comes cut)."""
    direct = [info.reader for info in infos if info.backend == BackendKind.PCSC and info.reader]
    return [info for info in infos if info.backend == BackendKind.PCSC or not names_reader(info.reader, direct)]


def _most_telling(errors: Sequence[CardbridgeError]) -> CardbridgeError:
    """Of the backends' failures, the one that tells the person most: pcscd down, then no
    reader, then the first."""
    for kind in (ServiceNotRunningError, NoReadersError):
        for error in errors:
            if isinstance(error, kind):
                return error
    return errors[0]


def _wait_reason(failure: CardbridgeError) -> WaitReason:
    if isinstance(failure, ServiceNotRunningError):
        return WaitReason.NO_SERVICE
    if isinstance(failure, NoReadersError):
        return WaitReason.NO_READER
    if isinstance(failure, NoCertificateError | UnsupportedCardError):
        return WaitReason.NO_CERTIFICATE
    return WaitReason.NO_CARD


def _issuer_name(issuer: str) -> str:
    """The issuer's common name from an RFC 4514 name (``CN=…,O=…``), else the whole name."""
    for part in issuer.replace("\\,", "\0").split(","):
        if part.startswith("CN="):
            return part[3:].replace("\0", ",").replace("\\", "")
    return issuer


def card_name(info: TokenInfo, holder: str) -> str:
    """How the choice dialog names the card beside the certificate's ``holder``: its label,
    or its model (e.g. "Estonian ID card") when the label is the holder's name (the built-in
    drivers label a card by its holder), then the reader it is in."""
    name = info.model if info.label == holder and info.model else info.label
    return f"{name} ({info.reader})" if info.reader and info.reader != name else name


def _option(candidate: Candidate) -> ChoiceOption:
    holder = candidate.certificate.holder_name
    return ChoiceOption(
        holder=holder,
        issuer=_issuer_name(candidate.certificate.issuer),
        card=card_name(candidate.token.info, holder),
    )


def _matching(certificates: Sequence[CertificateInfo], purpose: Purpose, selection: Selection) -> list[CertificateInfo]:
    wanted = selection.certificate_sha256.lower() if selection.certificate_sha256 else None
    return [c for c in certificates if c.purpose is purpose and (wanted is None or c.sha256 == wanted)]


def _survey(
    backend: Backend, purpose: Purpose, selection: Selection, direct: frozenset[str], readers: ReadersState | None
) -> list[tuple[Token, list[Candidate] | CardbridgeError | None]]:
    """On ``backend``'s worker: its tokens that ``selection`` allows, outside the readers
    ``direct`` (a built-in driver read their card; ``readers``: the PC/SC readers as it saw
    them, see ``Backend.tokens``), with their candidate certificates for
    ``purpose`` (a token's only one with its algorithms and PIN state, read in the same
    call), or the error reading them; None for each token when the backend's tokens have
    worker threads of their own (``Backend.tokens_share_worker``)."""
    surveyed: list[tuple[Token, list[Candidate] | CardbridgeError | None]] = []
    for token in backend.tokens(direct, readers):
        info = token.info
        if selection.reader is not None and selection.reader not in (info.reader, info.source):
            continue
        if selection.token_label is not None and info.label != selection.token_label:
            continue
        if not backend.tokens_share_worker:
            surveyed.append((token, None))
            continue
        try:
            certificates = _matching(token.certificates(), purpose, selection)
            if len(certificates) == 1:  # the usual case: get it ready now, not in another call
                candidates = [Candidate(token, certificates[0], _algorithms_and_pin(token, certificates[0]))]
            else:
                candidates = [Candidate(token, c) for c in certificates]
        except CardbridgeError as exc:
            surveyed.append((token, exc))
        else:
            surveyed.append((token, candidates))
    return surveyed


def _algorithms_and_pin(token: Token, certificate: CertificateInfo) -> tuple[Sequence[SignatureAlgorithm], PinStatus]:
    """On the token's worker: what it can sign with ``certificate``'s key, and its PIN state."""
    return token.supported_algorithms(certificate), token.pin_status(certificate)
