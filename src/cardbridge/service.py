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
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from cardbridge.authtoken import AuthToken, authentication_digest, check_nonce, check_origin
from cardbridge.certs import allows_login, public_key_of
from cardbridge.errors import (
    BusyError,
    CardbridgeError,
    DualUseKeyError,
    InvalidInputError,
    OriginNotAllowedError,
    PinBlockedError,
    PinIncorrectError,
    PinInvalidLengthError,
    PinNotActiveError,
    PinRepeatedError,
    UnsupportedKeyError,
    UserCancelledError,
    UserTimeoutError,
)
from cardbridge.events import EventHub
from cardbridge.model import (
    HASH_LENGTHS,
    Backend,
    BackendKind,
    CertificateInfo,
    CryptoAlgorithm,
    HashFunction,
    KeyType,
    Padding,
    PinKind,
    PinStatus,
    Purpose,
    ReadersState,
    SignatureAlgorithm,
    Token,
    TokenInfo,
    TokenListing,
)
from cardbridge.origins import Decision, SitePolicy
from cardbridge.pinentry import (
    ConsentRequest,
    ConsentSource,
    DialogSource,
    PinRequest,
    PinSource,
    PreparedPinSource,
    SiteRequest,
    wipe,
)
from cardbridge.selection import CertificateFinder, Selection, once_per_card
from cardbridge.workers import Deadline, Workers

if TYPE_CHECKING:
    from cardbridge.config import Config

__all__ = [
    "MAX_DIALOGS",
    "MAX_TRIES_WITHOUT_COUNTER",
    "CardService",
    "Selection",
    "authentication_algorithm",
    "open_backends",
    "open_service",
]

log = logging.getLogger(__name__)

_EC_HASH = {256: HashFunction.SHA256, 384: HashFunction.SHA384, 521: HashFunction.SHA512}
MAX_TRIES_WITHOUT_COUNTER = 3  # PINs sent per login to a token that reports no tries left
MAX_DIALOGS = 10  # PIN dialogs per login, whatever they are answered with


def authentication_algorithm(
    certificate: CertificateInfo, supported: Sequence[SignatureAlgorithm]
) -> SignatureAlgorithm:
    """EC P-256/384/521 → ES256/384/512; RSA → RS256, or PS256 when only PSS is offered."""
    if certificate.key_type == KeyType.EC:
        hash_function = _EC_HASH.get(certificate.key_size)
        if hash_function is not None:
            wanted = SignatureAlgorithm(CryptoAlgorithm.ECC, hash_function, Padding.NONE)
            if wanted in supported:
                return wanted
    elif certificate.key_type == KeyType.RSA:
        for padding in (Padding.PKCS1_5, Padding.PSS):
            wanted = SignatureAlgorithm(CryptoAlgorithm.RSA, HashFunction.SHA256, padding)
            if wanted in supported:
                return wanted
    raise UnsupportedKeyError(
        f"The card cannot sign with its {certificate.key_type}-{certificate.key_size} authentication key."
    )


