"""Nonce stores: issued once, consumed once, within the time to live; Redis against a real redis-server."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from cryptography import x509

from cardbridge.emulator.devpki import Citizen, DevCA, PrivateKey
from cardbridge.portal import (
    AuthTokenValidator,
    InMemoryNonceStore,
    NonceStore,
    RedisNonceStore,
    TokenValidationError,
)
from cardbridge.portal.errors import (
    NonceError,
    NonceExpiredError,
    NonceStoreUnavailableError,
    NonceUnknownError,
    NonceUsedError,
)
from cardbridge.portal.nonces import generate_nonce
from tests.portal.helpers import ORIGIN, make_token


class Clock:
    """A monotonic clock the test moves by hand (the store's ``clock`` argument)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_issued_nonce_is_32_random_bytes_in_base64() -> None:
    store = InMemoryNonceStore()
    nonces = {store.issue() for _ in range(200)}
    assert len(nonces) == 200
    for nonce in nonces:
        assert len(nonce) == 44
        assert len(base64.b64decode(nonce, validate=True)) == 32


def test_in_memory_consume_once() -> None:
    store = InMemoryNonceStore()
    nonce = store.issue()
    store.consume(nonce)
    with pytest.raises(NonceUsedError) as info:
        store.consume(nonce)
    assert info.value.code == "NONCE_USED"
    with pytest.raises(NonceUnknownError) as unknown:
        store.consume(InMemoryNonceStore().issue())
    assert unknown.value.code == "NONCE_UNKNOWN"
    assert isinstance(unknown.value, TokenValidationError)


def test_in_memory_expiry_and_purge() -> None:
    clock = Clock()
    store = InMemoryNonceStore(ttl=300, clock=clock)
    old = store.issue()
    clock.now += 299
    fresh = store.issue()
    store.consume(fresh)  # used, but remembered until it expires
    clock.now += 2  # old: 301 s
    with pytest.raises(NonceExpiredError) as info:
        store.consume(old)
    assert info.value.code == "NONCE_EXPIRED"
    assert len(store) == 1  # the expired one was purged, the used one is still there
    with pytest.raises(NonceUsedError):
        store.consume(fresh)
    clock.now += 300
    store.issue()
    assert len(store) == 1  # everything older than the time to live is gone
    with pytest.raises(NonceUnknownError):
        store.consume(old)


def test_in_memory_default_ttl_is_five_minutes() -> None:
    clock = Clock()
    store = InMemoryNonceStore(clock=clock)
    nonce = store.issue()
    clock.now += 299.9
    store.consume(nonce)
    nonce = store.issue()
    clock.now += 300
    with pytest.raises(NonceExpiredError):
        store.consume(nonce)


def test_in_memory_memory_is_bounded() -> None:
    store = InMemoryNonceStore(max_entries=100)
    nonces = [store.issue() for _ in range(250)]
    assert len(store) == 100
    with pytest.raises(NonceUnknownError):
        store.consume(nonces[0])  # the oldest was dropped
    store.consume(nonces[-1])


@pytest.mark.parametrize("bad", ["", "short", "x" * 129, "a" * 43 + " ", "ä" * 44])
def test_malformed_nonce(bad: str) -> None:
    with pytest.raises(NonceError) as info:
        InMemoryNonceStore().consume(bad)
    assert info.value.code == "INVALID_NONCE"


def test_in_memory_threads_race_for_one_nonce() -> None:
    store = InMemoryNonceStore()
    for _ in range(50):
        nonce = store.issue()
        wins = _race(lambda n=nonce: store.consume(n), threads=8)
        assert wins == 1


def _race(consume: Callable[[], None], threads: int) -> int:
    barrier = threading.Barrier(threads)
    results: list[bool] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            consume()
            ok = True
        except NonceError:
            ok = False
        with lock:
            results.append(ok)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(results) == threads
    return sum(results)


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="positive"):
        InMemoryNonceStore(ttl=0)
    with pytest.raises(ValueError, match="max_entries"):
        InMemoryNonceStore(max_entries=0)


