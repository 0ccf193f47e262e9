"""One async façade for all card work.

The CLI, the HTTP server and the native-messaging host call this and nothing below it.
It enforces the order of a login: the origin and nonce rules first, then the card, the
dialog (origin shown before the PIN is asked for), one login per PIN the person gives,
and the signature over ``H(origin) || H(nonce)`` only. Card I/O runs on each backend's own
worker thread, never on the event loop; one card operation runs at a time (another gets
BUSY); a person who walks away gets USER_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from cardbridge.authtoken import AuthToken, authentication_digest, check_nonce, check_origin
from cardbridge.certs import allows_login, public_key_of
from cardbridge.errors import (
    AmbiguousCertificateError,
    BusyError,
    CardbridgeError,
    CardRemovedError,
    CardResetError,
    DualUseKeyError,
    InvalidInputError,
    ModuleError,
    NoCardError,
    NoCertificateError,
    NoReadersError,
    NoTokenError,
    OriginNotAllowedError,
    PinBlockedError,
    PinIncorrectError,
    PinInvalidLengthError,
    PinRepeatedError,
    ServiceNotRunningError,
    UnsupportedCardError,
    UnsupportedKeyError,
    UserCancelledError,
    UserTimeoutError,
)
from cardbridge.model import (
    HASH_LENGTHS,
    Backend,
    CertificateInfo,
    PinKind,
    PinStatus,
    Purpose,
    SignatureAlgorithm,
    Token,
    TokenInfo,
    TokenListing,
)
from cardbridge.origins import Decision, SitePolicy
from cardbridge.pinentry import (
    ChoiceOption,
    ChoiceRequest,
    ConsentRequest,
    ConsentSource,
    DialogSource,
    PinRequest,
    PinSource,
    PreparedPinSource,
    SiteRequest,
    WaitReason,
    WaitRequest,
    wipe,
)

if TYPE_CHECKING:
    from cardbridge.config import Config

log = logging.getLogger(__name__)
T = TypeVar("T")

_EC_HASH = {256: "SHA-256", 384: "SHA-384", 521: "SHA-512"}
MAX_TRIES_WITHOUT_COUNTER = 3  # PINs sent per login to a token that reports no tries left
MAX_DIALOGS = 10  # PIN dialogs per login, whatever they are answered with
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


def authentication_algorithm(
    certificate: CertificateInfo, supported: Sequence[SignatureAlgorithm]
) -> SignatureAlgorithm:
    """EC P-256/384/521 → ES256/384/512; RSA → RS256, or PS256 when only PSS is offered."""
    if certificate.key_type == "EC":
        hash_function = _EC_HASH.get(certificate.key_size)
        wanted = SignatureAlgorithm("ECC", hash_function or "", "NONE")
        if hash_function and wanted in supported:
            return wanted
    elif certificate.key_type == "RSA":
        for padding in ("PKCS1.5", "PSS"):
            wanted = SignatureAlgorithm("RSA", "SHA-256", padding)
            if wanted in supported:
                return wanted
    raise UnsupportedKeyError(
        f"The card cannot sign with its {certificate.key_type}-{certificate.key_size} authentication key."
    )


class ReaderState(Protocol):
    """A reader as a card watcher last saw it (``cardbridge.pcsc.ReaderInfo``)."""

    @property
    def name(self) -> str: ...

    @property
    def card_present(self) -> bool: ...


class WatchedEvent(Protocol):
    """A reader or card event (``cardbridge.pcsc.CardEvent``): ``to_dict()`` has ``type``."""

    def to_dict(self) -> dict[str, Any]: ...


class CardWatcher(Protocol):
    """Something that sees readers and cards come and go (``cardbridge.pcsc.CardMonitor``).
    It calls subscribers on its own thread; ``readers()`` does no I/O."""

    def subscribe(self, callback: Callable[[WatchedEvent], None]) -> Callable[[], None]: ...

    def readers(self) -> Sequence[ReaderState]: ...


class EventSubscription:
    """Card events for one listener, in order; a slow listener loses the oldest ones
    (and gets an ``overflow`` event in their place). Use as a context manager."""

    def __init__(self, unsubscribe: Callable[[EventSubscription], None], maxsize: int = 64) -> None:
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        self._unsubscribe = unsubscribe
        self.closed = False

    def put(self, event: dict[str, Any]) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            if self._queue.full():  # pragma: no cover - maxsize 1
                self._queue.get_nowait()
            self._queue.put_nowait({"type": "overflow"})
        self._queue.put_nowait(event)

    async def get(self) -> dict[str, Any]:
        """The next event (cancel-safe: a timeout around it loses nothing)."""
        return await self._queue.get()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._unsubscribe(self)

    def __enter__(self) -> EventSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CardService:
    """The card operations, for one process. Close it with :meth:`aclose`."""

    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        user_timeout: float = 120.0,
        allow_http_localhost: bool = False,
        card_timeout: float = 30.0,
        sites: SitePolicy | None = None,
    ) -> None:
        """``sites``: which websites may use the card, and the person's answers; None when
        the caller decided that already (every origin passed in is allowed, nobody is asked)."""
        self._backends = list(backends)
        self.sites = sites
        self.user_timeout = user_timeout
        # The person's time for the operation under way (loop time): its dialogs share it.
        self._deadline: float | None = None
        self.card_timeout = card_timeout
        self._hung: set[int] = set()
        self.allow_http_localhost = allow_http_localhost
        self._operation = asyncio.Lock()
        self._subscriptions: set[EventSubscription] = set()
        self._watcher: CardWatcher | None = None
        self._unwatch: Callable[[], None] | None = None

    @property
    def backends(self) -> tuple[Backend, ...]:
        """Where the service looks for cards, in order (the built-in PC/SC drivers first)."""
        return tuple(self._backends)

    @property
    def busy(self) -> bool:
        """True while a card operation (and its dialog) is under way."""
        return self._operation.locked()

    async def aclose(self) -> None:
        """Close every backend, off the event loop and all at once: each waits up to its own
        limit for a call in progress (``SHUTDOWN_WAIT``), so together they take no longer
        than the slowest, and the loop keeps serving meanwhile."""
        self.unwatch()
        await asyncio.gather(*(asyncio.to_thread(backend.close) for backend in self._backends))

    # -- readers, cards and events (no card I/O) ------------------------------------------

    def watch(self, watcher: CardWatcher) -> None:
        """Feed ``watcher``'s events to :meth:`subscribe` listeners. Call on the event loop."""
        loop = asyncio.get_running_loop()

        def on_event(event: WatchedEvent) -> None:  # on the watcher's thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens any more
                loop.call_soon_threadsafe(self.publish, event.to_dict())

        self.unwatch()
        self._watcher = watcher
        self._unwatch = watcher.subscribe(on_event)

    def unwatch(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
        self._unwatch = None
        self._watcher = None

    def readers(self) -> list[ReaderState] | None:
        """The readers the watcher last saw; None when nothing watches readers.
        Raises ServiceNotRunningError when the PC/SC service is down."""
        return None if self._watcher is None else list(self._watcher.readers())

    def publish(self, event: Mapping[str, Any]) -> None:
        """Hand ``event`` (a JSON object with ``type``) to every listener. On the loop only."""
        for subscription in list(self._subscriptions):
            subscription.put(dict(event))

    def subscribe(self, maxsize: int = 64) -> EventSubscription:
        """Listen to card events until the subscription is closed."""
        subscription = EventSubscription(self._subscriptions.discard, maxsize)
        self._subscriptions.add(subscription)
        return subscription

    async def token_infos(self) -> tuple[list[TokenInfo], list[CardbridgeError]]:
        """The tokens present now (no certificates, no login, no operation lock), and the
        errors of backends that could not list theirs."""
        tokens, errors = await self._tokens()
        return [token.info for token in tokens], errors

    async def _run(
        self,
        executor_owner: Token | Backend,
        fn: Callable[..., T],
        *args: Any,
        timeout: float | None = None,
        then: Callable[[], None] | None = None,
    ) -> T:
        """Run blocking card work on its backend's worker thread, bounded by ``card_timeout``.

        A card or module that does not answer (a hung PKCS#11 module, a reader that stopped
        talking) gives MODULE_ERROR; its worker is marked hung and refused at once until
        the stuck call returns, so the bridge keeps answering for every other backend.

        ``then`` is called once the call is over — returned, failed, or cancelled before it
        started — even when the caller stopped waiting (a cancel, a timeout); never while
        the call runs. It wipes a PIN the call reads.
        """
        executor = executor_owner.executor
        key = id(executor)
        try:
            if key in self._hung:
                raise ModuleError(
                    "The card reader or its PKCS#11 module stopped answering; unplug the reader or restart."
                )
            work = executor.submit(fn, *args)
        except BaseException:
            if then is not None:
                then()
            raise
        if then is not None:
            work.add_done_callback(lambda _: then())
        future = asyncio.wrap_future(work)
        limit = self.card_timeout if timeout is None else timeout
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the result of a call
        # that ended just as its caller was cancelled, and the login went on after the cancel.
        # The shield keeps the worker's future: the call runs to its end on its thread anyway.
        deadline = asyncio.timeout(limit)
        try:
            async with deadline:
                return await asyncio.shield(future)
        except BaseException as exc:
            # The caller gave up: a call that has not started never will (a status poll must
            # not queue behind a long C_Login); ``then`` still runs, from the cancel.
            work.cancel()
            if not future.done():  # nobody waits for the call any more: its outcome goes nowhere
                future.add_done_callback(_forget)
            if not isinstance(exc, TimeoutError) or not deadline.expired():
                raise
            self._hung.add(key)
            future.add_done_callback(lambda _: self._hung.discard(key))
            log.warning("%s did not answer within %.0f s", getattr(executor_owner, "name", "a card"), limit)
            raise ModuleError(f"The card or its PKCS#11 module did not answer within {limit:g} seconds.") from exc

    # -- discovery ---------------------------------------------------------------------

    async def _tokens(self) -> tuple[list[Token], list[CardbridgeError]]:
        tokens: list[Token] = []
        errors: list[CardbridgeError] = []
        for backend in self._backends:
            try:
                tokens.extend(await self._run(backend, backend.tokens))
            except CardbridgeError as exc:
                log.info("backend %s: %s", backend.name, exc)
                errors.append(exc)
        return tokens, errors

    async def list_tokens(self) -> list[TokenListing]:
        """Every token and its certificates; a token that fails is listed with its error."""
        listings: list[TokenListing] = []
        tokens, errors = await self._tokens()
        if not tokens and errors:
            raise errors[0]
        seen: set[str] = set()
        for token in tokens:
            try:
                certificates = tuple(await self._run(token, token.certificates))
                key = {c.sha256 for c in certificates}
                if certificates and key <= seen:
                    continue  # the same card through another backend (a PKCS#11 slot of it)
                seen |= key
                pin = await self._run(token, token.pin_status, certificates[0]) if certificates else None
                listings.append(TokenListing(token.info, certificates, pin))
            except CardbridgeError as exc:
                listings.append(TokenListing(token.info, (), None, exc.to_dict()))
        return listings

    async def _candidates(
        self, purpose: Purpose, selection: Selection
    ) -> tuple[list[Candidate], CardbridgeError | None]:
        """Certificates for ``purpose`` that ``selection`` allows, at most one per SHA-256
        (a card two backends reach counts once), or none and why. One worker call per
        backend where its tokens share its thread: each call to a worker costs a thread
        hand-over."""
        seen_token = False
        errors: list[CardbridgeError] = []
        found: dict[str, Candidate] = {}
        for backend in self._backends:
            try:
                surveyed = await self._run(backend, _survey, backend, purpose, selection)
            except CardbridgeError as exc:
                log.info("backend %s: %s", backend.name, exc)
                errors.append(exc)
                continue
            for token, surveyed_candidates in surveyed:
                seen_token = True
                if surveyed_candidates is None:  # its thread is not the backend's: ask it there
                    try:
                        certificates = await self._run(token, token.certificates)
                        surveyed_candidates = [Candidate(token, c) for c in _matching(certificates, purpose, selection)]
                    except CardbridgeError as exc:
                        surveyed_candidates = exc
                if isinstance(surveyed_candidates, CardbridgeError):
                    errors.append(surveyed_candidates)
                    continue
                for candidate in surveyed_candidates:
                    found.setdefault(candidate.certificate.sha256, candidate)
        if found:
            return list(found.values()), None
        if errors:
            return [], _most_telling(errors)
        if not seen_token:
            return [], NoTokenError("No ID card was found. Insert your card into the reader.")
        return [], NoCertificateError(f"No {purpose} certificate was found on the card.")

    async def _ready(self, candidate: Candidate) -> tuple[Sequence[SignatureAlgorithm], PinStatus]:
        """What the candidate's token can sign with its key, and the PIN state."""
        if candidate.ready is not None:
            return candidate.ready
        return await self._run(candidate.token, _algorithms_and_pin, candidate.token, candidate.certificate)

    async def _choose(
        self,
        purpose: Purpose,
        selection: Selection,
        origin: str,
        dialogs: DialogSource | None,
        lang: str,
    ) -> Candidate:
        """The one certificate to use. No usable card: with ``dialogs``, the person is asked
        to insert it and the search goes on until one arrives (or the person cancels or
        times out). Several: with ``dialogs`` and a selection the caller did not narrow
        itself, the person chooses; otherwise AMBIGUOUS_CERTIFICATE."""
        candidates, failure = await self._candidates(purpose, selection)
        if not candidates:
            if dialogs is None or not isinstance(failure, _WAITABLE):
                raise failure or NoCertificateError(f"No {purpose} certificate was found on the card.")
            candidates = await self._wait_for_card(purpose, selection, origin, dialogs, lang, failure)
        if len(candidates) == 1:
            return candidates[0]
        narrowed = selection.token_label is not None or selection.certificate_sha256 is not None
        if dialogs is None or narrowed:
            raise AmbiguousCertificateError(
                f"{len(candidates)} {purpose} certificates fit; choose one by its SHA-256 or the token label.",
                candidates=[c.describe() for c in candidates],
            )
        request = ChoiceRequest(
            origin=origin, options=tuple(_option(c) for c in candidates), lang=lang, timeout=self._time_left()
        )
        index = await self._answer(dialogs.choose(request), "No certificate was chosen in time.")
        chosen = candidates[index]
        log.info("the person chose %s of %d certificates", chosen.certificate.sha256[:16], len(candidates))
        return chosen

    def _start_clock(self) -> None:
        """The operation's dialogs (the question about the site, waiting for the card, the
        choice, the PINs) share one ``user_timeout``, as a page's client waits that long."""
        self._deadline = asyncio.get_running_loop().time() + self.user_timeout

    def _time_left(self) -> float:
        loop = asyncio.get_running_loop()
        if self._deadline is None:
            self._deadline = loop.time() + self.user_timeout
        return max(0.0, self._deadline - loop.time())

    async def _answer(self, dialog: Coroutine[Any, Any, T], late: str) -> T:
        """Wait for a dialog's answer until the operation's time is up: then USER_TIMEOUT."""
        self._time_left()
        assert self._deadline is not None
        deadline = asyncio.timeout_at(self._deadline)
        try:
            async with deadline:  # not wait_for: see _run
                return await dialog
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            raise UserTimeoutError(late) from exc

    async def _wait_for_card(
        self,
        purpose: Purpose,
        selection: Selection,
        origin: str,
        dialogs: DialogSource,
        lang: str,
        failure: CardbridgeError,
    ) -> list[Candidate]:
        """Show "insert your ID card" (its text says why: no card, no reader, pcscd down)
        and look again on every card event and at least once a second, until a usable
        certificate is there; then close the dialog. Cancel → USER_CANCELLED; after
        ``user_timeout`` → USER_TIMEOUT."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._time_left()
        shown: WaitReason | None = None
        dialog: asyncio.Task[None] | None = None
        log.info("no usable card yet (%s); waiting", failure.code)
        with self.subscribe(maxsize=8) as events:  # PC/SC card events wake the search at once
            try:
                while True:
                    reason = _wait_reason(failure)
                    if reason is not shown:  # a new situation: a new text
                        await _end_task(dialog)
                        request = WaitRequest(origin, reason, lang, timeout=max(1.0, deadline - loop.time()))
                        dialog = asyncio.ensure_future(dialogs.wait_for_card(request))
                        shown = reason
                    assert dialog is not None
                    remaining = deadline - loop.time()
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
                    candidates, found_failure = await self._candidates(purpose, selection)
                    if candidates:
                        log.info("a usable card arrived")
                        return candidates
                    failure = found_failure or NoCertificateError(f"No {purpose} certificate was found on the card.")
                    if not isinstance(failure, _WAITABLE):
                        raise failure
            finally:
                await _end_task(dialog)

    # -- operations --------------------------------------------------------------------

    def _begin(self) -> None:
        if self._operation.locked():
            raise BusyError("Another card operation is under way. Finish or cancel it first.")

    def site_decision(self, origin: str) -> Decision | None:
        """What the policy says about ``origin`` now (no dialog); None without a policy."""
        return None if self.sites is None else self.sites.decide(origin)

    async def _consent(self, origin: str, dialogs: DialogSource | None, lang: str) -> None:
        """The policy's decision for ``origin``, before any card is touched: a denied site
        gets ORIGIN_NOT_ALLOWED; a new one (``origin_policy = "ask"``) is asked about in a
        dialog that names it: Allow is remembered, Cancel is USER_CANCELLED and the site
        may not ask again for a while (ORIGIN_NOT_ALLOWED at once)."""
        sites = self.sites
        if sites is None:
            return
        decision = await asyncio.to_thread(sites.decide, origin)
        if decision is Decision.ALLOW:
            return
        if decision is Decision.DENY:
            raise sites.refusal(origin)
        if dialogs is None:
            raise OriginNotAllowedError(f"{origin} has not been allowed yet, and no dialog can ask.", origin=origin)
        try:
            await self._answer(
                dialogs.allow_site(SiteRequest(origin, lang, timeout=self._time_left())),
                "The question about the website was not answered in time.",
            )
        except (UserCancelledError, UserTimeoutError):
            # No answer counts as no: a page cannot raise the question again at once.
            await asyncio.to_thread(sites.store.refuse, origin)
            log.info("the person refused %s (or did not answer)", origin)
            raise
        await asyncio.to_thread(sites.store.allow, origin)
        log.info("the person allowed %s", origin)

    async def authenticate(
        self,
        origin: str,
        nonce: str,
        pin_source: PinSource,
        *,
        lang: str = "nb",
        selection: Selection | None = None,
        dialogs: DialogSource | None = None,
    ) -> AuthToken:
        """Sign ``H(origin) || H(nonce)`` with the authentication key; return the token.
        ``dialogs`` (default: ``pin_source`` when it can show them) asks about a new site,
        for the card, and which certificate."""
        check_origin(origin, allow_http_localhost=self.allow_http_localhost)
        check_nonce(nonce)
        dialogs = _dialogs(dialogs, pin_source)
        self._begin()
        async with self._operation, _prepared(pin_source):
            self._start_clock()
            await self._consent(origin, dialogs, lang)
            candidate = await self._choose(Purpose.AUTHENTICATION, selection or Selection(), origin, dialogs, lang)
            token, certificate = candidate.token, candidate.certificate
            supported, status = await self._ready(candidate)
            algorithm = authentication_algorithm(certificate, supported)
            digest = authentication_digest(origin, nonce, algorithm)
            signature = await self._sign_with_pin(
                token, certificate, digest, algorithm, pin_source, origin, PinKind.AUTHENTICATION, lang, status
            )
            log.info("authenticated %s for %s with %s", certificate.sha256[:16], origin, algorithm.jws)
            return AuthToken(certificate.der, algorithm.jws, signature)

    async def signing_certificate(
        self,
        origin: str,
        consent: ConsentSource,
        *,
        lang: str = "nb",
        selection: Selection | None = None,
        dialogs: DialogSource | None = None,
    ) -> tuple[CertificateInfo, list[SignatureAlgorithm]]:
        """The signing (nonRepudiation) certificate and the algorithms its key supports,
        once the person agreed to share it with ``origin``: the certificate names them (name
        and national identity number), so ``consent`` shows a dialog that names the origin
        and the holder first. Cancel gives USER_CANCELLED and no certificate. ``dialogs``
        (default: ``consent`` when it can show them) asks about a new site, for the card,
        and which certificate, before that."""
        check_origin(origin, allow_http_localhost=self.allow_http_localhost)
        self._begin()
        dialogs = _dialogs(dialogs, consent)
        async with self._operation, _prepared(consent):
            self._start_clock()
            await self._consent(origin, dialogs, lang)
            candidate = await self._choose(Purpose.SIGNING, selection or Selection(), origin, dialogs, lang)
            if candidate.ready is not None:
                supported = candidate.ready[0]
            else:
                supported = await self._run(
                    candidate.token, candidate.token.supported_algorithms, candidate.certificate
                )
            request = ConsentRequest(
                origin=origin, holder=candidate.certificate.holder_name, lang=lang, timeout=self._time_left()
            )
            await self._answer(consent.confirm(request), "The person did not answer in time.")
            log.info("the signing certificate %s went to %s", candidate.certificate.sha256[:16], origin)
            return candidate.certificate, list(supported)

    async def sign(
        self,
        origin: str,
        certificate_der: bytes,
        digest: bytes,
        hash_function: str,
        pin_source: PinSource,
        *,
        lang: str = "nb",
        dialogs: DialogSource | None = None,
    ) -> tuple[bytes, SignatureAlgorithm]:
        """Sign a document hash with the signing key of ``certificate_der`` (signing PIN).

        A caller chooses the hash, so a key that a validator accepts for login is never used:
        its signature over ``H(H(origin) || H(nonce))`` would log in at any site
        (DUAL_USE_KEY, before any dialog)."""
        check_origin(origin, allow_http_localhost=self.allow_http_localhost)
        if HASH_LENGTHS.get(hash_function) != len(digest):
            raise InvalidInputError(f"The hash does not have the length of {hash_function}.")
        dialogs = _dialogs(dialogs, pin_source)
        self._begin()
        async with self._operation, _prepared(pin_source):
            self._start_clock()
            await self._consent(origin, dialogs, lang)
            wanted = hashlib.sha256(certificate_der).hexdigest()
            candidate = await self._choose(Purpose.SIGNING, Selection(certificate_sha256=wanted), origin, dialogs, lang)
            token, certificate = candidate.token, candidate.certificate
            await self._refuse_login_key(token, certificate)
            supported, status = await self._ready(candidate)
            matching = [a for a in supported if a.hash_function == hash_function]
            if not matching:
                raise UnsupportedKeyError(f"The card cannot sign a {hash_function} hash with this key.")
            algorithm = matching[0]
            signature = await self._sign_with_pin(
                token, certificate, digest, algorithm, pin_source, origin, PinKind.SIGNING, lang, status
            )
            return signature, algorithm

    async def _refuse_login_key(self, token: Token, certificate: CertificateInfo) -> None:
        """DUAL_USE_KEY when ``certificate``, or another certificate on ``token`` with the
        same key, passes the login purpose check (``certs.login_purpose_problem``, the
        validator's rule): a signing certificate with nonRepudiation that also has
        digitalSignature and clientAuth, or a signing certificate for the login key."""
        dual = allows_login(certificate.der)
        if not dual:
            key = public_key_of(certificate.der)
            others = await self._run(token, token.certificates)
            dual = any(allows_login(c.der) and public_key_of(c.der) == key for c in others if c.der != certificate.der)
        if dual:
            log.warning("refused to sign with %s: its key is also accepted for login", certificate.sha256[:16])
            raise DualUseKeyError(
                "The card's signing key is also accepted for login, so cardbridge does not sign a hash with it."
            )

    async def _sign_with_pin(
        self,
        token: Token,
        certificate: CertificateInfo,
        digest: bytes,
        algorithm: SignatureAlgorithm,
        pin_source: PinSource,
        origin: str,
        kind: PinKind,
        lang: str,
        status: PinStatus,
    ) -> bytes:
        """Ask for the PIN, log in once with it, sign. A wrong PIN is reported in the next
        dialog, which the person may answer with another PIN or cancel; it is never sent
        again by us: a PIN the card refused in this login is not sent again (the dialog
        says so), and a token that keeps no retry counter gets at most
        ``MAX_TRIES_WITHOUT_COUNTER`` PINs per login. The whole exchange is bounded by the
        operation's ``user_timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._time_left()
        previous: CardbridgeError | None = None
        refusal: PinIncorrectError | None = None  # the card's last refusal
        # Keyed digests of the PINs the card refused, never the PINs; the key lives for this login.
        key = secrets.token_bytes(32)
        refused: list[bytes] = []
        dialogs = 0
        while True:
            if previous is not None:  # after a wrong PIN: the tries left, read afresh
                status = await self._run(token, token.pin_status, certificate)
            if status.blocked:
                raise PinBlockedError("The PIN is blocked. Unblock it with your PUK code.", retries_left=0)
            if dialogs >= MAX_DIALOGS:
                raise refusal or previous or UserCancelledError("Too many PIN dialogs in one login.")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise UserTimeoutError("No PIN was given in time.")
            request = PinRequest(
                origin=origin,
                holder=certificate.holder_name,
                kind=kind,
                status=status,
                lang=lang,
                error=previous,
                timeout=remaining,
            )
            dialogs += 1
            deadline_cm = asyncio.timeout_at(deadline)
            try:
                async with deadline_cm:  # not wait_for: see _run
                    pin = await pin_source.get_pin(request)
            except TimeoutError as exc:
                if not deadline_cm.expired():
                    raise
                raise UserTimeoutError("No PIN was given in time.") from exc
            except UserCancelledError as cancelled:
                last = refusal if isinstance(previous, PinRepeatedError) else previous
                if last is not None:  # after a wrong PIN: still a cancel (as the Web eID app says), with the tries left
                    raise UserCancelledError(cancelled.message, retries_left=last.retries_left) from None
                raise
            sent = False
            seen = b""
            try:
                if not status.protected_path and not status.min_length <= len(pin) <= status.max_length:
                    previous = PinInvalidLengthError(
                        f"The PIN must have {status.min_length} to {status.max_length} characters.",
                        minLength=status.min_length,
                        maxLength=status.max_length,
                    )
                    continue
                seen = hmac.new(key, pin, hashlib.sha256).digest()
                if (
                    refusal is not None
                    and not status.protected_path
                    and any(hmac.compare_digest(seen, r) for r in refused)
                ):
                    previous = PinRepeatedError(
                        "The card already refused this PIN; it was not sent again.",
                        retries_left=refusal.retries_left,
                    )
                    continue
                sent = True  # from here the worker owns the buffer: it is wiped once the call is over
                # On a PIN pad the module waits while the person types: allow the dialog's time.
                return await self._run(
                    token,
                    token.sign_digest,
                    certificate,
                    pin if not status.protected_path else None,
                    digest,
                    algorithm,
                    timeout=max(remaining, self.card_timeout) if status.protected_path else None,
                    then=functools.partial(wipe, pin),
                )
            except PinIncorrectError as exc:
                if exc.retries_left == 0:
                    raise
                refused.append(seen)
                if exc.retries_left is None and len(refused) >= MAX_TRIES_WITHOUT_COUNTER:
                    raise PinIncorrectError(
                        f"The PIN was wrong {len(refused)} times; the login was stopped. Check the PIN and try again."
                    ) from exc
                previous = refusal = exc
            finally:
                if not sent:
                    wipe(pin)


def _dialogs(dialogs: DialogSource | None, pin_source: object) -> DialogSource | None:
    if dialogs is not None:
        return dialogs
    return pin_source if isinstance(pin_source, DialogSource) else None


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


def _option(candidate: Candidate) -> ChoiceOption:
    info = candidate.token.info
    card = f"{info.label} ({info.reader})" if info.reader and info.reader != info.label else info.label
    return ChoiceOption(
        holder=candidate.certificate.holder_name,
        issuer=_issuer_name(candidate.certificate.issuer),
        card=card,
    )


async def _end_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (a dialog: its program ends) and wait until it has ended; its outcome
    is retrieved. A cancel of the caller meanwhile still propagates."""
    if task is None:
        return
    task.cancel()
    task.add_done_callback(_forget)
    await asyncio.wait({task})


def _forget(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a call nobody waits for (so asyncio does not report it)."""
    if not future.cancelled():
        future.exception()


def _matching(certificates: Sequence[CertificateInfo], purpose: Purpose, selection: Selection) -> list[CertificateInfo]:
    wanted = selection.certificate_sha256.lower() if selection.certificate_sha256 else None
    return [c for c in certificates if c.purpose is purpose and (wanted is None or c.sha256 == wanted)]


def _survey(
    backend: Backend, purpose: Purpose, selection: Selection
) -> list[tuple[Token, list[Candidate] | CardbridgeError | None]]:
    """On ``backend``'s worker: its tokens that ``selection`` allows, with their candidate
    certificates for ``purpose`` (a token's only one with its algorithms and PIN state, read
    in the same call), or the error reading them; None for a token whose worker is another
    thread."""
    surveyed: list[tuple[Token, list[Candidate] | CardbridgeError | None]] = []
    for token in backend.tokens():
        info = token.info
        if selection.reader is not None and selection.reader not in (info.reader, info.source):
            continue
        if selection.token_label is not None and info.label != selection.token_label:
            continue
        if token.executor is not backend.executor:
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


@contextlib.asynccontextmanager
async def _prepared(pin_source: object) -> AsyncIterator[None]:
    """Let the PIN source get ready while the card is looked up (a pinentry program starts,
    showing nothing yet); end whatever it started when the operation ends. What it starts
    is a task of a group that ends with the operation, also when the operation is cancelled."""
    if not isinstance(pin_source, PreparedPinSource):
        yield
        return
    failure: Exception | None = None
    async with asyncio.TaskGroup() as group:
        pin_source.prepare(group)
        try:
            yield
        except Exception as exc:  # the operation's own error: raised as it is, not in a group
            failure = exc
        finally:
            await pin_source.aclose()
    if failure is not None:
        raise failure


def open_backends(modules: Sequence[str], *, pcsc: bool = False, reader: str | None = None) -> list[Backend]:
    """Backends for the PKCS#11 ``modules`` (checked paths; see ``pkcs11.discovery``), after
    the built-in PC/SC drivers when ``pcsc`` (all readers) or ``reader`` (that one) is set.

    PC/SC comes first, so a card that both reach is used through the built-in driver (the
    service drops the second sighting by its certificates). Without pyscard or libpcsclite,
    ``pcsc`` is skipped (logged); ``reader`` needs them.
    """
    from cardbridge.pkcs11.backend import ModuleBackend

    backends: list[Backend] = []
    if pcsc or reader is not None:
        try:
            from cardbridge.pcsc import PcscBackend
        except ImportError:
            if reader is not None:
                raise
            log.warning("PC/SC is not available (pyscard or libpcsclite missing); using PKCS#11 modules only")
        else:
            backends.append(PcscBackend(reader=reader))
    backends.extend(ModuleBackend(path) for path in modules)
    return backends


def open_service(
    config: Config,
    *,
    modules: Sequence[str] | None = None,
    reader: str | None = None,
    pcsc: bool | None = None,
    allow_http_localhost: bool = False,
) -> CardService:
    """The service every entry point uses (CLI, ``serve``, the native host, ``doctor``):
    the built-in PC/SC drivers, then the PKCS#11 modules the config and environment name,
    and the config's policy for websites (with the person's answers).

    ``modules`` (``--module``): only those modules (and, unless ``pcsc`` says otherwise, no
    PC/SC). ``reader`` (``--reader``): only the built-in driver on that reader.
    """
    from cardbridge.pkcs11.discovery import resolve_modules

    if reader is not None:
        backends = open_backends([], reader=reader)
    else:
        found = (
            []
            if modules is not None and len(modules) == 0
            else resolve_modules(modules, config_modules=config.pkcs11_modules)
        )
        backends = open_backends(found, pcsc=(not modules) if pcsc is None else pcsc)
    return CardService(
        backends,
        user_timeout=config.user_timeout,
        allow_http_localhost=allow_http_localhost or config.allow_http_localhost,
        sites=SitePolicy(config),
    )
