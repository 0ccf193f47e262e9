"""The built-in PC/SC backend: readers, card identification, and PIV tokens.

:class:`PcscBackend` implements :class:`cardbridge.model.Backend`; its tokens
(:class:`PivToken`) implement :class:`cardbridge.model.Token`, the same interface as the
PKCS#11 backend, so the service, CLI, HTTP API and native host use them unchanged.

Threads: all card I/O for a reader runs on that reader's one worker thread (the token's
``executor``); listing runs on the backend's own thread. Each of those threads has its own
PC/SC context.

Each token method is one PC/SC connection and one transaction: connect (shared),
SCardBeginTransaction, the APDUs, SCardEndTransaction, disconnect. No transaction is held
between calls, so none is held while a PIN dialog is open. A call that verified the PIN
ends with the PIV logout (VERIFY with P1=FF, SP 800-73-4) in the same transaction, and the
card is left as it is: a reset (SCARD_RESET_CARD) would also reset it for every other
program that uses it.

A token belongs to one card *presence*: the reader, the ATR and pcsc-lite's event counter.
When the card is pulled (or swapped) the token raises CardRemovedError; call
:meth:`PcscBackend.tokens` again for the card that is there now. Certificates are cached
by card identity (ATR and CHUID), so a warm authenticate is SELECT, VERIFY, GENERAL
AUTHENTICATE and the logout.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from cardbridge.certs import parse_certificate
from cardbridge.errors import (
    CardbridgeError,
    CardError,
    CardRemovedError,
    CardResetError,
    InvalidInputError,
    NoCardError,
    NoCertificateError,
    NoReadersError,
    PinError,
    ServiceNotRunningError,
    UnsupportedCardError,
    UnsupportedKeyError,
)
from cardbridge.model import (
    HASH_LENGTHS,
    CertificateInfo,
    PinStatus,
    SignatureAlgorithm,
    Token,
    TokenInfo,
    TokenListing,
)
from cardbridge.pcsc.apdu import ApduTransport
from cardbridge.pcsc.atr import CardIdentity, identify, supports_extended_length
from cardbridge.pcsc.piv import (
    KEY_LABELS,
    PIN_MAX,
    PIN_MIN,
    Algorithm,
    KeyRef,
    PivSession,
    ecdsa_der_to_raw,
    pkcs1_v15_block,
)
from cardbridge.pcsc.scard import (
    STATE_CHANGED,
    STATE_UNAWARE,
    PcscContext,
    ReaderStatus,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

BACKEND_NAME = "pcsc"
_CERT_KEYS = (KeyRef.AUTHENTICATION, KeyRef.SIGNATURE)
_CACHE_SIZE = 8
REMOVAL_GRACE_MS = 1500


@dataclass(frozen=True, slots=True)
class ReaderInfo:
    """One reader for ``cardbridge list``: the card in it (if any), its ATR and name."""

    name: str
    card_present: bool
    card: CardIdentity | None = None
    exclusive: bool = False
    in_use: bool = False
    mute: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "cardPresent": self.card_present,
            "exclusive": self.exclusive,
            "inUse": self.in_use,
        }
        if self.mute:
            out["mute"] = True
        if self.card is not None:
            out["card"] = self.card.to_dict()
        return out


def _reader_info(status: ReaderStatus) -> ReaderInfo:
    card = identify(status.atr) if status.present and status.atr else None
    return ReaderInfo(status.name, status.present, card, status.exclusive, status.in_use, status.mute)


def list_readers(context: PcscContext | None = None) -> list[ReaderInfo]:
    """The readers and their cards now (one-shot; blocks briefly). NoReadersError is not
    raised: no readers is ``[]``. ServiceNotRunningError when pcscd does not run."""
    ctx = context or PcscContext()
    try:
        names = ctx.readers()
        if not names:
            return []
        _code, states = ctx.status([(name, STATE_UNAWARE) for name in names], 0)
        return [_reader_info(s) for s in states]
    finally:
        if context is None:
            ctx.release()


class _ReaderWorker:
    """One thread and one PC/SC context for all I/O with one reader."""

    def __init__(self, reader: str) -> None:
        self.reader = reader
        self._thread_id: int | None = None
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"pcsc-{reader[:24]}", initializer=self._started
        )
        self.context = PcscContext()  # touched only on the worker thread

    def _started(self) -> None:
        self._thread_id = threading.get_ident()

    def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the worker thread and wait (from any other thread)."""
        if self._thread_id == threading.get_ident():
            return fn()
        return self.executor.submit(fn).result()

    def close(self) -> None:
        def release() -> None:
            self.context.release()

        with contextlib.suppress(Exception):
            self.executor.submit(release).result(timeout=5)
        self.executor.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class _CardData:
    serial: str
    certificates: tuple[CertificateInfo, ...]


