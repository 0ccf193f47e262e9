"""PKCS#11 backend: one loaded module, its tokens, certificates and signing.

All calls into one module run on that module's single worker thread (python-pkcs11 is not
safe to call from several threads at once): :class:`ModuleBackend` owns the thread, and its
methods and its tokens' methods must be called on it (the service does that).

Shutting down (:meth:`ModuleBackend.close`, and :func:`shutdown` for every backend of the
process, which each entry point calls before the process ends): calls not yet started are
cancelled; the call in progress is waited for, up to ``SHUTDOWN_WAIT`` seconds (a module
writes its token files inside C_Login: SoftHSM2 truncated ``token.object`` to nothing when
its process left in the middle); then the sessions are closed, which logs the user out,
and the module is finalized.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from pkcs11.mechanisms import MGF

import pkcs11
from cardbridge import modulelogins
from cardbridge.certs import parse_certificate
from cardbridge.errors import (
    CardbridgeError,
    InvalidInputError,
    KeyNotFoundError,
    ModuleError,
    PinBlockedError,
    PinIncorrectError,
    PinInvalidLengthError,
    UnsupportedKeyError,
    UserCancelledError,
)
from cardbridge.logsetup import TRACE
from cardbridge.model import (
    DIGEST_INFO_PREFIXES,
    SIGNING_HASHES,
    BackendKind,
    CertificateInfo,
    CryptoAlgorithm,
    HashFunction,
    KeyType,
    Padding,
    PinStatus,
    ReadersState,
    SignatureAlgorithm,
    TokenInfo,
    names_reader,
)
from cardbridge.pkcs11 import _cryptoki as ck
from cardbridge.pkcs11.errors import convert
from pkcs11 import Attribute, Mechanism, ObjectClass, TokenFlag

log = logging.getLogger(__name__)
SHUTDOWN_WAIT = 5.0  # seconds a shutdown waits for the module call in progress (a C_Login takes < 1 s)
P = ParamSpec("P")
T = TypeVar("T")

# Every ModuleBackend of the process, for shutdown(). Several backends may load one module:
# it is finalized when the last of them closes, and a lock per module orders loading it
# against finalizing it. _lifecycle guards these sets, never a module call.
_backends: weakref.WeakSet[ModuleBackend] = weakref.WeakSet()
_closing: set[ModuleBackend] = set()  # closing, with a call in progress or the clean-up to run
_module_locks: dict[str, threading.Lock] = {}
_lifecycle = threading.RLock()  # re-entered when a done callback runs at once


def _closed(backend: ModuleBackend) -> None:
    with _lifecycle:
        _closing.discard(backend)


def _module_lock(path: str) -> threading.Lock:
    with _lifecycle:
        return _module_locks.setdefault(path, threading.Lock())


_PSS_PARAMS = {
    HashFunction.SHA224: (Mechanism.SHA224, MGF.SHA224, 28),
    HashFunction.SHA256: (Mechanism.SHA256, MGF.SHA256, 32),
    HashFunction.SHA384: (Mechanism.SHA384, MGF.SHA384, 48),
    HashFunction.SHA512: (Mechanism.SHA512, MGF.SHA512, 64),
}


def digest_info(hash_function: str, digest: bytes) -> bytes:
    """The PKCS#1 v1.5 DigestInfo for ``digest``."""
    return DIGEST_INFO_PREFIXES[hash_function] + digest


class _Worker(ThreadPoolExecutor):
    """A module's one worker thread. It remembers the calls that have not started, so that a
    shutdown can cancel them and queue its clean-up right behind the call in progress."""

    def __init__(self, name: str) -> None:
        super().__init__(max_workers=1, thread_name_prefix=name)
        self._waiting: set[Future[Any]] = set()
        self._waiting_lock = threading.Lock()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future = super().submit(fn, *args, **kwargs)
        with self._waiting_lock:
            self._waiting.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[Any]) -> None:
        with self._waiting_lock:
            self._waiting.discard(future)

    def cancel_waiting(self) -> int:
        """Cancel the calls that have not started (the one in progress runs on); how many."""
        with self._waiting_lock:
            waiting = list(self._waiting)
        return sum(future.cancel() for future in waiting)


