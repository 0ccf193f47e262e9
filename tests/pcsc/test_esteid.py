"""The Estonian ID card (IDEMIA, 2018): the emulated card in pcscd's vpcd reader, checked
against OpenSC's own ``esteid2018`` driver, and cardbridge's direct driver on it. The entry
points (the CLI, the HTTP API, the native host) are in ``test_national.py``, as for every
national card."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from cardbridge.emulator.esteid import EsteidCard, is_valid_isikukood
from cardbridge.emulator.virtual_card import VirtualCard
from cardbridge.model import CertificateInfo, Purpose, SignatureAlgorithm, Token
from cardbridge.pcsc import PcscBackend
from cardbridge.pcsc.cardtoken import CardToken
from tests.cards import verify_signature
from tests.pcsc.conftest import READER_0, Pcscd, start_kind, stop_card, wait_for_card

pytestmark = pytest.mark.pcsc
T = TypeVar("T")
OPENSC = Path("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so")
PIN1, PIN2, PUK = "1234", "12345", "17258403"
ES384 = SignatureAlgorithm("ECC", "SHA-384", "NONE")
ORIGIN = "https://eesti.example.ee"


@pytest.fixture
def esteid(pcscd: Pcscd, card_folder: Path) -> Iterator[VirtualCard]:
    """A fresh emulated Estonian ID card (PIN1 1234, PIN2 12345, PUK 17258403) in reader 0."""
    card = start_kind(card_folder, "esteid")
    try:
        yield card
    finally:
        stop_card(card)


def applet(card: VirtualCard) -> EsteidCard:
    assert isinstance(card.applet, EsteidCard)
    return card.applet


def on(token: Token, fn: Callable[..., T], *args: object) -> T:
    return token.executor.submit(fn, *args).result(timeout=30)


def token_of(backend: PcscBackend) -> CardToken:
    return backend.executor.submit(backend.token, READER_0).result(timeout=30)


def cert(token: Token, purpose: Purpose) -> CertificateInfo:
    return next(c for c in on(token, token.certificates) if c.purpose is purpose)


def tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False)


# -- the independent check: OpenSC's esteid2018 driver -----------------------------------


@pytest.mark.skipif(not OPENSC.exists(), reason="opensc-pkcs11 is not installed")
def test_opensc_lists_the_certificates_and_signs_with_each_key(esteid: VirtualCard, tmp_path: Path) -> None:
    listed = tool("pkcs15-tool", "--reader", "0", "--list-certificates")
    assert listed.returncode == 0, listed.stderr
    assert "Isikutuvastus" in listed.stdout and "Allkirjastamine" in listed.stdout
    card = applet(esteid)
    for key_id, pin, der in (("01", PIN1, card.data.auth_cert), ("02", PIN2, card.data.sign_cert)):
        digest = hashlib.sha384(secrets.token_bytes(16)).digest()
        (tmp_path / "in").write_bytes(digest)
        signed = tool(
            "pkcs11-tool", "--module", str(OPENSC), "--slot-index", _slot_index(key_id),
            "--login", "--pin", pin, "--sign", "--mechanism", "ECDSA", "--id", key_id,
            "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
        )  # fmt: skip
        assert signed.returncode == 0, (key_id, signed.stdout, signed.stderr)
        verify_signature(der, digest, (tmp_path / "out").read_bytes())


@pytest.mark.skipif(not OPENSC.exists(), reason="opensc-pkcs11 is not installed")
def test_opensc_sees_the_counter_go_down_after_a_wrong_pin(esteid: VirtualCard, tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(bytes(48))
    wrong = tool(
        "pkcs11-tool", "--module", str(OPENSC), "--slot-index", _slot_index("01"),
        "--login", "--pin", "9999", "--sign", "--mechanism", "ECDSA", "--id", "01",
        "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
    )  # fmt: skip
    assert wrong.returncode != 0
    assert "CKR_PIN_INCORRECT" in wrong.stderr + wrong.stdout
    assert applet(esteid).pin1.tries_left == 2
    pins = tool("pkcs15-tool", "--reader", "0", "--list-pins")
    assert pins.returncode == 0, pins.stderr
    blocks = pins.stdout.split("PIN [")
    pin1 = next(b for b in blocks if b.startswith("PIN1]"))
    assert re.search(r"Tries left\s*:\s*2", pin1), pin1


def _slot_index(key_id: str) -> str:
    """OpenSC's slot for the key's PIN: one slot (token) per PIN, PIN1's first; the card is in
    the first reader, so its slots come first."""
    return "0" if key_id == "01" else "1"


# -- the direct driver ----------------------------------------------------------------------


def test_direct_driver_lists_both_certificates_with_the_estonian_identity(
    esteid: VirtualCard, backend: PcscBackend
) -> None:
    token = token_of(backend)
    assert token.info.extra["driver"] == "esteid"
    assert token.info.serial == applet(esteid).data.document_number
    auth, sign = cert(token, Purpose.AUTHENTICATION), cert(token, Purpose.SIGNING)
    assert auth.der == applet(esteid).data.auth_cert and sign.der == applet(esteid).data.sign_cert
    assert (auth.given_name, auth.surname, auth.country) == ("JAAK-KRISTJAN", "JÕEORG", "EE")
    assert auth.id_code == "PNOEE-38001085718" and is_valid_isikukood(auth.id_code.removeprefix("PNOEE-"))
    assert auth.common_name == "JÕEORG,JAAK-KRISTJAN,38001085718"
    assert (auth.key_type, auth.curve) == ("EC", "secp384r1")
    assert token.info.label == "JAAK-KRISTJAN JÕEORG"
    status1, status2 = on(token, token.pin_status, auth), on(token, token.pin_status, sign)
    assert (status1.name, status1.retries_left, status1.min_length, status1.max_length) == ("PIN1", 3, 4, 12)
    assert (status2.name, status2.retries_left, status2.min_length, status2.max_length) == ("PIN2", 3, 5, 12)


def test_warm_login_is_select_verify_mse_authenticate_and_logout(esteid: VirtualCard, backend: PcscBackend) -> None:
    token = token_of(backend)
    auth = cert(token, Purpose.AUTHENTICATION)
    digest = hashlib.sha384(b"warm").digest()
    on(token, token.sign_digest, auth, bytearray(PIN1.encode()), digest, ES384)
    esteid.reset_count()
    token = token_of(backend)
    signature = on(
        token, token.sign_digest, cert(token, Purpose.AUTHENTICATION), bytearray(PIN1.encode()), digest, ES384
    )
    verify_signature(auth.der, digest, signature)
    assert [r.ins for r in esteid.records] == [0xA4, 0x20, 0x22, 0x88, 0xA4]
    assert esteid.records[1].command == bytes.fromhex("00200001"), "the PIN is never recorded"
    assert not applet(esteid).verified, "logged out after the signature"


@pytest.mark.browser
@pytest.mark.skipif(not os.access("/usr/bin/chromium", os.X_OK), reason="Debian's chromium is not installed")
def test_demo_logs_in_with_the_emulated_estonian_card(pcscd: Pcscd, tmp_path: Path) -> None:
    pytest.importorskip("playwright.sync_api")
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "CARDBRIDGE_DEV_PIN")}
    env.update({"CARDBRIDGE_DATA_DIR": str(tmp_path), "CARDBRIDGE_CONFIG": str(tmp_path / "none.toml")})
    result = subprocess.run(
        [sys.executable, "-m", "cardbridge", "--lang", "en", "demo", "--check", "--card", "esteid"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "The portal verified: JAAK-KRISTJAN JÕEORG" in result.stdout, result.stdout
    assert "PNOEE-38001085718" in result.stdout
    assert "Personal code (isikukood): 38001085718," in result.stdout  # named as Estonia names it
    assert "The login worked." in result.stdout
    wait_for_card(READER_0, False)  # the demo took its card out again


def test_doctor_sees_the_card_through_the_direct_driver(esteid: VirtualCard, tmp_path: Path) -> None:
    from tests.test_doctor import _doctor
    from tests.test_doctor import _env as doctor_env

    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v for k, v in doctor_env(tmp_path, home).items() if k not in ("CARDBRIDGE_PKCS11_MODULE", "SOFTHSM2_CONF")
    }
    _, checks, _ = _doctor("--lang", "en", env=env)
    tokens = [c for c in checks.get("tokens", []) if "JÕEORG" in c.get("detail", "")]
    assert tokens, checks.get("tokens")
    assert {c["status"] for c in tokens} == {"ok"}
    assert len(tokens) == 2, "both certificates, once each (not again through OpenSC's slots)"