class PivToken:
    """A PIV card in one reader, driven by the built-in driver (a :class:`model.Token`)."""

    def __init__(
        self, backend: PcscBackend, worker: _ReaderWorker, status: ReaderStatus, identity: CardIdentity
    ) -> None:
        self._backend = backend
        self._worker = worker
        self.reader = status.name
        self.atr = status.atr
        self.event_count = status.event_count
        self.identity = identity
        self._extended = supports_extended_length(status.atr)
        self._data: _CardData | None = None
        self.apdu_count = 0  # APDUs this token sent (for bench/apdu.py)

    # -- model.Token ---------------------------------------------------------------
    @property
    def info(self) -> TokenInfo:
        data = self._data
        holder = ""
        if data is not None:
            auth = [c for c in data.certificates if c.key_id == bytes([KeyRef.AUTHENTICATION])]
            if auth:
                holder = auth[0].holder_name
        return TokenInfo(
            backend=BACKEND_NAME,
            source=self.reader,
            label=holder or self.identity.name,
            serial=data.serial if data else "",
            manufacturer="",
            model=self.identity.name,
            reader=self.reader,
            extra={"atr": self.identity.atr_hex, "driver": "piv", "cardName": self.identity.name},
        )

    @property
    def executor(self) -> Executor:
        return self._worker.executor

    def certificates(self) -> Sequence[CertificateInfo]:
        return self._load().certificates

    def pin_status(self, certificate: CertificateInfo) -> PinStatus:
        def step(piv: PivSession) -> PinStatus:
            state = piv.pin_state()
            return PinStatus(
                retries_left=state.retries_left,
                final_try=state.retries_left == 1,
                blocked=state.blocked,
                min_length=PIN_MIN,
                max_length=PIN_MAX,
            )

        return self._session(step)

    def supported_algorithms(self, certificate: CertificateInfo) -> Sequence[SignatureAlgorithm]:
        if certificate.key_type == "EC" and certificate.curve == "secp256r1":
            return (SignatureAlgorithm("ECC", "SHA-256", "NONE"),)
        if certificate.key_type == "EC" and certificate.curve == "secp384r1":
            return (SignatureAlgorithm("ECC", "SHA-384", "NONE"),)
        if certificate.key_type == "RSA" and certificate.key_size == 2048:
            return tuple(SignatureAlgorithm("RSA", h, "PKCS1.5") for h in ("SHA-256", "SHA-384", "SHA-512"))
        return ()

    def sign_digest(
        self,
        certificate: CertificateInfo,
        pin: bytearray | None,
        digest: bytes,
        algorithm: SignatureAlgorithm,
    ) -> bytes:
        key = _key_ref(certificate)
        if pin is None:
            raise InvalidInputError("This card needs a PIN; it has no PIN pad.")
        if algorithm not in self.supported_algorithms(certificate):
            raise UnsupportedKeyError(f"The card cannot sign {algorithm.jws} with this key.")
        if len(digest) != HASH_LENGTHS[algorithm.hash_function]:
            raise InvalidInputError("The digest length does not match the hash function.")
        if certificate.key_type == "RSA":
            alg = Algorithm.RSA_2048
            challenge = pkcs1_v15_block(digest, algorithm.hash_function, 256)
        else:
            alg = Algorithm.ECC_P256 if certificate.curve == "secp256r1" else Algorithm.ECC_P384
            challenge = digest
        field_bytes = 32 if alg == Algorithm.ECC_P256 else 48

        def step(piv: PivSession) -> bytes:
            piv.verify_pin(pin)
            signature = piv.general_authenticate(key, alg, challenge)
            if alg == Algorithm.RSA_2048:
                if len(signature) != 256:
                    raise CardError("The card's RSA signature has the wrong length.")
                return signature
            return ecdsa_der_to_raw(signature, field_bytes)

        return self._session(step, logout=True)

    # -- internals -------------------------------------------------------------------
    def _load(self) -> _CardData:
        if self._data is None:
            self._data = self._session(self._read_card, select=True)
        return self._data

    def identify_card(self) -> None:
        """Read what identifies the card (cheap when cached); UnsupportedCardError if no PIV."""
        self._load()

    def _read_card(self, piv: PivSession) -> _CardData:
        chuid = piv.read_chuid()
        serial = chuid.serial if chuid else ""
        key = (self.atr, serial) if serial else None
        cached = self._backend._cache_get(key) if key else None
        if cached is not None:
            return cached
        certs: list[CertificateInfo] = []
        for ref in _CERT_KEYS:
            der = piv.read_certificate(ref)
            if der is None:
                continue
            try:
                certs.append(parse_certificate(der, key_id=bytes([ref]), label=KEY_LABELS[ref]))
            except CardbridgeError as exc:
                log.warning("The %s certificate on the card cannot be parsed: %s", KEY_LABELS[ref], exc.message)
        data = _CardData(serial, tuple(certs))
        if key is not None:
            self._backend._cache_put(key, data)
        return data

    def _session(self, step: Callable[[PivSession], T], *, logout: bool = False, select: bool = True) -> T:
        return self._worker.run(lambda: self._on_card(step, logout=logout, select=select))

    def _on_card(self, step: Callable[[PivSession], T], *, logout: bool, select: bool) -> T:
        ctx = self._worker.context
        self._check_presence(ctx)
        conn = ctx.connect(self.reader)
        transport = ApduTransport(conn, extended=self._extended)
        try:
            with conn.transaction():
                piv = PivSession(transport, select=select)
                try:
                    return step(piv)
                finally:
                    if logout:
                        _log_out(piv)
        except PinError:
            raise
        except CardRemovedError:
            raise
        except (CardError, ServiceNotRunningError) as exc:
            raise self._explain(ctx, exc) from exc
        finally:
            self.apdu_count += transport.count
            self._backend.apdu_count += transport.count
            conn.close()

    def _gone(self, status: ReaderStatus) -> bool:
        return not status.present or status.atr != self.atr or status.event_count != self.event_count

    def _check_presence(self, ctx: PcscContext) -> None:
        if self._gone(ctx.reader_status(self.reader)):
            raise CardRemovedError("The card was removed.", reader=self.reader)

    def _explain(self, ctx: PcscContext, exc: CardbridgeError) -> CardbridgeError:
        """A transport failure is a removal when the card is gone or another one is there.

        pcscd notices a pulled card on its next poll of the reader, so wait (blocking in
        SCardGetStatusChange, not polling) up to REMOVAL_GRACE_MS for it to say so.
        """
        if isinstance(exc, CardResetError | ServiceNotRunningError | UnsupportedCardError):
            return exc
        try:
            status = ctx.reader_status(self.reader)
            if not self._gone(status):
                _code, states = ctx.status([(self.reader, status.event_state & ~STATE_CHANGED)], REMOVAL_GRACE_MS)
                status = states[0] if states else status
            if self._gone(status):
                return CardRemovedError("The card was removed.", reader=self.reader)
        except CardbridgeError:
            pass
        return exc


