"""The Belgian eID driver (``cardbridge.pcsc.belpic``) with the emulated Belpic card.

The session tests drive the emulator in this process; the live tests (marker ``pcsc``) go
through pcscd and the vpcd reader to the token. The entry points (the CLI, the HTTP API,
the native host) are in ``test_national.py``, as for every national card.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography.hazmat.primitives import hashes

from cardbridge.emulator.belpic_card import AppletVersion, BelpicCard, load_or_create_belpic
from cardbridge.emulator.virtual_card import VirtualCard
from cardbridge.errors import PinIncorrectError, PinInvalidLengthError
from cardbridge.model import CertificateInfo, Purpose, SignatureAlgorithm, Token
from cardbridge.pcsc import PcscBackend
from cardbridge.pcsc.apdu import ApduTransport
from cardbridge.pcsc.belpic import PIN, BelpicSession, BelpicToken
from tests.cards import Direct, verify_signature
from tests.pcsc.conftest import READER_0, Pcscd, start_kind, stop_card

T = TypeVar("T")
ORIGIN = "https://login.example.be"
PIN_TEXT = "1234"
ES384 = SignatureAlgorithm("ECC", "SHA-384", "NONE")
RS256 = SignatureAlgorithm("RSA", "SHA-256", "PKCS1.5")
RS384 = SignatureAlgorithm("RSA", "SHA-384", "PKCS1.5")
_HASHES = {"SHA-256": hashes.SHA256(), "SHA-384": hashes.SHA384(), "SHA-512": hashes.SHA512()}


# -- the session, in process -----------------------------------------------------------------
@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Direct]:
    folder = tmp_path_factory.mktemp("belpic-session")

    def make(key: str) -> Direct:
        return Direct(BelpicCard(load_or_create_belpic(folder, key=key), PIN_TEXT))

    return make


def test_pin_block_is_iso_9564_format_2(direct: Callable[[str], Direct]) -> None:
    conn = direct("ec-p384")
    session = BelpicSession(ApduTransport(conn))
    for typed, block in (("1234", "241234FFFFFFFFFF"), ("12345", "2512345FFFFFFFFF")):
        conn.card.reset()
        try:
            session.verify(PIN, bytearray(typed.encode()))
        except PinIncorrectError:
            assert typed != PIN_TEXT
        assert conn.sent[-1] == bytes.fromhex("00200001 08" + block)
    for bad in (b"123", b"1234567890123", b"12a4"):
        before = len(conn.sent)
        with pytest.raises(PinInvalidLengthError):
            session.verify(PIN, bytearray(bad))
        assert len(conn.sent) == before  # refused before the card saw it


def test_certificate_is_read_up_to_its_length(direct: Callable[[str], Direct]) -> None:
    conn = direct("rsa-2048")
    session = BelpicSession(ApduTransport(conn))
    der = session.read_certificate(bytes.fromhex("DF005038"))
    assert der == conn.card.data.auth_cert
    reads = [a for a in conn.sent if a[1] == 0xB0]
    assert len(reads) == -(-len(der) // 256)  # never the 1100 zero bytes after it
    assert conn.sent[0] == bytes.fromhex("00A4080C06 3F00DF005038")
    assert session.read_certificate(bytes.fromhex("DF00503C")) is None  # the empty RRN file


# -- live: the token through pcscd ------------------------------------------------------------
live = pytest.mark.pcsc


@pytest.fixture(params=["ec-p384", "rsa-2048"])
def belpic(request: pytest.FixtureRequest, pcscd: Pcscd, card_folder: Path) -> Iterator[VirtualCard]:
    """The emulated Belgian eID card in reader 0: applet 1.8 (P-384) or 1.7 (RSA-2048)."""
    card = start_kind(card_folder, "belpic", key=request.param)
    try:
        yield card
    finally:
        stop_card(card)


def on(token: Token, fn: Callable[..., T], *args: object) -> T:
    return token.executor.submit(fn, *args).result(timeout=30)


def belpic_token(backend: PcscBackend) -> BelpicToken:
    token = backend.executor.submit(backend.token, READER_0).result(timeout=30)
    assert isinstance(token, BelpicToken)
    return token


def certificate(token: Token, purpose: Purpose) -> CertificateInfo:
    return next(c for c in on(token, token.certificates) if c.purpose is purpose)


def applet(card: VirtualCard) -> BelpicCard:
    assert isinstance(card.applet, BelpicCard)
    return card.applet


@live
def test_token_reads_and_signs_with_both_keys(belpic: VirtualCard, backend: PcscBackend) -> None:
    token = belpic_token(backend)
    certs = on(token, token.certificates)
    assert sorted((c.purpose, c.label, c.key_id) for c in certs) == [
        (Purpose.AUTHENTICATION, "Authentication", b"\x02"),
        (Purpose.SIGNING, "Signature", b"\x03"),
    ]
    auth = certificate(token, Purpose.AUTHENTICATION)
    citizen = applet(belpic).data.citizen
    assert (auth.given_name, auth.surname, auth.id_code, auth.country) == (
        "Jan Pieter",
        "Peeters",
        citizen.national_number,
        "BE",
    )
    assert token.info.extra["driver"] == "belpic" and token.info.serial
    status = on(token, token.pin_status, auth)
    assert (status.retries_left, status.name, status.min_length, status.max_length) == (3, "eID PIN", 4, 12)
    algorithms = list(on(token, token.supported_algorithms, auth))
    assert algorithms[0] == (ES384 if auth.key_type == "EC" else RS256)
    for purpose in (Purpose.AUTHENTICATION, Purpose.SIGNING):
        cert = certificate(token, purpose)
        for algorithm in on(token, token.supported_algorithms, cert):
            digest = hashlib.new(algorithm.hash_function.replace("-", "").lower(), b"document").digest()
            signature = on(token, token.sign_digest, cert, bytearray(PIN_TEXT.encode()), digest, algorithm)
            verify_signature(cert.der, digest, signature)
    assert not applet(belpic).pin_verified  # every signature ended with LOG OFF


@live
def test_model_names_the_applet_version(belpic: VirtualCard, backend: PcscBackend) -> None:
    """/v1/status and the dialogs name the card by its model: both applet versions say which
    (the 1.7 card's ATR is the same as older applets', so the version comes from GET CARD DATA)."""
    version = "1.8" if applet(belpic).version is AppletVersion.V1_8 else "1.7"
    tokens = backend.executor.submit(backend.tokens).result(timeout=30)  # as /v1/status lists them
    assert [t.info.model for t in tokens] == [f"Belgian eID card (applet {version})"]


@live
def test_warm_login_is_mse_verify_sign_and_log_off(belpic: VirtualCard, backend: PcscBackend) -> None:
    token = belpic_token(backend)
    auth = certificate(token, Purpose.AUTHENTICATION)
    algorithm = on(token, token.supported_algorithms, auth)[0]
    digest = hashlib.new(algorithm.hash_function.replace("-", "").lower(), b"x").digest()
    on(token, token.sign_digest, auth, bytearray(PIN_TEXT.encode()), digest, algorithm)
    belpic.reset_count()
    token = belpic_token(backend)  # the same card presence: the same token, nothing read again
    on(token, token.pin_status, auth)
    signature = on(
        token, token.sign_digest, certificate(token, Purpose.AUTHENTICATION), bytearray(b"1234"), digest, algorithm
    )
    verify_signature(auth.der, digest, signature)
    # The tries left from the last login's VERIFY (no APDU); MSE SET where the last login
    # left the card (DF(BELPIC)), VERIFY, PSO CDS, GET RESPONSE (T=0), and LOG OFF.
    assert [r.ins for r in belpic.records] == [0x22, 0x20, 0x2A, 0xC0, 0xE6]
