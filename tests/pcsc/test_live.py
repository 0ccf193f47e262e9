"""The PC/SC layer and the PIV driver against real pcscd, vpcd and the virtual PIV card.

Insertion, removal, wrong and blocked PINs come from the virtual card as a real card would
give them; pcscd is really stopped and started again.
"""

from __future__ import annotations

import hashlib
import queue
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from cardbridge.emulator.piv_card import ATR
from cardbridge.emulator.virtual_card import VirtualPivCard
from cardbridge.errors import (
    CardBusyError,
    CardRemovedError,
    NoCardError,
    PinBlockedError,
    PinIncorrectError,
    ServiceNotRunningError,
    UnsupportedCardError,
)
from cardbridge.iso7816 import INS_GENERAL_AUTHENTICATE
from cardbridge.model import CertificateInfo, Purpose, SignatureAlgorithm, Token
from cardbridge.pcsc import CardMonitor, EventKind, PcscBackend, PivToken, list_readers
from tests.pcsc.conftest import READER_0, READER_1, Pcscd, start_card, stop_card, wait_for_card
from tests.pcsc.other_program import OtherProgram

pytestmark = pytest.mark.pcsc
T = TypeVar("T")
PIN = bytearray(b"123456")
OPENSC = Path("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so")
ES256 = SignatureAlgorithm("ECC", "SHA-256", "NONE")


def on(token: Token, fn: Callable[..., T], *args: object) -> T:
    """Run a token method on the token's own worker thread, as the service does."""
    return token.executor.submit(fn, *args).result(timeout=30)


def piv_token(backend: PcscBackend, reader: str = READER_0) -> PivToken:
    return backend.executor.submit(backend.token, reader).result(timeout=30)


def auth_cert(token: Token) -> CertificateInfo:
    certs = on(token, token.certificates)
    return next(c for c in certs if c.purpose is Purpose.AUTHENTICATION)


def verify(cert: CertificateInfo, digest: bytes, signature: bytes, algorithm: SignatureAlgorithm) -> None:
    public = x509.load_der_x509_certificate(cert.der).public_key()
    chosen = {"SHA-256": hashes.SHA256(), "SHA-384": hashes.SHA384(), "SHA-512": hashes.SHA512()}[
        algorithm.hash_function
    ]
    if isinstance(public, ec.EllipticCurvePublicKey):
        half = len(signature) // 2
        der = utils.encode_dss_signature(
            int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
        )
        public.verify(der, digest, ec.ECDSA(utils.Prehashed(chosen)))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(chosen))


def test_list_shows_both_readers_and_the_card(virtual_card: VirtualPivCard) -> None:
    readers = {r.name: r for r in list_readers()}
    assert {READER_0, READER_1} <= set(readers)
    card = readers[READER_0]
    assert card.card_present and card.card is not None
    assert card.card.atr == ATR
    assert card.card.name == "cardbridge virtual PIV card"
    assert card.card.driver == "piv"
    as_json = card.to_dict()
    assert as_json["card"]["atr"].startswith("3B 8E 80 01")
    assert not readers[READER_1].card_present


def test_events_reach_subscribers_on_removal_and_insertion(virtual_card: VirtualPivCard) -> None:
    events: queue.Queue[tuple[float, EventKind, str | None]] = queue.Queue()
    with CardMonitor() as monitor:
        assert monitor.wait_ready(5)
        assert any(r.card_present for r in monitor.readers() if r.name == READER_0)
        monitor.subscribe(lambda e: events.put((e.at, e.kind, e.reader)))
        latencies = {}
        for action, expected in (
            (virtual_card.remove, EventKind.CARD_REMOVED),
            (virtual_card.insert, EventKind.CARD_INSERTED),
        ):
            start = time.monotonic()
            action(wait=None)
            at, kind, reader = events.get(timeout=3)
            assert (kind, reader) == (expected, READER_0)
            latencies[str(kind)] = at - start
        wait_for_card(READER_0, True)
    print(f"event latency: {latencies}")
    if max(latencies.values()) >= 0.5:
        warnings.warn(f"card events took {latencies} (goal: under 0.5 s)", stacklevel=1)


def test_monitor_stops_promptly_without_events(pcscd: Pcscd) -> None:
    monitor = CardMonitor().start()
    assert monitor.wait_ready(5)
    monitor.stop(timeout=5)
    assert monitor._thread is None


