"""Challenge nonces: issued once, consumed at most once, within a time to live.

A nonce is 32 random bytes from :mod:`secrets`, in standard base64 (44 characters). The
portal issues one when it shows the login page and consumes it when the token comes back;
a second consume, a consume after the time to live (5 minutes by default), or a consume of
a nonce the store never issued raises a :class:`~cardbridge.portal.errors.NonceError`.

Two stores: :class:`InMemoryNonceStore` for one process, and :class:`RedisNonceStore` for
several portal processes sharing one Redis (``SET NX PX`` to issue, ``GETDEL`` to consume,
so exactly one consumer wins a race).

Both check a nonce before they look it up: first the token rules (44–128 visible ASCII
characters, else INVALID_NONCE), then the form every nonce a store issues has (44
characters of standard base64 for 32 bytes); anything else was never issued and is
NONCE_UNKNOWN without a look-up.
"""

from __future__ import annotations

import abc
import base64
import binascii
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cardbridge.authtoken import check_nonce
from cardbridge.errors import InvalidNonceError
from cardbridge.portal.errors import (
    NonceError,
    NonceExpiredError,
    NonceStoreUnavailableError,
    NonceUnknownError,
    NonceUsedError,
)

if TYPE_CHECKING:
    import redis

NONCE_BYTES = 32
DEFAULT_TTL = 300.0  # seconds
DEFAULT_MAX_ENTRIES = 100_000


def generate_nonce() -> str:
    """32 random bytes from :mod:`secrets`, standard base64 with padding (44 characters)."""
    return base64.b64encode(secrets.token_bytes(NONCE_BYTES)).decode("ascii")


ISSUED_LENGTH = 44  # len(generate_nonce())


def is_issued_form(nonce: str) -> bool:
    """True when ``nonce`` has the form of every nonce a store issues: 44 characters of
    standard base64 with padding, for 32 bytes."""
    if len(nonce) != ISSUED_LENGTH:
        return False
    try:
        return len(base64.b64decode(nonce.encode("ascii"), validate=True)) == NONCE_BYTES
    except (ValueError, binascii.Error):
        return False


def _checked(nonce: object) -> str:
    """The nonce, when a store could have issued it: INVALID_NONCE for one that breaks the
    token rules, NONCE_UNKNOWN for one of another form (never issued, so never looked up)."""
    try:
        checked = check_nonce(nonce)
    except InvalidNonceError as exc:
        raise NonceError(exc.message) from exc
    if not is_issued_form(checked):
        raise NonceUnknownError("The nonce is unknown to this portal (not of the form it issues).")
    return checked


def _checked_ttl(ttl: float) -> float:
    if not ttl > 0:
        raise ValueError("The nonce time to live must be positive.")
    return float(ttl)


class NonceStore(abc.ABC):
    """Where a portal keeps the nonces it has issued and not yet seen come back."""

    ttl: float  # seconds

    @abc.abstractmethod
    def issue(self) -> str:
        """A fresh nonce, remembered for ``ttl`` seconds."""

    @abc.abstractmethod
    def consume(self, nonce: str) -> None:
        """Succeed once for a nonce this store issued less than ``ttl`` seconds ago.

        Raises NonceError (INVALID_NONCE) for a malformed nonce, NonceUnknownError,
        NonceExpiredError or NonceUsedError otherwise (each a TokenValidationError).
        """


class InMemoryNonceStore(NonceStore):
    """Nonces in a dict, for a portal that runs in one process. Thread-safe.

    Memory stays bounded: expired entries are purged on every call (they sit at the front,
    since every entry lives the same ``ttl``), and at most ``max_entries`` are kept (the
    oldest is dropped first). A consumed nonce is remembered until it would have expired,
    so a replay is reported as NONCE_USED rather than NONCE_UNKNOWN.
    """

    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1.")
        self.ttl = _checked_ttl(ttl)
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        # nonce -> [expires_at, used]; insertion order is expiry order.
        self._entries: dict[str, list[Any]] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _purge(self, now: float) -> None:
        entries = self._entries
        while entries:
            oldest = next(iter(entries))
            if entries[oldest][0] > now:
                break
            del entries[oldest]

    def issue(self) -> str:
        while True:
            nonce = generate_nonce()
            with self._lock:
                now = self._clock()
                self._purge(now)
                if nonce in self._entries:  # pragma: no cover - 2**-256
                    continue
                while len(self._entries) >= self.max_entries:
                    del self._entries[next(iter(self._entries))]
                self._entries[nonce] = [now + self.ttl, False]
                return nonce

    def consume(self, nonce: str) -> None:
        nonce = _checked(nonce)
        with self._lock:
            now = self._clock()
            entry = self._entries.get(nonce)
            if entry is None:
                self._purge(now)
                raise NonceUnknownError("The nonce is unknown to this portal.")
            expires_at, used = entry
            if expires_at <= now:
                self._purge(now)
                raise NonceExpiredError("The nonce has expired.")
            if used:
                raise NonceUsedError("The nonce was already used.")
            entry[1] = True
            self._purge(now)