class ModuleBackend:
    """One PKCS#11 module, loaded and called on one worker thread."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._executor = _Worker(f"pkcs11-{os.path.basename(path)}")
        self._lib: Any = None
        self._raw: ck.Cryptoki | None = None
        self._slots: set[int] = set()  # slots whose tokens were listed: closed at shutdown
        # The PC/SC readers and the drivers' readers at a listing that found only their cards,
        # in a module whose slots are all PC/SC readers: not asked again while they hold.
        self._quiet: tuple[ReadersState, frozenset[str]] | None = None
        self._closed: Future[None] | None = None
        self._released = False  # done with the module (closing, after its last call)
        # Parsed certificates per card (see Pkcs11Token.certificates); worker thread only.
        self.certificate_cache: dict[tuple[Any, ...], tuple[CertificateInfo, ...]] = {}
        with _lifecycle:
            _backends.add(self)

    @property
    def name(self) -> str:
        return self._path

    @property
    def executor(self) -> Executor:
        return self._executor

    @property
    def tokens_share_worker(self) -> bool:
        """Its tokens run on the module's one worker thread (python-pkcs11 is not thread-safe)."""
        return True

    @property
    def closing(self) -> bool:
        """True once :meth:`close` has begun: a call in progress starts nothing new."""
        return self._closed is not None

    def _load(self) -> tuple[Any, ck.Cryptoki]:
        if self._lib is None or self._raw is None:
            try:
                with _module_lock(self._path):  # not while another backend finalizes the module
                    self._lib = pkcs11.lib(self._path)  # (initialized again after a finalize)
                self._raw = ck.Cryptoki(self._path)
            except (pkcs11.PKCS11Error, ck.CryptokiError, OSError) as exc:
                raise ModuleError(f"The PKCS#11 module {self._path} cannot be loaded: {exc}") from exc
        return self._lib, self._raw

    def describe(self) -> dict[str, Any]:
        """The module's own description (C_GetInfo). Blocks: run on ``executor``."""
        lib, _ = self._load()
        return {
            "path": self._path,
            "manufacturer": lib.manufacturer_id,
            "description": lib.library_description,
            "cryptokiVersion": "{}.{}".format(*lib.cryptoki_version),
            "libraryVersion": "{}.{}".format(*lib.library_version),
        }

    def readers_state(self) -> ReadersState | None:
        return None

    def tokens(self, skip_readers: Collection[str] = (), readers: ReadersState | None = None) -> Sequence[Pkcs11Token]:
        """Tokens present now, but none in a slot named after one of ``skip_readers`` (its
        token is not asked anything: OpenSC reads the card for C_GetTokenInfo). Blocks: run
        on ``executor``.

        Not asked at all (no C_GetSlotList) while the PC/SC ``readers`` are as they were at
        the last listing, when every slot of the module was one of those readers and it had
        no token outside ``skip_readers`` then: a module that reaches cards through PC/SC
        can have no new token without a reader or a card coming or going, and OpenSC 0.23
        tries every driver it has (about 50 APDUs) on a card it has none for, at every
        C_GetSlotList. A module with any other slot (a soft token, a token with a reader of
        its own) is always asked."""
        lib, raw = self._load()
        quiet = self._quiet
        if readers is not None and quiet is not None and quiet[0] == readers and quiet[1] <= frozenset(skip_readers):
            return []
        self._quiet = None
        try:
            slots = lib.get_slots(token_present=True)
            found = []
            for slot in slots:
                if skip_readers and names_reader(slot.slot_description.strip(), skip_readers):
                    continue
                token = slot.get_token()
                if not token.flags & TokenFlag.TOKEN_INITIALIZED:
                    continue
                self._slots.add(int(slot.slot_id))
                found.append(Pkcs11Token(self, raw, slot, token))
            if readers is not None and not found:
                names = [name for name, _count in readers]
                every = lib.get_slots(token_present=False)
                if every and all(names_reader(slot.slot_description.strip(), names) for slot in every):
                    self._quiet = (readers, frozenset(skip_readers))
        except pkcs11.PKCS11Error as exc:
            raise convert(exc, "listing the tokens") from exc
        log.log(TRACE, "C_GetSlotList(%s): %d tokens", self._path, len(found))
        return found

    def close(self) -> None:
        """Shut the module down: cancel the calls that have not started, wait up to
        ``SHUTDOWN_WAIT`` seconds for the one in progress, then close the sessions (which
        logs the user out) and finalize the module, unless another backend of this process
        still uses it. Idempotent; from any thread but the worker's. A call that is still
        running at the deadline (a module that hangs) is left to the worker; :func:`shutdown`
        tells the process so."""
        self.wait_closed(SHUTDOWN_WAIT)

    def wait_closed(self, timeout: float) -> bool:
        """Begin closing (see :meth:`close`) and wait up to ``timeout`` seconds; True when
        it is done, False when a module call still runs."""
        closed = self._begin_close()
        try:
            closed.result(timeout)
        except TimeoutError:
            log.warning("%s: a call still runs after %.1f s; not waiting for it any longer", self._path, timeout)
            return False
        except Exception as exc:  # the clean-up itself failed: nothing is left to wait for
            log.warning("%s: closing failed: %s", self._path, exc)
        return True

    def _begin_close(self) -> Future[None]:
        with _lifecycle:
            if self._closed is None:
                _backends.discard(self)
                _closing.add(self)
                cancelled = self._executor.cancel_waiting()
                if cancelled:
                    log.debug("%s: %d queued calls cancelled at shutdown", self._path, cancelled)
                self._closed = self._executor.submit(self._finish)  # runs after the call in progress
                self._closed.add_done_callback(lambda _: _closed(self))
                self._executor.shutdown(wait=False)
            return self._closed

    def _finish(self) -> None:
        """On the worker, after its last call: close the sessions, finalize the module."""
        if self._lib is None or self._raw is None:
            self._released = True
            return  # never loaded
        with _module_lock(self._path):
            with _lifecycle:
                self._released = True
                users = (b for b in (*_backends, *_closing) if b is not self and b._path == self._path)
                if any(not b._released for b in users):
                    return  # another backend of this process still uses the module: it finalizes it
            for slot_id in sorted(self._slots):
                try:
                    self._raw.close_all_sessions(slot_id)
                except ck.CryptokiError as exc:  # no session, or the token is gone
                    log.debug("C_CloseAllSessions(%d) failed: CKR 0x%08X", slot_id, exc.rv)
            try:
                self._lib.finalize()
            except pkcs11.PKCS11Error as exc:
                log.debug("C_Finalize failed: %s", type(exc).__name__)
        log.log(TRACE, "C_Finalize(%s)", self._path)