@pytest.mark.parametrize("key", ["ec-p256", "ec-p384", "rsa-2048"])
def test_sign_with_builtin_driver_verifies(pcscd: Pcscd, card_folder: Path, key: str) -> None:
    card = start_card(card_folder, key)
    backend = PcscBackend()
    try:
        tokens = backend.executor.submit(backend.tokens).result(timeout=30)
        assert [t.info.reader for t in tokens] == [READER_0]
        token = tokens[0]
        assert token.info.backend == "pcsc" and token.info.label == "Kari Nordmann" and token.info.serial
        cert = auth_cert(token)
        assert cert.key_id == b"\x9a"
        for algorithm in token.supported_algorithms(cert):
            digest = hashlib.new(algorithm.hash_function.replace("-", "").lower(), b"M").digest()
            signature = on(token, token.sign_digest, cert, bytearray(PIN), digest, algorithm)
            verify(cert, digest, signature, algorithm)
    finally:
        backend.close()
        stop_card(card)


def test_warm_authenticate_is_select_verify_sign_and_logout(virtual_card: VirtualPivCard, backend: PcscBackend) -> None:
    token = piv_token(backend)
    cert = auth_cert(token)
    digest = hashlib.sha256(b"x").digest()
    on(token, token.sign_digest, cert, bytearray(PIN), digest, ES256)
    virtual_card.reset_count()
    token = piv_token(backend)
    signature = on(token, token.sign_digest, auth_cert(token), bytearray(PIN), digest, ES256)
    verify(cert, digest, signature, ES256)
    assert [r.ins for r in virtual_card.records] == [0xA4, 0x20, 0x87, 0x20]
    assert virtual_card.records[-1].command[2] == 0xFF  # VERIFY P1=FF: the PIV logout


def test_a_login_leaves_other_programs_connections_to_the_card_intact(
    virtual_card: VirtualPivCard, backend: PcscBackend
) -> None:
    """The logout is the PIV command, not a card reset: another program keeps its session."""
    from cardbridge.pcsc.scard import PcscContext

    other = PcscContext()
    try:
        conn = other.connect(virtual_card.reader_name)
        select_piv = bytes.fromhex("00A4040009A00000030800001000")
        assert conn.transmit(select_piv)[1] == 0x9000
        token = piv_token(backend)
        on(token, token.sign_digest, auth_cert(token), bytearray(PIN), hashlib.sha256(b"x").digest(), ES256)
        assert conn.transmit(select_piv)[1] == 0x9000  # no SCARD_W_RESET_CARD
        conn.close()
    finally:
        other.release()


