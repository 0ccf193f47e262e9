"""The Finnish ID card (FINEID v4) emulated in pcscd's vpcd reader: OpenSC as the outside
judge, and cardbridge's FINEID driver through the token. The entry points (the CLI, the
HTTP API, the native host) are in ``test_national.py``, as for every national card."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from smartcard import scard

from cardbridge.emulator.fineid import FineidApplet
from cardbridge.emulator.virtual_card import VirtualCard
from cardbridge.errors import CardbridgeError, Code, PinIncorrectError
from cardbridge.model import CertificateInfo, Purpose, SignatureAlgorithm, Token
from cardbridge.origins import OriginStore
from cardbridge.pcsc import PcscBackend
from tests.pcsc.conftest import READER_0, Pcscd, start_card, start_kind, stop_card, wait_for_card

pytestmark = pytest.mark.pcsc
T = TypeVar("T")
ORIGIN = "https://login.example.fi"
OPENSC = Path("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so")
ES384 = SignatureAlgorithm("ECC", "SHA-384", "NONE")
PIN1, PIN2, PUK = "1234", "123456", "12345678"
INS_VERIFY, INS_PSO = 0x20, 0x2A


@pytest.fixture(autouse=True)
def _login_page_allowed(origin_store: OriginStore) -> None:
    """The person allowed ORIGIN before (the question about a new site has tests of its own)."""
    origin_store.allow(ORIGIN)


@pytest.fixture
def fineid(pcscd: Pcscd, card_folder: Path) -> Iterator[VirtualCard]:
    """A fresh FINEID card (5 tries on each PIN) in reader 0; its keys are made once."""
    card = start_kind(card_folder / "fineid", "fineid")
    try:
        yield card
    finally:
        stop_card(card)


def applet(card: VirtualCard) -> FineidApplet:
    assert isinstance(card.applet, FineidApplet)
    return card.applet


def clean_env(**extra: str) -> dict[str, str]:
    """Only the card in the reader: not the session's SoftHSM2 tokens."""
    env = {k: v for k, v in os.environ.items() if k not in ("CARDBRIDGE_PKCS11_MODULE", "SOFTHSM2_CONF")}
    return {**env, **extra}


def on(token: Token, fn: Callable[..., T], *args: object) -> T:
    return token.executor.submit(fn, *args).result(timeout=30)


def cert_for(token: Token, purpose: Purpose) -> CertificateInfo:
    return next(c for c in on(token, token.certificates) if c.purpose is purpose)