class CardService:
    """The card operations, for one process. Close it with :meth:`aclose`.

    ``events`` is the process's event hub (card events, and the bridge's own); the choice
    of certificate is :class:`~cardbridge.selection.CertificateFinder`'s, the card calls
    run through :class:`~cardbridge.workers.Workers`. What stays here is the order of an
    operation: its rules, the question about the site, the PIN loop and the signature.
    """

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
        self._backends = tuple(backends)
        self.sites = sites
        self.user_timeout = user_timeout  # the person's time for one operation: its dialogs share it
        self.allow_http_localhost = allow_http_localhost
        self.events = EventHub()
        self._workers = Workers(card_timeout)
        self._finder = CertificateFinder(self._backends, self._workers, self.events)
        self._operation = asyncio.Lock()

    @property
    def backends(self) -> tuple[Backend, ...]:
        """Where the service looks for cards, in order (the built-in PC/SC drivers first)."""
        return self._backends

    @property
    def card_timeout(self) -> float:
        """How long one card call may take before MODULE_ERROR (a PIN pad's: the dialog's time)."""
        return self._workers.card_timeout

    @property
    def busy(self) -> bool:
        """True while a card operation (and its dialog) is under way."""
        return self._operation.locked()

    async def aclose(self) -> None:
        """Close every backend, off the event loop and all at once: each waits up to its own
        limit for a call in progress (``SHUTDOWN_WAIT``), so together they take no longer
        than the slowest, and the loop keeps serving meanwhile."""
        self.events.unwatch()
        await asyncio.gather(*(asyncio.to_thread(backend.close) for backend in self._backends))

    # -- discovery ---------------------------------------------------------------------

    async def token_infos(self) -> tuple[list[TokenInfo], list[CardbridgeError]]:
        """The tokens present now (no certificates, no login, no operation lock), and the
        errors of backends that could not list theirs."""
        tokens, errors = await self._tokens(direct_wins=True)
        return once_per_card([token.info for token in tokens]), errors

    async def _tokens(self, *, direct_wins: bool = False) -> tuple[list[Token], list[CardbridgeError]]:
        """Every backend's tokens; with ``direct_wins``, a module is not asked about a
        reader where a built-in driver has a card (it would be left out as the same card,
        and some modules read the card to describe it)."""
        tokens: list[Token] = []
        errors: list[CardbridgeError] = []
        direct: set[str] = set()
        readers: ReadersState | None = None
        for index, backend in enumerate(self._backends):
            try:
                found = await self._workers.run(backend, backend.tokens, frozenset(direct), readers)
            except CardbridgeError as exc:
                log.info("backend %s: %s", backend.name, exc)
                errors.append(exc)
                continue
            tokens.extend(found)
            served = {t.info.reader for t in found if t.info.backend == BackendKind.PCSC and t.info.reader}
            if direct_wins and served:
                direct.update(served)
                if readers is None and index + 1 < len(self._backends):
                    try:  # the readers as the drivers saw them, for the modules after them
                        readers = await self._workers.run(backend, backend.readers_state)
                    except CardbridgeError as exc:
                        log.info("backend %s: %s", backend.name, exc)
        return tokens, errors

    async def list_tokens(self, *, every_pin: bool = False) -> list[TokenListing]:
        """Every token and its certificates, each card once (a PKCS#11 slot in a reader where
        a built-in driver has the card is not listed: OpenSC's slot of a Belgian card adds
        the CA certificates to the same card); a token that fails is listed with its error.
        ``pin`` is the state of the first certificate's PIN; with ``every_pin`` (``doctor``),
        ``pins`` has each certificate's (one PIN state read more per certificate at most)."""
        listings: list[TokenListing] = []
        tokens, errors = await self._tokens(direct_wins=True)
        if not tokens and errors:
            raise errors[0]
        seen: set[str] = set()
        for token in tokens:
            try:
                certificates = tuple(await self._workers.run(token, token.certificates))
                key = {c.sha256 for c in certificates}
                if certificates and key <= seen:
                    continue  # the same card through another backend (a PKCS#11 slot of it)
                seen |= key
                pin = await self._workers.run(token, token.pin_status, certificates[0]) if certificates else None
                pins: tuple[PinStatus | None, ...] = ()
                if every_pin and certificates:
                    pins = (pin, *[await self._pin_or_none(token, c) for c in certificates[1:]])
                listings.append(TokenListing(token.info, certificates, pin, pins=pins))
            except CardbridgeError as exc:
                listings.append(TokenListing(token.info, (), None, exc.to_dict()))
        return listings

    async def _pin_or_none(self, token: Token, certificate: CertificateInfo) -> PinStatus | None:
        """The state of ``certificate``'s PIN; None when the token cannot tell it (a CA
        certificate without a key, a card error: the listing is still good)."""
        try:
            return await self._workers.run(token, token.pin_status, certificate)
        except CardbridgeError as exc:
            log.info("no PIN state for %s: %s", certificate.sha256[:16], exc)
            return None

    # -- operations --------------------------------------------------------------------

    def _begin(self) -> None:
        if self._operation.locked():
            raise BusyError("Another card operation is under way. Finish or cancel it first.")

    async def site_decision(self, origin: str) -> Decision | None:
        """What the policy says about ``origin`` now (no dialog); None without a policy. The
        policy's file is read on a worker thread, never on the event loop."""
        return None if self.sites is None else await asyncio.to_thread(self.sites.decide, origin)

    async def _consent(self, origin: str, dialogs: DialogSource | None, lang: str, deadline: Deadline) -> None:
        """The policy's decision for ``origin``, before any card is touched: a denied site
        gets ORIGIN_NOT_ALLOWED; a new one (``origin_policy = "ask"``) is asked about in a
        dialog that names it: Allow is remembered, Cancel is USER_CANCELLED and the site
        may not ask again for a while (ORIGIN_NOT_ALLOWED at once). One such question is
        open at a time for all bridge processes (BUSY), and after a few refusals of any
        sites none is asked for a while (``cardbridge.origins``)."""
        sites = self.sites
        if sites is None:
            return
        decision = await asyncio.to_thread(sites.decide, origin)
        if decision is Decision.ALLOW:
            return
        if decision is Decision.DENY:
            raise await asyncio.to_thread(sites.refusal, origin)
        if dialogs is None:
            raise OriginNotAllowedError(f"{origin} has not been allowed yet, and no dialog can ask.", origin=origin)
        with sites.store.asking():
            # Under the one question's lock: decide again (another bridge process may have
            # asked about this site, or refused enough to pause, since), and write the answer
            # before the lock goes, so that the next question sees it.
            decision = await asyncio.to_thread(sites.decide, origin)
            if decision is Decision.ALLOW:
                return
            if decision is Decision.DENY:
                raise await asyncio.to_thread(sites.refusal, origin)
            try:
                await deadline.answer(
                    dialogs.allow_site(SiteRequest(origin, lang, timeout=deadline.left())),
                    "The question about the website was not answered in time.",
                )
            except (UserCancelledError, UserTimeoutError) as refusal:
                # No answer counts as no: a page cannot raise the question again at once.
                answered = isinstance(refusal, UserCancelledError)
                await asyncio.to_thread(functools.partial(sites.store.refuse, origin, answered=answered))
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
            deadline = Deadline(self.user_timeout)
            await self._consent(origin, dialogs, lang, deadline)
            candidate = await self._finder.choose(
                Purpose.AUTHENTICATION, selection or Selection(), origin, dialogs, lang, deadline
            )
            token, certificate = candidate.token, candidate.certificate
            supported, status = await self._finder.ready(candidate)
            algorithm = authentication_algorithm(certificate, supported)
            digest = authentication_digest(origin, nonce, algorithm)
            signature = await self._sign_with_pin(
                token,
                certificate,
                digest,
                algorithm,
                pin_source,
                origin,
                PinKind.AUTHENTICATION,
                lang,
                status,
                deadline,
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
            deadline = Deadline(self.user_timeout)
            await self._consent(origin, dialogs, lang, deadline)
            candidate = await self._finder.choose(
                Purpose.SIGNING, selection or Selection(), origin, dialogs, lang, deadline
            )
            if candidate.ready is not None:
                supported = candidate.ready[0]
            else:
                supported = await self._workers.run(
                    candidate.token, candidate.token.supported_algorithms, candidate.certificate
                )
            request = ConsentRequest(
                origin=origin, holder=candidate.certificate.holder_name, lang=lang, timeout=deadline.left()
            )
            await deadline.answer(consent.confirm(request), "The person did not answer in time.")
            log.info("the signing certificate %s went to %s", candidate.certificate.sha256[:16], origin)
            return candidate.certificate, list(supported)

    async def sign(
        self,
        origin: str,
        certificate_der: bytes,
        digest: bytes,
        hash_function: HashFunction,
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
            deadline = Deadline(self.user_timeout)
            await self._consent(origin, dialogs, lang, deadline)
            wanted = Selection(certificate_sha256=hashlib.sha256(certificate_der).hexdigest())
            candidate = await self._finder.choose(Purpose.SIGNING, wanted, origin, dialogs, lang, deadline)
            token, certificate = candidate.token, candidate.certificate
            await self._refuse_login_key(token, certificate)
            supported, status = await self._finder.ready(candidate)
            matching = [a for a in supported if a.hash_function == hash_function]
            if not matching:
                raise UnsupportedKeyError(f"The card cannot sign a {hash_function} hash with this key.")
            algorithm = matching[0]
            signature = await self._sign_with_pin(
                token, certificate, digest, algorithm, pin_source, origin, PinKind.SIGNING, lang, status, deadline
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
            others = await self._workers.run(token, token.certificates)
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
        deadline: Deadline,
    ) -> bytes:
        """Ask for the PIN, log in once with it, sign. A wrong PIN is reported in the next
        dialog, which the person may answer with another PIN or cancel; it is never sent
        again by us: a PIN the card refused in this login is not sent again (the dialog
        says so), and a token that keeps no retry counter gets at most
        ``MAX_TRIES_WITHOUT_COUNTER`` PINs per login. The whole exchange is bounded by the
        operation's ``deadline``."""
        previous: CardbridgeError | None = None
        refusal: PinIncorrectError | None = None  # the card's last refusal
        # Keyed digests of the PINs the card refused, never the PINs; the key lives for this login.
        key = secrets.token_bytes(32)
        refused: list[bytes] = []
        dialogs = 0
        while True:
            if previous is not None:  # after a wrong PIN: the tries left, read afresh
                status = await self._workers.run(token, token.pin_status, certificate)
            if status.blocked:
                raise _blocked(status)
            if status.not_active:  # never asked for, never sent: the card would refuse it
                # Which advice the text gives (i18n.errors): the PIN that is not active.
                where: dict[str, Any] = {"pin": str(status.not_active_pin or kind)}
                if certificate.country:
                    where["country"] = certificate.country.upper()
                raise PinNotActiveError(
                    f"The card's {status.name or 'PIN'} is not active yet: its holder must change (activate) it first.",
                    **where,
                )
            if dialogs >= MAX_DIALOGS:
                raise refusal or previous or UserCancelledError("Too many PIN dialogs in one login.")
            remaining = deadline.left()
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
            try:
                pin = await deadline.answer(pin_source.get_pin(request), "No PIN was given in time.")
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
                return await self._workers.run(
                    token,
                    token.sign_digest,
                    certificate,
                    pin if not status.protected_path else None,
                    digest,
                    algorithm,
                    timeout=max(remaining, self.card_timeout) if status.protected_path else None,
                    then=functools.partial(wipe, pin),
                )
            except PinBlockedError as exc:  # the card blocked it at this VERIFY: say which PIN
                if not status.name:
                    raise
                raise _blocked(status) from exc
            except PinIncorrectError as exc:
                if exc.retries_left == 0:
                    raise
                refused.append(seen)
                if status.name:  # the texts name the PIN the card will block ("PIN2 will be blocked")
                    exc.details.setdefault("pinName", status.name)
                if exc.retries_left is None and len(refused) >= MAX_TRIES_WITHOUT_COUNTER:
                    raise PinIncorrectError(
                        f"The PIN was wrong {len(refused)} times; the login was stopped. Check the PIN and try again."
                    ) from exc
                previous = refusal = exc
            finally:
                if not sent:
                    wipe(pin)


def _blocked(status: PinStatus) -> PinBlockedError:
    """PIN_BLOCKED for the PIN of ``status``, named as the card names it when it does
    (``pinName``: the texts say "PIN2 is blocked" on a two-PIN card, where the other PIN
    still works)."""
    if not status.name:
        return PinBlockedError("The PIN is blocked. Unblock it with your PUK code.", retries_left=0)
    return PinBlockedError(
        f"{status.name} is blocked. Unblock it with your PUK code.", retries_left=0, pinName=status.name
    )


def _dialogs(dialogs: DialogSource | None, pin_source: object) -> DialogSource | None:
    if dialogs is not None:
        return dialogs
    return pin_source if isinstance(pin_source, DialogSource) else None


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
