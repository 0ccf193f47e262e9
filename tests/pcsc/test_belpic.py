"""The Belgian eID driver (``cardbridge.pcsc.belpic``) with the emulated Belpic card.

The session tests drive the emulator in this process; the live tests (marker ``pcsc``) go
through pcscd and the vpcd reader, as every entry point does: the token itself, ``cardbridge
authenticate``, the HTTP API of a real ``cardbridge serve`` and the native host; the
tokens they make validate with ``cardbridge.portal`` against the development CA, with the
identity a real Belgian certificate carries.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from cardbridge.emulator.belpic_card import BelpicCard, load_or_create_belpic
from cardbridge.emulator.devpki import DevCA
from cardbridge.emulator.virtual_card import VirtualCard
from cardbridge.errors import CardRemovedError, NoCardError, PinBlockedError, PinIncorrectError, PinInvalidLengthError
from cardbridge.iso7816 import INS_PSO
from cardbridge.model import CertificateInfo, Purpose, SignatureAlgorithm, Token
from cardbridge.pcsc import PcscBackend
from cardbridge.pcsc.apdu import ApduTransport, split_response
from cardbridge.pcsc.belpic import PIN, BelpicSession, BelpicToken
from cardbridge.portal import AuthTokenValidator
from tests.conftest import ScriptedPinentry
from tests.pcsc.conftest import READER_0, Pcscd, start_kind, stop_card, wait_for_card

T = TypeVar("T")
ORIGIN = "https://login.example.be"
PIN_TEXT = "1234"
ES384 = SignatureAlgorithm("ECC", "SHA-384", "NONE")
RS256 = SignatureAlgorithm("RSA", "SHA-256", "PKCS1.5")
RS384 = SignatureAlgorithm("RSA", "SHA-384", "PKCS1.5")
_HASHES = {"SHA-256": hashes.SHA256(), "SHA-384": hashes.SHA384(), "SHA-512": hashes.SHA512()}


def nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


# -- the session, in process -----------------------------------------------------------------
class _Direct:
    """A connection straight to the emulated card (no pcscd), keeping what it sent."""

    def __init__(self, card: BelpicCard) -> None:
        self.card = card
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        self.sent.append(apdu)
        return split_response(self.card.process(apdu))


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], _Direct]:
    folder = tmp_path_factory.mktemp("belpic-session")

    def make(key: str) -> _Direct:
        return _Direct(BelpicCard(load_or_create_belpic(folder, key=key), PIN_TEXT))

    return make


def test_pin_block_is_iso_9564_format_2(direct: Callable[[str], _Direct]) -> None:
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


def test_certificate_is_read_up_to_its_length(direct: Callable[[str], _Direct]) -> None:
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


@pytest.fixture
def backend() -> Iterator[PcscBackend]:
    b = PcscBackend()
    try:
        yield b
    finally:
        b.close()


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


def verify(cert: CertificateInfo, digest: bytes, signature: bytes, algorithm: SignatureAlgorithm) -> None:
    public = x509.load_der_x509_certificate(cert.der).public_key()
    chosen = _HASHES[algorithm.hash_function]
    if isinstance(public, ec.EllipticCurvePublicKey):
        half = len(signature) // 2
        der = utils.encode_dss_signature(
            int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
        )
        public.verify(der, digest, ec.ECDSA(utils.Prehashed(chosen)))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(chosen))


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
            verify(cert, digest, signature, algorithm)
    assert not applet(belpic).pin_verified  # every signature ended with LOG OFF


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
    verify(auth, digest, signature, algorithm)
    # The tries left from the last login's VERIFY (no APDU); MSE SET where the last login
    # left the card (DF(BELPIC)), VERIFY, PSO CDS, GET RESPONSE (T=0), and LOG OFF.
    assert [r.ins for r in belpic.records] == [0x22, 0x20, 0x2A, 0xC0, 0xE6]


@live
def test_wrong_pin_counts_down_then_blocks(belpic: VirtualCard, backend: PcscBackend) -> None:
    token = belpic_token(backend)
    auth = certificate(token, Purpose.AUTHENTICATION)
    algorithm = on(token, token.supported_algorithms, auth)[0]
    digest = hashlib.new(algorithm.hash_function.replace("-", "").lower(), b"x").digest()
    for expected in (2, 1):
        with pytest.raises(PinIncorrectError) as info:
            on(token, token.sign_digest, auth, bytearray(b"9999"), digest, algorithm)
        assert info.value.retries_left == expected
        assert on(token, token.pin_status, auth).retries_left == expected
    with pytest.raises(PinBlockedError):
        on(token, token.sign_digest, auth, bytearray(b"9999"), digest, algorithm)
    status = on(token, token.pin_status, auth)
    assert status.blocked and status.retries_left == 0
    with pytest.raises(PinBlockedError):
        on(token, token.sign_digest, auth, bytearray(PIN_TEXT.encode()), digest, algorithm)
    assert applet(belpic).pin_tries_left == 0


@live
def test_card_removed_mid_signature_then_the_next_login_works(belpic: VirtualCard, backend: PcscBackend) -> None:
    token = belpic_token(backend)
    auth = certificate(token, Purpose.AUTHENTICATION)
    algorithm = on(token, token.supported_algorithms, auth)[0]
    digest = hashlib.new(algorithm.hash_function.replace("-", "").lower(), b"x").digest()
    belpic.pull_when(INS_PSO)  # after the PIN was verified, before the card signs
    with pytest.raises(CardRemovedError):
        on(token, token.sign_digest, auth, bytearray(PIN_TEXT.encode()), digest, algorithm)
    wait_for_card(READER_0, False)
    with pytest.raises(NoCardError):
        belpic_token(backend)
    assert belpic.insert(wait=10)
    wait_for_card(READER_0, True)
    token = belpic_token(backend)
    signature = on(
        token, token.sign_digest, certificate(token, Purpose.AUTHENTICATION), bytearray(b"1234"), digest, algorithm
    )
    verify(auth, digest, signature, algorithm)


# -- live: the entry points ---------------------------------------------------------------------
def _validator(card_folder: Path) -> AuthTokenValidator:
    return AuthTokenValidator(ORIGIN, [DevCA.load_or_create(card_folder / "ca").certificate])


def _check_identity(card: VirtualCard, card_folder: Path, token: dict[str, object], challenge: str) -> None:
    identity = _validator(card_folder).validate(token, challenge)
    citizen = applet(card).data.citizen
    assert identity.id_code == citizen.national_number and len(identity.id_code) == 11
    assert (identity.given_name, identity.surname, identity.country) == ("Jan Pieter", "Peeters", "BE")
    assert identity.common_name == "Jan Peeters (Authentication)"
    assert identity.algorithm == token["algorithm"]


def _env(pinentry: ScriptedPinentry, tmp_path: Path) -> dict[str, str]:
    """The built-in drivers and the PKCS#11 modules p11-kit registers (OpenSC sees the same
    card: it must count once), no SoftHSM2 token of the test session, the scripted dialog,
    a config that allows the portal's origin, folders of the test's own."""
    env = {k: v for k, v in os.environ.items() if k not in ("CARDBRIDGE_PKCS11_MODULE", "SOFTHSM2_CONF")}
    folder = tmp_path / "cfg"
    folder.mkdir(mode=0o700, exist_ok=True)
    config = folder / "config.toml"
    config.write_text(f'allowed_origins = ["{ORIGIN}"]\n', encoding="utf-8")
    config.chmod(0o600)
    return {
        **env,
        **pinentry.env(),
        "CARDBRIDGE_CONFIG": str(config),
        "CARDBRIDGE_DATA_DIR": str(tmp_path / "data"),
        "CARDBRIDGE_LOG_DIR": str(tmp_path / "log"),
    }


@live
def test_cli_authenticate_dialog_and_portal_identity(
    belpic: VirtualCard, card_folder: Path, pinentry: ScriptedPinentry, tmp_path: Path
) -> None:
    from tests.pcsc.test_cli_pcsc import run

    pinentry.respond(PIN_TEXT)
    challenge = nonce()
    result = run("authenticate", "--origin", ORIGIN, "--nonce", challenge, env=_env(pinentry, tmp_path))
    assert result.returncode == 0, result.stderr
    token = json.loads(result.stdout)
    assert token["algorithm"] == ("ES384" if applet(belpic).version.value == "1.8" else "RS256")
    _check_identity(belpic, card_folder, token, challenge)
    (description,) = pinentry.texts("SETDESC")
    assert ORIGIN in description and "eID PIN" in description and "Jan Pieter Peeters" in description
    # A wrong PIN counts down; a blocked PIN is never asked for.
    seen = []
    for _ in range(3):
        result = run(
            "authenticate", "--origin", ORIGIN, "--nonce", nonce(), "--reader", READER_0, "--pin-stdin", "--json",
            stdin="9999\n", env=_env(pinentry, tmp_path),
        )  # fmt: skip
        seen.append(json.loads(result.stdout)["error"])
    assert [e["code"] for e in seen] == ["PIN_INCORRECT", "PIN_INCORRECT", "PIN_BLOCKED"]
    assert [e.get("retriesLeft") for e in seen[:2]] == [2, 1]
    pinentry.respond(PIN_TEXT)
    result = run("authenticate", "--origin", ORIGIN, "--nonce", nonce(), "--json", env=_env(pinentry, tmp_path))
    assert json.loads(result.stdout)["error"]["code"] == "PIN_BLOCKED"
    assert pinentry.dialogs() == [], "a blocked PIN is never asked for"


@live
def test_http_api_logs_in(belpic: VirtualCard, card_folder: Path, pinentry: ScriptedPinentry, tmp_path: Path) -> None:
    from tests.pcsc.test_events_http import wait_until_the_bridge_sees
    from tests.server.conftest import start_serve

    # wait_until_the_bridge_sees asks /v1/status from its own (Norwegian) origin.
    served = start_serve(
        "--allow-origin", ORIGIN, "--allow-origin", "https://login.example.no", env=_env(pinentry, tmp_path)
    )
    try:
        wait_until_the_bridge_sees(served.port, belpic.reader_name)
        pinentry.respond(PIN_TEXT)
        challenge = nonce()
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
        try:
            conn.request(
                "POST",
                "/v1/authenticate",
                body=json.dumps({"challengeNonce": challenge, "lang": "en"}),
                headers={"Origin": ORIGIN, "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            token = json.loads(response.read())
        finally:
            conn.close()
        assert response.status == 200, token
        _check_identity(belpic, card_folder, token, challenge)
    finally:
        served.stop()


@live
def test_native_host_logs_in(
    belpic: VirtualCard, card_folder: Path, pinentry: ScriptedPinentry, tmp_path: Path
) -> None:
    from cardbridge.nativemsg import EXTENSION_CHROME_ID
    from tests.nativemsg.conftest import HostProcess

    pinentry.respond(PIN_TEXT)
    challenge = nonce()
    host = HostProcess(f"chrome-extension://{EXTENSION_CHROME_ID}/", env=_env(pinentry, tmp_path))
    try:
        host.read()  # the host speaks first
        host.send(
            {"command": "authenticate", "arguments": {"challengeNonce": challenge, "origin": ORIGIN, "lang": "en"}}
        )
        token = host.read()
        host.finish()
    finally:
        host.kill()
    assert "error" not in token, token
    _check_identity(belpic, card_folder, token, challenge)