# -- the outside judge: OpenSC ----------------------------------------------------------------
def opensc(tool: str, *args: str, conf: Path | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if conf is not None:
        env["OPENSC_CONF"] = str(conf)
    return subprocess.run([tool, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def read_with_default_driver(folder: Path, card: FineidApplet) -> tuple[Path, str]:
    """What Debian's OpenSC makes of a Finnish card (v4 or v3): the stock config refuses it;
    with ``enable_default_driver`` its generic PKCS#15 reader lists the certificates, PINs and
    keys and reads the authentication certificate, which must be the emulator's EF 4331. The
    config written (for later steps) and the listing."""
    stock = opensc("pkcs15-tool", "--reader", "0", "--list-certificates", conf=None)
    assert stock.returncode != 0 and "Card is invalid or cannot be handled" in stock.stdout + stock.stderr
    conf = folder / "opensc.conf"
    conf.write_text(
        "app default {\n  enable_default_driver = true;\n  framework pkcs15 { use_file_caching = false; }\n}\n"
    )
    pem = folder / "auth.pem"
    listed = opensc(
        "pkcs15-tool",
        *("--reader", "0", "--list-certificates", "--list-pins", "--list-keys"),
        *("--read-certificate", "45", "--output", str(pem)),
        conf=conf,
    )
    assert listed.returncode == 0, listed.stderr
    for label in ("todentamis- ja salausvarmenne", "allekirjoitusvarmenne"):
        assert f"X.509 Certificate [{label}]" in listed.stdout
    auth = card.mf.child(b"\x43\x31")
    assert auth is not None and not isinstance(auth, type(card.mf))
    assert x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(serialization.Encoding.DER) == auth.data
    return conf, listed.stdout


def opensc_pkcs11(conf: Path, *steps: str) -> list[str]:
    """Steps of tests/pcsc/opensc_fineid.py in one process: one card bind for all of them."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("opensc_fineid.py")), str(OPENSC), READER_0, *steps],
        capture_output=True,
        text=True,
        env={**os.environ, "OPENSC_CONF": str(conf)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.skipif(not OPENSC.exists(), reason="OpenSC is not installed")
def test_opensc_reads_the_pkcs15_application_logs_in_and_counts_down(fineid: VirtualCard, tmp_path: Path) -> None:
    """Debian's OpenSC 0.23 has no driver for this ATR (no card-fineid; its FINEID support is
    SetCOS FINEID v1/v2 in card-setcos.c), so with its packaged config it does not take the
    card at all. With its own ``enable_default_driver`` its ISO 7816 default driver and its
    generic ISO 7816-15 (PKCS#15) reader take it: they must read every PKCS#15 file of the
    emulator right, log in with each PIN, count down, and unblock with the PUK. Signing is
    not possible there (see the last step)."""
    card = applet(fineid)
    conf, out = read_with_default_driver(tmp_path, card)
    assert "Path           : 3f0050164332" in out
    assert "PIN [perustunnusluku]" in out and "Reference      : 17 (0x11)" in out
    assert "PIN [allekirjoitustunnusluku]" in out and "Reference      : 130 (0x82)" in out
    assert out.count("Private EC Key") == 2 and "FieldLength    : 384" in out

    # PKCS#11: a slot per PIN; each PIN logs in; a wrong PIN1 counts down on the card.
    assert opensc_pkcs11(
        conf, f"login:allekirjoitustunnusluku:{PIN2}", f"login:perustunnusluku:{PIN1}", "login:perustunnusluku:9999"
    ) == ["slots allekirjoitustunnusluku,perustunnusluku", "ok", "ok", "PinIncorrect"]
    assert (card.pin1.tries_left, card.pin2.tries_left) == (4, 5)
    unblock = opensc(
        "pkcs15-tool", "--reader", "0", "--unblock-pin", "--auth-id", "01", "--puk", PUK, "--new-pin", "4321", conf=conf
    )
    assert unblock.returncode == 0, unblock.stderr
    assert (card.pin1.tries_left, card.pin1.value) == (5, b"4321")
    assert [r.command[2:4] for r in fineid.records if r.ins == 0x2C] == [b"\x00\x11"]  # PUK + new PIN

    # Signing: the default driver registers no algorithm (card-default.c), so OpenSC's PKCS#11
    # module offers no ECDSA mechanism, and pkcs15-sec.c (format_senv: sc_card_find_ec_alg()
    # is NULL) refuses before any MSE SET reaches the card.
    fineid.reset_count()
    mechanisms, signed = opensc_pkcs11(conf, "mechanisms:perustunnusluku", "sign:perustunnusluku:4321:45")[1:]
    assert "ECDSA" not in mechanisms.split(",") and signed == "MechanismInvalid"
    assert [r.command[3] for r in fineid.records if r.ins == INS_VERIFY] == [0x11]  # it logged in
    assert not [r for r in fineid.records if r.ins in (0x22, INS_PSO)]


# -- cardbridge's driver ------------------------------------------------------------------------
def fineid_token(backend: PcscBackend) -> Token:
    token: Token = backend.executor.submit(backend.token, READER_0).result(timeout=30)
    return token


def test_driver_reads_both_certificates_and_signs_with_each_pin(fineid: VirtualCard, backend: PcscBackend) -> None:
    token = fineid_token(backend)
    assert token.info.extra["driver"] == "fineid" and token.info.label == "MAIJA MEIKÄLÄINEN"
    auth, sign = cert_for(token, Purpose.AUTHENTICATION), cert_for(token, Purpose.SIGNING)
    assert auth.curve == "secp384r1" and auth.key_id == b"\x45" and sign.key_id == b"\x46"
    status = on(token, token.pin_status, auth)
    assert (status.retries_left, status.name, status.min_length, status.max_length) == (
        5,
        "PIN1 (perustunnusluku)",
        4,
        12,
    )
    assert on(token, token.pin_status, sign).name == "PIN2 (allekirjoitustunnusluku)"
    for algorithm in token.supported_algorithms(auth):
        digest = hashlib.new(algorithm.hash_function.replace("-", "").lower(), b"M").digest()
        verify_signature(
            auth, digest, on(token, token.sign_digest, auth, bytearray(PIN1.encode()), digest, algorithm), ES384
        )
    digest = hashlib.sha384(b"document").digest()
    fineid.reset_count()
    verify_signature(sign, digest, on(token, token.sign_digest, sign, bytearray(PIN2.encode()), digest, ES384), ES384)
    # PIN2 (reference 82) for the signing key 02; then the application is selected again (logout),
    # and PIN2's first right VERIFY on this card presence is followed by its state read once
    # (SELECT, GET DATA, GET RESPONSE): the card's own retry limit.
    verify = next(r for r in fineid.records if r.ins == INS_VERIFY)
    assert verify.command[3] == 0x82
    assert [r.ins for r in fineid.records][-5:] == [0x2A, 0xA4, 0xA4, 0xCB, 0xC0]
    assert fineid.records[-2].command[-2] == 0x82  # GET DATA of reference 82 (then Le)
    with pytest.raises(PinIncorrectError):  # PIN1 does not open the signing key
        on(token, token.sign_digest, sign, bytearray(b"1234000"), digest, ES384)


def test_warm_login_apdus(fineid: VirtualCard, backend: PcscBackend) -> None:
    token = fineid_token(backend)
    auth = cert_for(token, Purpose.AUTHENTICATION)
    fineid.reset_count()
    on(token, token.pin_status, auth)
    on(token, token.sign_digest, auth, bytearray(PIN1.encode()), hashlib.sha384(b"x").digest(), ES384)
    # GET DATA where the card stands (PIN1 is global) + GET RESPONSE (T=0); SELECT, VERIFY,
    # MSE SET, PSO HASH, PSO CDS, SELECT (the logout); the first right PIN1 on this card
    # presence: GET DATA + GET RESPONSE once more (the count then is the card's limit).
    assert [r.ins for r in fineid.records] == [0xCB, 0xC0, 0xA4, 0x20, 0x22, 0x2A, 0x2A, 0xA4, 0xCB, 0xC0]
    # The next login: the tries left from that VERIFY's answer, no APDU before the dialog,
    # and no read after it.
    fineid.reset_count()
    on(token, token.pin_status, auth)
    assert fineid.records == []
    on(token, token.sign_digest, auth, bytearray(PIN1.encode()), hashlib.sha384(b"y").digest(), ES384)
    assert [r.ins for r in fineid.records] == [0xA4, 0x20, 0x22, 0x2A, 0x2A, 0xA4]
    assert on(token, token.pin_status, auth).retries_left == 5


def verify_signature(cert: CertificateInfo, digest: bytes, signature: bytes, algorithm: SignatureAlgorithm) -> None:
    """A raw ``r || s`` ECDSA, RSASSA-PKCS1-v1_5 or PSS signature over ``digest``."""
    public = x509.load_der_x509_certificate(cert.der).public_key()
    chosen = {32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}[len(digest)]
    if isinstance(public, rsa.RSAPublicKey):
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15() if algorithm.padding == "PKCS1.5" else padding.PSS(padding.MGF1(chosen), len(digest))
        )
        public.verify(signature, digest, pad, utils.Prehashed(chosen))
        return
    assert isinstance(public, ec.EllipticCurvePublicKey)
    half = len(signature) // 2
    der = utils.encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
    public.verify(der, digest, ec.ECDSA(utils.Prehashed(chosen)))


def reset_by_another_program(reader: str) -> None:
    """Another PC/SC client (its own context) connects to the card and disconnects with
    SCARD_RESET_CARD, as a program that resets the card between two of ours does."""
    code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert code == scard.SCARD_S_SUCCESS
    try:
        code, handle, _protocol = scard.SCardConnect(
            context, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        )
        assert code == scard.SCARD_S_SUCCESS
        assert scard.SCardDisconnect(handle, scard.SCARD_RESET_CARD) == scard.SCARD_S_SUCCESS
    finally:
        scard.SCardReleaseContext(context)


@pytest.mark.parametrize("kind", ["piv", "fineid", "fineid-v3"])
def test_card_reset_by_another_program_mid_session(
    kind: str, pcscd: Pcscd, card_folder: Path, backend: PcscBackend
) -> None:
    """A Finnish card (both profiles) reset by another program, next to the PIV card as the
    reference. Between the PIN dialog and the signature (another client resets the card:
    its selection and PIN state are gone): the driver selects its application again and the
    login works. In the middle of the signature (the card loses its volatile state before
    the signing command, as after a reset pcscd does not report to this connection): the
    card's own status word ends it as CARD_ERROR, the same code the PIV driver gives, no
    signature, and the next login works."""
    card = start_card(card_folder) if kind == "piv" else start_kind(card_folder / "fineid", kind)
    try:
        token = fineid_token(backend)
        auth = cert_for(token, Purpose.AUTHENTICATION)
        algorithm = token.supported_algorithms(auth)[0]
        digest = hashlib.new(algorithm.hash_function.replace("-", "").lower(), b"M").digest()
        pin = "123456" if kind == "piv" else PIN1
        assert on(token, token.pin_status, auth).retries_left in (None, 3, 5)
        reset_by_another_program(READER_0)
        signature = on(token, token.sign_digest, auth, bytearray(pin.encode()), digest, algorithm)
        verify_signature(auth, digest, signature, algorithm)

        card.reset_when(0x87 if kind == "piv" else INS_PSO)  # GENERAL AUTHENTICATE / PSO
        with pytest.raises(CardbridgeError) as info:
            on(token, token.sign_digest, auth, bytearray(pin.encode()), digest, algorithm)
        assert info.value.code is Code.CARD_ERROR, info.value
        signature = on(token, token.sign_digest, auth, bytearray(pin.encode()), digest, algorithm)
        verify_signature(auth, digest, signature, algorithm)
    finally:
        stop_card(card)


# -- the whole bridge ---------------------------------------------------------------------------
def test_dev_card_kind_fineid_from_a_fresh_data_folder(pcscd: Pcscd, tmp_path: Path) -> None:
    """``cardbridge dev card --kind fineid`` in a data folder where no PIV card was ever made
    (its PID file's folder did not exist: the command failed before)."""
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "cardbridge", "--lang", "en", "dev", "card", "--kind", "fineid", "--reader", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(CARDBRIDGE_DATA_DIR=str(tmp_path / "data")),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "PIN1 (perustunnusluku) 1234" in first and "PIN2 (allekirjoitustunnusluku) 123456" in first, first + (
            proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        )
        wait_for_card("Virtual PCD 00 01", True)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    wait_for_card("Virtual PCD 00 01", False)
    assert proc.returncode == 0
