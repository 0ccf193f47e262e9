"""What every built-in card driver's token shares: one card presence in one reader.

A :class:`CardToken` is a :class:`cardbridge.model.Token` for the card in one reader,
bound to that card's *presence* (reader, ATR and pcsc-lite's event counter): when the card
is pulled or swapped it raises CardRemovedError. Each token method is one PC/SC connection
and one transaction (:meth:`CardToken.transact`): connect (shared), SCardBeginTransaction,
the driver's APDUs, SCardEndTransaction, disconnect. No transaction is held between calls,
so none is held while a PIN dialog is open.

A driver subclasses :class:`CardToken` (or :class:`cardbridge.pcsc.filesystem.FileSystemToken`
for ISO 7816-4 file-system cards), sets :attr:`CardToken.driver`, and implements
:meth:`CardToken.read_serial` and :meth:`CardToken.read_certificates` (read once per card
and cached by the backend's :class:`CardCache`), ``pin_status``, ``supported_algorithms``
and :meth:`CardToken.sign_on_card` (``sign_digest`` checks the request first, for every
driver alike).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from cardbridge.certs import parse_certificate
from cardbridge.errors import (
    CardbridgeError,
    CardError,
    CardRemovedError,
    CardResetError,
    InvalidInputError,
    PinError,
    ServiceNotRunningError,
    UnsupportedCardError,
    UnsupportedKeyError,
)
from cardbridge.model import HASH_LENGTHS, CertificateInfo, PinStatus, Purpose, SignatureAlgorithm, TokenInfo
from cardbridge.pcsc.apdu import ApduTransport
from cardbridge.pcsc.atr import CardIdentity, supports_extended_length
from cardbridge.pcsc.clients import others_connected
from cardbridge.pcsc.readers import BACKEND_NAME, ReaderWorker
from cardbridge.pcsc.scard import LEAVE_CARD, RESET_CARD, STATE_CHANGED, PcscContext, ReaderStatus

log = logging.getLogger(__name__)
T = TypeVar("T")

REMOVAL_GRACE_MS = 1500
CACHE_SIZE = 8


@dataclass(frozen=True, slots=True)
class CardData:
    """What a driver reads once per card: a serial (may be empty) and the certificates."""

    serial: str
    certificates: tuple[CertificateInfo, ...]


class CardCache:
    """Card data by card identity (the ATR and the card's serial), least recently used out."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, bytes, str], CardData] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, bytes, str]) -> CardData | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: tuple[str, bytes, str], data: CardData) -> None:
        with self._lock:
            self._items[key] = data
            while len(self._items) > self._size:
                self._items.popitem(last=False)


@dataclass(slots=True)
class SignRequest:
    """One signature as a driver makes it: checked by :meth:`CardToken.check_sign_request`
    (a PIN, an algorithm the key signs, a digest of its hash's length)."""

    certificate: CertificateInfo
    pin: bytearray
    digest: bytes
    algorithm: SignatureAlgorithm
    reset: bool = False  # the card did not log out: reset it on disconnect


class ApduCounter:
    """APDUs sent by a backend's tokens (for bench/apdu.py)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.count += n


@dataclass(frozen=True, slots=True)
class CardSlot:
    """What the backend hands a driver for one card presence."""

    worker: ReaderWorker
    status: ReaderStatus
    identity: CardIdentity
    cache: CardCache
    counter: ApduCounter


class CardToken:
    """One card in one reader, driven by a built-in driver (a :class:`model.Token`)."""

    driver: ClassVar[str] = ""

    def __init__(self, slot: CardSlot) -> None:
        self._slot = slot
        self._worker = slot.worker
        self.reader = slot.status.name
        self.atr = slot.status.atr
        self.event_count = slot.status.event_count
        self.identity = slot.identity
        self.extended = supports_extended_length(slot.status.atr)
        self._data: CardData | None = None
        self.apdu_count = 0  # APDUs this token sent (for bench/apdu.py)

    # -- model.Token (the parts every driver shares) -------------------------------------
    @property
    def info(self) -> TokenInfo:
        data = self._data
        holder = ""
        if data is not None:
            auth = [c for c in data.certificates if c.purpose is Purpose.AUTHENTICATION]
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
            extra={"atr": self.identity.atr_hex, "driver": self.driver, "cardName": self.identity.name},
        )

    @property
    def executor(self) -> Executor:
        return self._worker.executor

    def certificates(self) -> Sequence[CertificateInfo]:
        return self.load().certificates

    def pin_status(self, certificate: CertificateInfo) -> PinStatus:
        raise NotImplementedError

    def supported_algorithms(self, certificate: CertificateInfo) -> Sequence[SignatureAlgorithm]:
        raise NotImplementedError

    def sign_digest(
        self, certificate: CertificateInfo, pin: bytearray | None, digest: bytes, algorithm: SignatureAlgorithm
    ) -> bytes:
        """The checks (:meth:`check_key`, :meth:`check_sign_request`) before the card is
        touched, then one transaction: the driver's :meth:`sign_on_card`."""
        self.check_key(certificate)
        checked_pin = self.check_sign_request(certificate, pin, digest, algorithm)
        request = SignRequest(certificate, checked_pin, digest, algorithm)
        return self.transact(lambda transport: self.sign_on_card(transport, request), reset=lambda: request.reset)

    # -- for drivers ---------------------------------------------------------------------
    def check_key(self, certificate: CertificateInfo) -> None:
        """NoCertificateError when ``certificate`` is not one of this card's keys."""

    def sign_on_card(self, transport: ApduTransport, request: SignRequest) -> bytes:
        """The driver's APDUs of one signature (log in, sign, :meth:`log_out`), inside the
        transaction."""
        raise NotImplementedError

    def log_out(self, request: SignRequest, logout: Callable[[], object]) -> None:
        """Run the card's own logout (``logout``) after a VERIFY; when the card does not
        (gone, or it refuses), it is reset on disconnect instead (SCARD_RESET_CARD)."""
        try:
            logout()
        except CardbridgeError:
            log.info("The card did not log out; it is reset on disconnect")
            request.reset = True

    def check_sign_request(
        self, certificate: CertificateInfo, pin: bytearray | None, digest: bytes, algorithm: SignatureAlgorithm
    ) -> bytearray:
        """What every driver checks before a card is touched: a PIN (no driver has a PIN-pad
        path), an algorithm this key signs, a digest of the hash's length. Returns the PIN."""
        if pin is None:
            raise InvalidInputError("This card needs a PIN; it has no PIN pad.")
        if algorithm not in self.supported_algorithms(certificate):
            raise UnsupportedKeyError(f"The card cannot sign {algorithm.jws} with this key.")
        if len(digest) != HASH_LENGTHS[algorithm.hash_function]:
            raise InvalidInputError("The digest length does not match the hash function.")
        return pin

    def identify_card(self) -> None:
        """Confirm the card application (SELECT) and read what identifies the card; raises
        UnsupportedCardError when the application is not there. Cheap when cached."""
        self.load()

    def load(self) -> CardData:
        if self._data is None:
            self._data = self.transact(self._read_cached)
        return self._data

    def _read_cached(self, transport: ApduTransport) -> CardData:
        serial = self.read_serial(transport)
        key = (self.driver, self.atr, serial) if serial else None
        cached = self._slot.cache.get(key) if key else None
        if cached is not None:
            return cached
        data = CardData(serial, tuple(self.read_certificates(transport)))
        if key is not None:
            self._slot.cache.put(key, data)
        return data

    def read_serial(self, transport: ApduTransport) -> str:
        """SELECT the application (UnsupportedCardError when absent) and return the card's
        serial ("" when it has none: then nothing is cached). Runs inside a transaction."""
        raise NotImplementedError

    def read_certificates(self, transport: ApduTransport) -> list[CertificateInfo]:
        """Read the certificates (after :meth:`read_serial` in the same transaction)."""
        raise NotImplementedError

    def transact(self, step: Callable[[ApduTransport], T], *, reset: bool | Callable[[], bool] = False) -> T:
        """Run ``step`` on this reader's worker in one connection and one transaction.

        ``reset`` (or what it returns once ``step`` ends): disconnect with SCARD_RESET_CARD
        (logs every PIN out without an APDU, but also resets the card for every other
        program); drivers whose card logs out with an APDU log out in ``step`` instead.
        """
        return self._worker.run(lambda: self._on_card(step, reset=reset))

    def _on_card(self, step: Callable[[ApduTransport], T], *, reset: bool | Callable[[], bool]) -> T:
        ctx = self._worker.context
        self._check_presence(ctx)
        conn = ctx.connect(self.reader)
        transport = ApduTransport(conn, extended=self.extended)
        try:
            with conn.transaction():
                return step(transport)
        except (PinError, CardRemovedError):
            raise
        except (CardError, ServiceNotRunningError) as exc:
            raise self._explain(ctx, exc) from exc
        finally:
            self.apdu_count += transport.count
            self._slot.counter.add(transport.count)
            conn.disposition = RESET_CARD if (reset() if callable(reset) else reset) else LEAVE_CARD
            conn.close()

    def other_client(self) -> bool:
        """Whether a program other than this process may hold a connection to the card now
        (no APDU): SCARD_STATE_EXCLUSIVE while this token's own connection is closed, or
        SCARD_STATE_INUSE while some other process is connected to pcscd. A card held only
        from inside this process (a PKCS#11 module loaded beside the direct drivers, such
        as OpenSC's through p11-kit) is not another program (:mod:`cardbridge.pcsc.clients`).
        CardRemovedError when the card is gone."""

        def check() -> bool:
            status = self._worker.context.reader_status(self.reader)
            if self._gone(status):
                raise CardRemovedError("The card was removed.", reader=self.reader)
            return status.exclusive or (status.in_use and others_connected())

        return self._worker.run(check)

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


def parse_or_warn(der: bytes, key_id: bytes, label: str) -> CertificateInfo | None:
    """The certificate; one that cannot be parsed is left out with a warning (not an error)."""
    try:
        return parse_certificate(der, key_id=key_id, label=label)
    except CardbridgeError as exc:
        log.warning("The %s certificate on the card cannot be parsed: %s", label, exc.message)
        return None
