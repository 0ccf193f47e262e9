"""The built-in PC/SC backend: the readers, each card's driver chosen by ATR and confirmed
by SELECT, and the tokens those drivers give.

:class:`PcscBackend` implements :class:`cardbridge.model.Backend`; its tokens
(:class:`~cardbridge.pcsc.cardtoken.CardToken` subclasses: PIV, the national ID cards)
implement :class:`cardbridge.model.Token`, the same interface as the PKCS#11 backend.

Threads: all card I/O for a reader runs on that reader's one worker thread (the token's
``executor``); listing runs on the backend's own thread. Each of those threads has its own
PC/SC context. Certificates are cached by card identity across card presences (the
backend's :class:`~cardbridge.pcsc.cardtoken.CardCache`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Collection, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

from cardbridge.errors import CardbridgeError, NoCardError, NoReadersError, UnsupportedCardError
from cardbridge.model import ReadersState, Token, TokenInfo, TokenListing
from cardbridge.pcsc.atr import CardIdentity, identify
from cardbridge.pcsc.cardtoken import ApduCounter, CardCache, CardSlot, CardToken
from cardbridge.pcsc.drivers import DEFAULT_DRIVER, driver_class
from cardbridge.pcsc.readers import BACKEND_NAME, ReaderInfo, ReaderWorker, list_readers
from cardbridge.pcsc.scard import STATE_UNAWARE, PcscContext, ReaderStatus

log = logging.getLogger(__name__)


class PcscBackend:
    """The PC/SC readers with built-in drivers (a :class:`model.Backend`).

    ``reader``: only that reader (``--reader NAME``); a card there that no built-in driver
    serves raises UnsupportedCardError with its ATR. Without it, readers whose card needs
    a PKCS#11 module (or that nothing serves) are left out of :meth:`tokens` and shown by
    :meth:`listings`.
    """

    def __init__(self, reader: str | None = None) -> None:
        self.reader = reader
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pcsc-list")
        self._context = PcscContext()  # used on the listing thread only
        self._workers: dict[str, ReaderWorker] = {}
        self._tokens: dict[str, CardToken] = {}
        self._unsupported: dict[str, tuple[bytes, int]] = {}
        self._cache = CardCache()
        self._counter = ApduCounter()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return BACKEND_NAME

    @property
    def executor(self) -> Executor:
        return self._executor

    @property
    def tokens_share_worker(self) -> bool:
        """Each reader's card runs on that reader's worker thread, not the listing thread."""
        return False

    @property
    def apdu_count(self) -> int:
        """APDUs this backend's tokens sent."""
        return self._counter.count

    def readers(self) -> list[ReaderInfo]:
        """Every reader, with the card in it (blocks; run on ``executor``)."""
        return list_readers(self._context)

    def readers_state(self) -> ReadersState:
        """Every reader and its card insertion/removal count, now (no APDU; run on ``executor``)."""
        names = self._context.readers()
        if not names:
            return ()
        _code, states = self._context.status([(name, STATE_UNAWARE) for name in names], 0)
        return tuple(sorted((s.name, s.event_count) for s in states))

    def tokens(self, skip_readers: Collection[str] = (), readers: ReadersState | None = None) -> Sequence[Token]:
        """The cards a built-in driver serves now, outside ``skip_readers`` (blocks; run on
        ``executor``). With ``reader`` set, the card there or NoReadersError, NoCardError,
        CardBusyError, UnsupportedCardError."""
        found: list[Token] = []
        strict = self.reader is not None  # --reader NAME: say why there is no token there
        for status, identity in self._present():
            if status.name in skip_readers:
                continue
            token = self._token(status, identity, strict=strict)
            if token is not None:
                found.append(token)
        return found

    def token(self, reader: str) -> CardToken:
        """The built-in driver's token on ``reader`` (``--reader NAME``): NoReadersError,
        NoCardError or UnsupportedCardError (with the ATR) when there is none."""
        for status, identity in self._present(reader):
            token = self._token(status, identity, strict=True)
            if token is not None:
                return token
        raise NoCardError(f"There is no card in {reader}.", reader=reader)  # pragma: no cover

    def listings(self) -> list[TokenListing]:
        """Every card in a reader: a token with its certificates, or an error entry
        (unsupported card, busy, …) naming the card from its ATR."""
        out: list[TokenListing] = []
        for status, identity in self._present():
            info = TokenInfo(
                backend=BACKEND_NAME,
                source=status.name,
                label=identity.name,
                model=identity.name,
                reader=status.name,
                extra={"atr": identity.atr_hex, "cardName": identity.name, "module": identity.module},
            )
            try:
                token = self._token(status, identity, strict=True)
                if token is None:  # pragma: no cover - strict never gives None
                    raise UnsupportedCardError("No built-in driver.")
                certs = tuple(token.certificates())
                pin = token.pin_status(certs[0]) if certs else None
                out.append(TokenListing(token.info, certs, pin))
            except CardbridgeError as exc:
                out.append(TokenListing(info, (), None, exc.to_dict()))
        return out

    def close(self) -> None:
        for worker in list(self._workers.values()):
            worker.close()
        self._workers.clear()
        self._tokens.clear()

        def release() -> None:
            self._context.release()

        with contextlib.suppress(Exception):
            self._executor.submit(release).result(timeout=5)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- internals ---------------------------------------------------------------------
    def _present(self, only: str | None = None) -> list[tuple[ReaderStatus, CardIdentity]]:
        wanted = only or self.reader
        names = self._context.readers()
        if not names:
            raise NoReadersError("No card reader is connected.")
        if wanted is not None:
            if wanted not in names:
                raise NoReadersError(f"There is no reader called {wanted!r}.", readers=names)
            names = [wanted]
        _code, states = self._context.status([(name, STATE_UNAWARE) for name in names], 0)
        present = [(s, identify(s.atr)) for s in states if s.present and s.atr]
        if wanted is not None and not present:
            raise NoCardError(f"There is no card in {wanted}.", reader=wanted)
        return present

    def _worker(self, reader: str) -> ReaderWorker:
        with self._lock:
            worker = self._workers.get(reader)
            if worker is None:
                worker = self._workers[reader] = ReaderWorker(reader)
            return worker

    def _token(self, status: ReaderStatus, identity: CardIdentity, *, strict: bool = False) -> CardToken | None:
        presence = (status.atr, status.event_count)
        known = self._tokens.get(status.name)
        if known is not None and (known.atr, known.event_count) == presence:
            return known
        cls = None
        if identity.driver is not None:
            cls = driver_class(identity.driver)
        elif identity.module is None:  # an unknown card: PIV tokens come with many ATRs
            cls = driver_class(DEFAULT_DRIVER)
        if cls is None or self._unsupported.get(status.name) == presence:
            if strict:
                raise _unsupported(identity, status.name)
            return None
        slot = CardSlot(self._worker(status.name), status, identity, self._cache, self._counter)
        token = cls(slot)
        try:
            token.identify_card()
        except UnsupportedCardError as exc:
            self._unsupported[status.name] = presence
            if strict:
                raise _unsupported(identity, status.name) from exc
            return None
        except CardbridgeError:
            if strict:
                raise
            log.info("The card in %s cannot be read now", status.name, exc_info=True)
            return None
        self._tokens[status.name] = token
        return token


def _unsupported(identity: CardIdentity, reader: str) -> UnsupportedCardError:
    extra = f" Use its PKCS#11 module ({identity.module})." if identity.module else ""
    return UnsupportedCardError(
        f"The card in {reader} ({identity.name}, ATR {identity.atr_hex}) has no built-in driver.{extra}",
        reader=reader,
        atr=identity.atr_hex,
        cardName=identity.name,
        module=identity.module,
    )


__all__ = ["PcscBackend"]