def _log_out(piv: PivSession) -> None:
    """End the PIN's security status; a card that is gone has nothing to log out."""
    with contextlib.suppress(CardbridgeError):
        piv.reset_security_status()


def _key_ref(certificate: CertificateInfo) -> KeyRef:
    if len(certificate.key_id) == 1 and certificate.key_id[0] in (KeyRef.AUTHENTICATION, KeyRef.SIGNATURE):
        return KeyRef(certificate.key_id[0])
    raise NoCertificateError("The certificate is not from this PIV card.")


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
        self._workers: dict[str, _ReaderWorker] = {}
        self._tokens: dict[str, PivToken] = {}
        self._not_piv: dict[str, tuple[bytes, int]] = {}
        self._cache: OrderedDict[tuple[bytes, str], _CardData] = OrderedDict()
        self._lock = threading.Lock()
        self.apdu_count = 0

    @property
    def name(self) -> str:
        return BACKEND_NAME

    @property
    def executor(self) -> Executor:
        return self._executor

    def readers(self) -> list[ReaderInfo]:
        """Every reader, with the card in it (blocks; run on ``executor``)."""
        return list_readers(self._context)

    def tokens(self) -> Sequence[Token]:
        """The PIV cards present now (blocks; run on ``executor``). With ``reader`` set, the
        card there or NoReadersError, NoCardError, CardBusyError, UnsupportedCardError."""
        found: list[Token] = []
        strict = self.reader is not None  # --reader NAME: say why there is no token there
        for status, identity in self._present():
            token = self._token(status, identity, strict=strict)
            if token is not None:
                found.append(token)
        return found

    def token(self, reader: str) -> PivToken:
        """The built-in driver's token on ``reader`` (``--reader NAME``): NoReadersError,
        NoCardError or UnsupportedCardError (with the ATR) when there is none."""
        for status, identity in self._present(reader):
            token = self._token(status, identity, strict=True)
            if token is not None:
                return token
        raise NoCardError(f"There is no card in {reader}.", reader=reader)  # pragma: no cover

    def listings(self) -> list[TokenListing]:
        """Every card in a reader: a PIV token with its certificates, or an error entry
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

    def _worker(self, reader: str) -> _ReaderWorker:
        with self._lock:
            worker = self._workers.get(reader)
            if worker is None:
                worker = self._workers[reader] = _ReaderWorker(reader)
            return worker

    def _token(self, status: ReaderStatus, identity: CardIdentity, *, strict: bool = False) -> PivToken | None:
        presence = (status.atr, status.event_count)
        known = self._tokens.get(status.name)
        if known is not None and (known.atr, known.event_count) == presence:
            return known
        if identity.driver not in (None, "piv") or (identity.driver is None and identity.module is not None):
            if strict:
                raise _unsupported(identity, status.name)
            return None
        if self._not_piv.get(status.name) == presence:
            if strict:
                raise _unsupported(identity, status.name)
            return None
        token = PivToken(self, self._worker(status.name), status, identity)
        try:
            token.identify_card()
        except UnsupportedCardError as exc:
            self._not_piv[status.name] = presence
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

    def _cache_get(self, key: tuple[bytes, str]) -> _CardData | None:
        with self._lock:
            data = self._cache.get(key)
            if data is not None:
                self._cache.move_to_end(key)
            return data

    def _cache_put(self, key: tuple[bytes, str], data: _CardData) -> None:
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)


def _unsupported(identity: CardIdentity, reader: str) -> UnsupportedCardError:
    extra = f" Use its PKCS#11 module ({identity.module})." if identity.module else ""
    return UnsupportedCardError(
        f"The card in {reader} ({identity.name}, ATR {identity.atr_hex}) has no built-in driver.{extra}",
        reader=reader,
        atr=identity.atr_hex,
        cardName=identity.name,
        module=identity.module,
    )


def deduplicate(tokens: Sequence[Token]) -> list[Token]:
    """One entry per card: a PKCS#11 token in a reader that the built-in driver also serves
    (same reader name, as OpenSC's slot description gives it) is left out."""
    builtin = {t.info.reader for t in tokens if t.info.backend == BACKEND_NAME and t.info.reader}
    out: list[Token] = []
    for token in tokens:
        info = token.info
        if (
            info.backend != BACKEND_NAME
            and info.reader
            and _reader_key(info.reader) in {_reader_key(r) for r in builtin if r}
        ):
            continue
        out.append(token)
    return out


def _reader_key(name: str) -> str:
    return " ".join(name.split()).casefold()


__all__ = [
    "BACKEND_NAME",
    "PcscBackend",
    "PivToken",
    "ReaderInfo",
    "deduplicate",
    "list_readers",
]