@pytest.mark.skipif(not OPENSC.exists(), reason="opensc-pkcs11 is not installed")
def test_opensc_pkcs11_signs_with_the_virtual_card(virtual_card: VirtualPivCard, backend: PcscBackend) -> None:
    digest = hashlib.sha256(b"opensc").digest()
    result = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("opensc_sign.py")),
            str(OPENSC),
            READER_0,
            "123456",
            digest.hex(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    cert = auth_cert(piv_token(backend))
    verify(cert, digest, bytes.fromhex(result.stdout.strip()), ES256)


def test_wrong_pin_counts_down_then_blocks(virtual_card: VirtualPivCard, backend: PcscBackend) -> None:
    token = piv_token(backend)
    cert = auth_cert(token)
    assert on(token, token.pin_status, cert).retries_left == 3
    digest = hashlib.sha256(b"x").digest()
    for expected in (2, 1):
        with pytest.raises(PinIncorrectError) as info:
            on(token, token.sign_digest, cert, bytearray(b"000000"), digest, ES256)
        assert info.value.retries_left == expected
        assert info.value.to_dict()["retriesLeft"] == expected
    with pytest.raises(PinBlockedError):
        on(token, token.sign_digest, cert, bytearray(b"000000"), digest, ES256)
    status = on(token, token.pin_status, cert)
    assert status.blocked and status.retries_left == 0
    # The right PIN no longer helps, and the card was not asked to check it.
    with pytest.raises(PinBlockedError):
        on(token, token.sign_digest, cert, bytearray(PIN), digest, ES256)
    assert virtual_card.applet.pin_tries_left == 0


def test_card_removed_mid_operation_then_works_after_reinsertion(
    virtual_card: VirtualPivCard, backend: PcscBackend
) -> None:
    token = piv_token(backend)
    cert = auth_cert(token)
    digest = hashlib.sha256(b"x").digest()
    virtual_card.pull_when(INS_GENERAL_AUTHENTICATE)
    with pytest.raises(CardRemovedError):
        on(token, token.sign_digest, cert, bytearray(PIN), digest, ES256)
    wait_for_card(READER_0, False)
    with pytest.raises(CardRemovedError):  # the old token stays bound to the pulled card
        on(token, token.pin_status, cert)
    with pytest.raises(NoCardError):
        piv_token(backend)
    assert virtual_card.insert(wait=10)
    wait_for_card(READER_0, True)
    token = piv_token(backend)
    signature = on(token, token.sign_digest, auth_cert(token), bytearray(PIN), digest, ES256)
    verify(cert, digest, signature, ES256)


def test_card_held_exclusively_is_busy(virtual_card: VirtualPivCard, backend: PcscBackend) -> None:
    token = piv_token(backend)
    cert = auth_cert(token)
    with OtherProgram(READER_0, exclusive=True):
        before = virtual_card.apdu_count
        with pytest.raises(CardBusyError):
            on(token, token.pin_status, cert)
        with pytest.raises(CardBusyError):
            on(token, token.sign_digest, cert, bytearray(PIN), hashlib.sha256(b"x").digest(), ES256)
        assert virtual_card.apdu_count == before  # nothing reached the card
    assert on(token, token.pin_status, cert).retries_left == 3


def test_unknown_card_is_unsupported_with_its_atr(pcscd: Pcscd, card_folder: Path, backend: PcscBackend) -> None:
    from tests.pcsc.conftest import card_data

    odd_atr = bytes.fromhex("3B 88 80 01 00 00 00 00 00 00 00 00 09")
    card = VirtualPivCard(card_data(card_folder, "ec-p256"), reader=1, atr=odd_atr).start()
    # A card that is not PIV: the virtual applet with PIV switched off.
    card.applet._select = lambda apdu: b"\x6a\x82"  # type: ignore[method-assign]
    try:
        assert card.insert(wait=10)
        wait_for_card(READER_1, True)
        with pytest.raises(UnsupportedCardError) as info:
            piv_token(backend, READER_1)
        assert info.value.details["atr"] == odd_atr.hex(" ").upper()
        assert "3B 88 80 01" in info.value.message
        listing = backend.executor.submit(backend.listings).result(timeout=30)
        entry = next(x for x in listing if x.info.reader == READER_1)
        assert entry.error is not None and entry.error["code"] == "UNSUPPORTED_CARD"
        tokens = backend.executor.submit(backend.tokens).result(timeout=30)
        assert READER_1 not in [t.info.reader for t in tokens]
        only = PcscBackend(reader=READER_1)  # --reader NAME: the reason, not an empty list
        try:
            with pytest.raises(UnsupportedCardError):
                only.executor.submit(only.tokens).result(timeout=30)
        finally:
            only.close()
    finally:
        stop_card(card)


def test_pcscd_stopped_then_back(pcscd: Pcscd, card_folder: Path) -> None:
    if not pcscd.owned:
        pytest.skip("pcscd was started by someone else; the tests do not stop it")
    card = start_card(card_folder, "ec-p256")
    backend = PcscBackend()
    events: queue.Queue[EventKind] = queue.Queue()
    monitor = CardMonitor()
    monitor.subscribe(lambda e: events.put(e.kind))
    monitor.start()
    try:
        token = piv_token(backend)
        cert = auth_cert(token)
        pcscd.stop()
        with pytest.raises(ServiceNotRunningError):
            on(token, token.pin_status, cert)
        with pytest.raises(ServiceNotRunningError):
            backend.executor.submit(backend.tokens).result(timeout=30)
        with pytest.raises(ServiceNotRunningError):
            list_readers()
        pcscd.start()
        wait_for_card(READER_0, True)
        token = piv_token(backend)
        digest = hashlib.sha256(b"back").digest()
        verify(cert, digest, on(token, token.sign_digest, auth_cert(token), bytearray(PIN), digest, ES256), ES256)
        seen: list[EventKind] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                seen.append(events.get(timeout=0.5))
            except queue.Empty:
                continue
            if (
                EventKind.SERVICE_STARTED in seen
                and EventKind.CARD_INSERTED in seen[seen.index(EventKind.SERVICE_STARTED) :]
            ):
                break
        assert EventKind.SERVICE_STARTED in seen
        assert EventKind.SERVICE_STOPPED in seen
    finally:
        monitor.stop()
        backend.close()
        stop_card(card)