def shutdown(timeout: float = SHUTDOWN_WAIT) -> bool:
    """Close every :class:`ModuleBackend` of this process (see :meth:`ModuleBackend.close`),
    and wait for those already closing, at most ``timeout`` seconds in all. The one shutdown
    routine of the PKCS#11 layer: each entry point calls it before its process ends, and
    leaves only after it — with ``os._exit`` when it returns False (a module call that hangs
    would keep the interpreter from exiting).

    True when no module call is left running.
    """
    with _lifecycle:
        backends = [*_backends, *_closing]
    for backend in backends:
        backend._begin_close()
    deadline = time.monotonic() + timeout
    done = True
    for backend in backends:
        done = backend.wait_closed(max(0.0, deadline - time.monotonic())) and done
    return done


class Pkcs11Token:
    """A token in one slot of a :class:`ModuleBackend`."""

    def __init__(self, backend: ModuleBackend, raw: ck.Cryptoki, slot: Any, token: Any) -> None:
        self._backend = backend
        self._raw = raw
        self._slot = slot
        self._token = token
        self._info = TokenInfo(
            backend=BackendKind.PKCS11,
            source=backend.name,
            label=token.label.strip(),
            serial=token.serial.decode("ascii", "replace").strip(),
            manufacturer=token.manufacturer_id.strip(),
            model=token.model.strip(),
            slot=int(slot.slot_id),
            reader=slot.slot_description.strip() or None,
        )
        self._mechanisms: frozenset[Any] | None = None

    @property
    def info(self) -> TokenInfo:
        return self._info

    @property
    def executor(self) -> Executor:
        return self._backend.executor

    @contextmanager
    def _session(self) -> Iterator[Any]:
        try:
            session = self._token.open()
        except pkcs11.PKCS11Error as exc:
            raise convert(exc, "opening a session") from exc
        try:
            yield session
        finally:
            try:
                session.close()
            except pkcs11.PKCS11Error as exc:  # the card may be gone: nothing left to close
                log.debug("C_CloseSession failed: %s", type(exc).__name__)

    @property
    def _identity(self) -> tuple[Any, ...]:
        """What tells this card from another in the same slot (a new card has a new serial)."""
        info = self._info
        return (info.slot, info.serial, info.label, info.manufacturer, info.model)

    def certificates(self) -> Sequence[CertificateInfo]:
        """The certificates, read once per card: ID cards do not change their certificates,
        and a card put in later has another serial number."""
        cached = self._backend.certificate_cache.get(self._identity)
        if cached is None:
            cached = tuple(self._read_certificates())
            if len(self._backend.certificate_cache) >= 32:
                self._backend.certificate_cache.clear()
            self._backend.certificate_cache[self._identity] = cached
        return cached

    def forget_certificates(self) -> None:
        self._backend.certificate_cache.pop(self._identity, None)

    def _read_certificates(self) -> list[CertificateInfo]:
        found: list[CertificateInfo] = []
        with self._session() as session:
            try:
                objects = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}))
                for obj in objects:
                    der = obj[Attribute.VALUE]
                    key_id = _attr(obj, Attribute.ID, b"")
                    label = _attr(obj, Attribute.LABEL, "")
                    try:
                        found.append(parse_certificate(der, key_id=bytes(key_id), label=str(label)))
                    except InvalidInputError as exc:
                        log.warning("Skipping an unreadable certificate %r on %s: %s", label, self._info.label, exc)
            except pkcs11.PKCS11Error as exc:
                raise convert(exc, "reading the certificates") from exc
        log.log(TRACE, "C_FindObjects(CKO_CERTIFICATE) on %s: %d", self._info.label, len(found))
        return found

    def _state(self) -> ck.TokenState:
        try:
            return self._raw.token_state(int(self._slot.slot_id))
        except ck.CryptokiError as exc:
            raise convert(exc, "reading the token state") from exc

    def pin_status(self, certificate: CertificateInfo | None = None) -> PinStatus:
        state = self._state()
        flags = state.flags
        blocked = bool(flags & ck.CKF_USER_PIN_LOCKED)
        final_try = bool(flags & ck.CKF_USER_PIN_FINAL_TRY)
        retries: int | None = 0 if blocked else (1 if final_try else None)
        return PinStatus(
            retries_left=retries,
            count_low=bool(flags & ck.CKF_USER_PIN_COUNT_LOW),
            final_try=final_try,
            blocked=blocked,
            min_length=state.min_pin_length or 1,
            max_length=state.max_pin_length or 255,
            protected_path=bool(flags & ck.CKF_PROTECTED_AUTHENTICATION_PATH),
        )

    def _mechanism_set(self) -> frozenset[Any]:
        if self._mechanisms is None:
            try:
                self._mechanisms = frozenset(self._slot.get_mechanisms())
            except pkcs11.PKCS11Error as exc:
                raise convert(exc, "listing the mechanisms") from exc
        return self._mechanisms

    def supported_algorithms(self, certificate: CertificateInfo) -> Sequence[SignatureAlgorithm]:
        mechanisms = self._mechanism_set()
        if certificate.key_type == KeyType.EC:
            if Mechanism.ECDSA not in mechanisms:
                return []
            return [SignatureAlgorithm(CryptoAlgorithm.ECC, h, Padding.NONE) for h in SIGNING_HASHES]
        if certificate.key_type == KeyType.RSA:
            found = []
            if Mechanism.RSA_PKCS in mechanisms:
                found += [SignatureAlgorithm(CryptoAlgorithm.RSA, h, Padding.PKCS1_5) for h in SIGNING_HASHES]
            if Mechanism.RSA_PKCS_PSS in mechanisms:
                found += [SignatureAlgorithm(CryptoAlgorithm.RSA, h, Padding.PSS) for h in SIGNING_HASHES]
            return found
        return []

    def sign_digest(
        self,
        certificate: CertificateInfo,
        pin: bytearray | None,
        digest: bytes,
        algorithm: SignatureAlgorithm,
    ) -> bytes:
        status = self.pin_status(certificate)
        if status.blocked:
            raise PinBlockedError("The PIN is blocked.", retries_left=0)
        if pin is None and not status.protected_path:
            raise InvalidInputError("A PIN is needed.")
        if pin is not None and not status.min_length <= len(pin) <= status.max_length:
            raise PinInvalidLengthError(
                f"The PIN must have {status.min_length} to {status.max_length} characters.",
                minLength=status.min_length,
                maxLength=status.max_length,
            )
        with self._session() as session:
            try:
                modulelogins.note()  # the card may see a VERIFY (cardbridge.pcsc.pinstate)
                self._raw.login(int(session.handle), pin)
            except ck.CryptokiError as exc:
                error = convert(exc, "checking the PIN")
                raise self._pin_error(error) from exc
            log.log(TRACE, "C_Login(CKU_USER, <redacted>) on %s: CKR_OK", self._info.label)
            try:
                if self._backend.closing:  # shut down during C_Login: log out, sign nothing
                    raise UserCancelledError("The bridge is shutting down; nothing was signed.")
                try:
                    key = self._private_key(session, certificate)
                except KeyNotFoundError:
                    self.forget_certificates()  # read them afresh next time
                    raise
                return self._sign(key, digest, algorithm)
            finally:
                try:
                    self._raw.logout(int(session.handle))
                except ck.CryptokiError as exc:
                    log.debug("C_Logout failed: CKR 0x%08X", exc.rv)

    def _pin_error(self, error: CardbridgeError) -> CardbridgeError:
        """Add the tries left, as the token's flags tell them after the failed login."""
        if not isinstance(error, PinIncorrectError):
            return error
        try:
            after = self.pin_status()
        except CardbridgeError:
            return error
        if after.blocked:
            return PinBlockedError("The PIN was wrong and is now blocked.", retries_left=0)
        return PinIncorrectError(error.message, retries_left=after.retries_left)

    def _private_key(self, session: Any, certificate: CertificateInfo) -> Any:
        if not certificate.key_id:
            raise KeyNotFoundError("The certificate has no CKA_ID to find its key by.")
        try:
            keys = list(
                session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: certificate.key_id})
            )
        except pkcs11.PKCS11Error as exc:
            raise convert(exc, "finding the private key") from exc
        if len(keys) != 1:
            raise KeyNotFoundError(
                f"Expected one private key with the certificate's CKA_ID, found {len(keys)}.",
                keyId=certificate.key_id.hex(),
            )
        return keys[0]

    def _sign(self, key: Any, digest: bytes, algorithm: SignatureAlgorithm) -> bytes:
        try:
            if algorithm.crypto == CryptoAlgorithm.ECC:
                if key.key_type != pkcs11.KeyType.EC:
                    raise UnsupportedKeyError("The key is not an EC key.")
                signature = key.sign(digest, mechanism=Mechanism.ECDSA)
            elif algorithm.padding == Padding.PKCS1_5:
                signature = key.sign(digest_info(algorithm.hash_function, digest), mechanism=Mechanism.RSA_PKCS)
            elif algorithm.padding == Padding.PSS:
                signature = key.sign(
                    digest,
                    mechanism=Mechanism.RSA_PKCS_PSS,
                    mechanism_param=_PSS_PARAMS[algorithm.hash_function],
                )
            else:
                raise UnsupportedKeyError(f"Unsupported algorithm {algorithm.jws}.")
        except pkcs11.PKCS11Error as exc:
            raise convert(exc, "signing") from exc
        log.log(TRACE, "C_Sign(%s) on %s: %d bytes", algorithm.jws, self._info.label, len(signature))
        return bytes(signature)


def _attr(obj: Any, attribute: Any, default: Any) -> Any:
    try:
        return obj[attribute]
    except (pkcs11.AttributeTypeInvalid, pkcs11.AttributeSensitive):
        return default