class RedisNonceStore(NonceStore):
    """Nonces in Redis, shared by every process of a portal.

    ``issue`` stores ``PREFIX + "issued:" + nonce`` with ``SET NX PX ttl``; ``consume``
    takes it with ``GETDEL`` (Redis 6.2 or later) and, in the same atomic script, leaves a
    "used" marker ``PREFIX + "used:" + nonce`` for ``ttl``: of several consumers racing for
    one nonce exactly one gets it, and the others (and a replay within ``ttl``) get
    NONCE_USED. Anything else is NONCE_UNKNOWN (never issued, or expired: Redis forgets both
    alike). The two kinds of key have prefixes of their own, and a nonce is checked to have
    the issued form (base64, so no ``:``) before it reaches Redis: no nonce string names
    another nonce's key or a marker. A Redis failure raises NonceStoreUnavailableError.
    """

    # KEYS[1] the nonce, KEYS[2] its used marker, ARGV[1] the marker's lifetime in ms.
    # Returns 1 when this call consumed the nonce, 2 when it was used before, 0 otherwise.
    _CONSUME = """
local value = redis.call('GETDEL', KEYS[1])
if value then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
  return 1
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 2
end
return 0
"""

    def __init__(
        self,
        client: redis.Redis,
        ttl: float = DEFAULT_TTL,
        *,
        key_prefix: str = "cardbridge:nonce:",
    ) -> None:
        self.ttl = _checked_ttl(ttl)
        self.client = client
        self.key_prefix = key_prefix
        self._ttl_ms = max(1, round(self.ttl * 1000))

    @classmethod
    def from_url(cls, url: str, ttl: float = DEFAULT_TTL, **options: Any) -> RedisNonceStore:
        """A store on a new connection pool to ``url`` (``redis://host:port/db``)."""
        import redis as redis_module  # optional: only this store needs redis

        key_prefix = options.pop("key_prefix", "cardbridge:nonce:")
        return cls(redis_module.Redis.from_url(url, **options), ttl, key_prefix=key_prefix)

    def _key(self, nonce: str) -> str:
        """The key of an issued, not yet consumed nonce."""
        return self.key_prefix + "issued:" + nonce

    def _used_key(self, nonce: str) -> str:
        """The key of the marker a consumed nonce leaves for ``ttl``."""
        return self.key_prefix + "used:" + nonce

    def issue(self) -> str:
        import redis as redis_module

        for _ in range(3):
            nonce = generate_nonce()
            try:
                stored = self.client.set(self._key(nonce), b"1", nx=True, px=self._ttl_ms)
            except redis_module.RedisError as exc:
                raise NonceStoreUnavailableError(f"The nonce store cannot be reached: {exc}") from exc
            if stored:
                return nonce
        raise NonceStoreUnavailableError("The nonce store refused three fresh nonces.")  # pragma: no cover

    def consume(self, nonce: str) -> None:
        import redis as redis_module

        nonce = _checked(nonce)
        try:
            outcome = self.client.eval(self._CONSUME, 2, self._key(nonce), self._used_key(nonce), self._ttl_ms)
        except redis_module.RedisError as exc:
            raise NonceStoreUnavailableError(f"The nonce store cannot be reached: {exc}") from exc
        if outcome == 2:
            raise NonceUsedError("The nonce was already used.")
        if outcome != 1:
            raise NonceUnknownError("The nonce is unknown or expired.")