# Redis: a real redis-server on loopback, started and stopped by the fixture.


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(server).exists():
        pytest.skip("redis-server is not installed")
    folder = tmp_path_factory.mktemp("redis")
    port = _free_port()
    process = subprocess.Popen(
        [
            server,
            *("--bind", "127.0.0.1", "--port", str(port)),
            *("--save", "", "--appendonly", "no", "--dir", str(folder)),
            *("--protected-mode", "yes", "--daemonize", "no"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[RedisNonceStore]:
    store = RedisNonceStore(redis.Redis.from_url(redis_url))
    yield store
    store.client.close()


@pytest.mark.redis
def test_redis_issue_and_consume_once(redis_store: RedisNonceStore) -> None:
    nonce = redis_store.issue()
    assert len(nonce) == 44 and len(base64.b64decode(nonce, validate=True)) == 32
    key = redis_store.key_prefix + "issued:" + nonce
    assert 299_000 < redis_store.client.pttl(key) <= 300_000  # SET … PX 300000
    redis_store.consume(nonce)
    assert redis_store.client.exists(key) == 0
    marker = redis_store.key_prefix + "used:" + nonce
    assert 299_000 < redis_store.client.pttl(marker) <= 300_000  # the used marker, for the TTL
    with pytest.raises(NonceUsedError) as info:
        redis_store.consume(nonce)
    assert info.value.code == "NONCE_USED"
    with pytest.raises(NonceUnknownError) as unknown:
        redis_store.consume(InMemoryNonceStore().issue())
    assert unknown.value.code == "NONCE_UNKNOWN"
    with pytest.raises(NonceError):
        redis_store.consume("short")


@pytest.mark.redis
def test_redis_nonce_expires(redis_url: str) -> None:
    store = RedisNonceStore.from_url(redis_url, ttl=0.2)
    nonce = store.issue()
    kept = store.issue()
    time.sleep(0.4)
    with pytest.raises(NonceUnknownError):
        store.consume(nonce)
    long_lived = RedisNonceStore.from_url(redis_url, ttl=60)
    fresh = long_lived.issue()
    long_lived.consume(fresh)
    with pytest.raises(NonceUnknownError):
        store.consume(kept)


@pytest.mark.redis
def test_redis_stores_share_nonces_across_connections(redis_url: str) -> None:
    issuer: NonceStore = RedisNonceStore.from_url(redis_url)
    consumer: NonceStore = RedisNonceStore.from_url(redis_url)
    nonce = issuer.issue()
    consumer.consume(nonce)
    with pytest.raises(NonceUsedError):
        issuer.consume(nonce)


@pytest.mark.redis
def test_redis_key_prefix_separates_portals(redis_url: str) -> None:
    a = RedisNonceStore.from_url(redis_url, key_prefix="portal-a:")
    b = RedisNonceStore.from_url(redis_url, key_prefix="portal-b:")
    nonce = a.issue()
    with pytest.raises(NonceUnknownError):
        b.consume(nonce)
    a.consume(nonce)


@pytest.mark.redis
def test_redis_unreachable() -> None:
    store = RedisNonceStore.from_url(f"redis://127.0.0.1:{_free_port()}/0", socket_connect_timeout=1)
    with pytest.raises(NonceStoreUnavailableError) as info:
        store.issue()
    assert info.value.code == "NONCE_STORE_UNAVAILABLE"
    with pytest.raises(NonceStoreUnavailableError):
        store.consume(InMemoryNonceStore().issue())


@pytest.mark.redis
def test_two_validators_on_two_connections_race_for_one_nonce(
    redis_url: str, dev_ca: DevCA, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    # Two portal processes, each with its own validator and Redis connection, get the same
    # token at the same moment (a replay): exactly one logs the citizen in.
    stores = [RedisNonceStore.from_url(redis_url) for _ in range(2)]
    validators = [AuthTokenValidator(ORIGIN, [dev_ca.certificate], nonce_store=store) for store in stores]
    for _ in range(40):
        nonce = stores[0].issue()
        token = make_token(keys["p256"], auth_certs["p256"], "ES256", nonce=nonce)
        outcomes = _race_validators(validators, token, nonce)
        assert sorted(outcomes) == sorted([Citizen().id_code, "NONCE_USED"])


def _race_validators(validators: list[AuthTokenValidator], token: str, nonce: str) -> list[str]:
    """Each validator on its own thread, released at once: the id code or the error code of each."""
    barrier = threading.Barrier(len(validators))
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(validator: AuthTokenValidator) -> None:
        barrier.wait()
        try:
            outcome = validator.validate(token, nonce).id_code
        except TokenValidationError as exc:
            outcome = str(exc.code)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(v,)) for v in validators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.mark.redis
def test_redis_threads_race_for_one_nonce(redis_url: str) -> None:
    stores = [RedisNonceStore.from_url(redis_url) for _ in range(8)]
    for _ in range(30):
        nonce = stores[0].issue()
        it = iter(stores)
        lock = threading.Lock()

        def consume(nonce: str = nonce, it: Iterator[RedisNonceStore] = it, lock: threading.Lock = lock) -> None:
            with lock:
                store = next(it)
            store.consume(nonce)

        assert _race(consume, threads=8) == 1


@pytest.mark.redis
def test_redis_used_marker_is_not_a_nonce(redis_store: RedisNonceStore) -> None:
    # A used marker must never be taken for an issued nonce: "N:used" (49 visible ASCII
    # characters, a well-formed nonce) was never issued, so it cannot be consumed.
    nonce = redis_store.issue()
    redis_store.consume(nonce)
    for forged in (nonce + ":used", nonce + ":used" + "x" * 10):
        with pytest.raises(NonceUnknownError):
            redis_store.consume(forged)
    # Nor before the nonce itself was consumed: no key of the store is reachable by a suffix.
    fresh = redis_store.issue()
    with pytest.raises(NonceUnknownError):
        redis_store.consume(fresh + ":used")
    redis_store.consume(fresh)


@pytest.mark.redis
def test_redis_issued_and_used_keys_have_separate_prefixes(redis_store: RedisNonceStore) -> None:
    nonce = redis_store.issue()
    issued = [k.decode() for k in redis_store.client.scan_iter(match="*" + nonce + "*")]
    assert len(issued) == 1
    redis_store.consume(nonce)
    used = [k.decode() for k in redis_store.client.scan_iter(match="*" + nonce + "*")]
    assert len(used) == 1
    assert issued[0] != used[0]
    assert issued[0].startswith(redis_store.key_prefix) and used[0].startswith(redis_store.key_prefix)
    # Neither key is the other with something appended: a nonce string can reach only its own.
    assert not used[0].startswith(issued[0]) and not issued[0].startswith(used[0])


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        ("", "INVALID_NONCE"),
        ("x" * 129, "INVALID_NONCE"),
        ("a" * 43 + " ", "INVALID_NONCE"),
        ("*" * 44, "NONCE_UNKNOWN"),  # well-formed for a token, but not base64: never issued
        ("A" * 45, "NONCE_UNKNOWN"),
        ("A" * 42 + "==", "NONCE_UNKNOWN"),  # base64 of 31 bytes: not 32
        ("issued:" + "A" * 40, "NONCE_UNKNOWN"),
        ("used:" + generate_nonce(), "NONCE_UNKNOWN"),
        ("x" * 128, "NONCE_UNKNOWN"),
    ],
)
def test_redis_nonce_of_another_form_never_reaches_redis(bad: str, code: str) -> None:
    # A store on a port where nothing listens: a nonce refused by its form alone gets its
    # own code, not NONCE_STORE_UNAVAILABLE.
    store = RedisNonceStore.from_url(f"redis://127.0.0.1:{_free_port()}/0", socket_connect_timeout=1)
    with pytest.raises(NonceError) as info:
        store.consume(bad)
    assert info.value.code == code
    with pytest.raises(NonceError) as in_memory:
        InMemoryNonceStore().consume(bad)
    assert in_memory.value.code == code
