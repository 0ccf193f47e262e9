"""Throwaway SoftHSM2 tokens for one test session, with the development PKI.

SoftHSM2 reads its token folder once, at C_Initialize, so every token a test session needs
is made here, before any test loads the module: one SoftHSM2 config in a temporary folder,
``SOFTHSM2_CONF`` set for the whole session, and one token per case, found by its label.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cardbridge.emulator.devpki import Citizen, DevCA
from cardbridge.emulator.softhsm import init_token, provision, softhsm_module, write_config

PIN = "1234"


@dataclass(frozen=True)
class TokenCase:
    label: str
    key: str
    auth_certificates: int = 1
    signing: bool = True
    orphan: bool = False  # an authentication certificate whose key is not on the token
    # A signing key that is also accepted for login: "certificate", one certificate with
    # nonRepudiation, digitalSignature and clientAuth; "key", a signing certificate for the
    # authentication key.
    dual_use: str | None = None


CASES = (
    TokenCase("p256", "ec-p256"),
    TokenCase("p384", "ec-p384"),
    TokenCase("rsa", "rsa-2048"),
    TokenCase("two-auth", "ec-p256", auth_certificates=2),
    TokenCase("orphan", "ec-p256", auth_certificates=0, signing=False, orphan=True),
    TokenCase("dual-use", "ec-p256", signing=False, dual_use="certificate"),
    TokenCase("shared-key", "ec-p256", auth_certificates=0, signing=False, dual_use="key"),
)


@dataclass(frozen=True)
class SoftHsm:
    module: str
    conf: Path
    ca: DevCA
    citizen: Citizen
    pin: str
    labels: tuple[str, ...]

    def env(self) -> dict[str, str]:
        """Environment for a cardbridge subprocess that uses these tokens."""
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}


def make_softhsm(folder: Path) -> SoftHsm:
    conf = write_config(folder / "softhsm")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    ca = DevCA.load_or_create(folder / "ca")
    citizen = Citizen()
    module = softhsm_module()
    for case in CASES:
        init_token(conf, case.label, PIN, "12345678")
    for case in CASES:
        provision(
            module,
            case.label,
            PIN,
            ca,
            key=case.key,
            citizen=citizen,
            auth_certificates=case.auth_certificates,
            signing=case.signing,
        )
        if case.orphan:
            _store_orphan_certificate(module, case.label, ca, citizen)
        if case.dual_use:
            _store_dual_use(module, case.label, ca, citizen, shared_key=case.dual_use == "key")
    return SoftHsm(module, conf, ca, citizen, PIN, tuple(c.label for c in CASES))


def _store_orphan_certificate(module: str, label: str, ca: DevCA, citizen: Citizen) -> None:
    from cryptography.hazmat.primitives import serialization

    from cardbridge.emulator.devpki import generate_key
    from cardbridge.model import Purpose
    from cardbridge.pkcs11.provision import TokenWriter

    cert = ca.issue(generate_key("ec-p256").public_key(), citizen, Purpose.AUTHENTICATION)
    with TokenWriter(module, label, PIN) as writer:
        writer.store_certificate(
            cert.public_bytes(serialization.Encoding.DER), cert.subject.public_bytes(), b"\x09", "No key"
        )


def _store_dual_use(module: str, label: str, ca: DevCA, citizen: Citizen, *, shared_key: bool) -> None:
    """A signing certificate whose key a validator also accepts for login: one certificate
    with nonRepudiation, digitalSignature and clientAuth, or (``shared_key``) an
    authentication certificate and a signing-only one for the same key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from cardbridge.model import Purpose
    from cardbridge.pkcs11.provision import TokenWriter

    usage = {
        "digital_signature": not shared_key,
        "content_commitment": True,
        "key_encipherment": False,
        "data_encipherment": False,
        "key_agreement": False,
        "key_cert_sign": False,
        "crl_sign": False,
        "encipher_only": False,
        "decipher_only": False,
    }
    key_id = b"\x01" if shared_key else b"\x02"
    with TokenWriter(module, label, PIN) as writer:
        public = writer.generate_key("ec-p256", key_id, "Signing and login")
        certificates = []
        if shared_key:
            certificates.append((ca.issue(public, citizen, Purpose.AUTHENTICATION), "Authentication"))
        eku = None if shared_key else [ExtendedKeyUsageOID.CLIENT_AUTH]
        signing = ca.issue(public, citizen, Purpose.SIGNING, key_usage=x509.KeyUsage(**usage), extended_key_usage=eku)
        certificates.append((signing, "Signing"))
        for cert, name in certificates:
            writer.store_certificate(
                cert.public_bytes(serialization.Encoding.DER), cert.subject.public_bytes(), key_id, name
            )


@dataclass
class LoginSpy:
    """A spy around the real C_Login (``_cryptoki.Cryptoki.login``, installed by the
    ``login_spy`` fixture): every call still reaches SoftHSM2.

    It records each call's session and PIN buffer. After :meth:`hold` it holds each call
    open — the PIN buffer exported as ``_cryptoki`` exports it to the module — until
    ``release`` is set, then records what the module's view of the buffer showed and makes
    the real call: a real card takes 50-500 ms to check a PIN and a PIN-pad reader up to
    the person's timeout, SoftHSM2 a few milliseconds, too short to act during reliably.
    """

    sessions: list[int] = field(default_factory=list)
    buffers: list[bytearray | None] = field(default_factory=list)
    seen: list[bytes] = field(default_factory=list)  # the exported buffer, as the module read it
    entered: threading.Event = field(default_factory=threading.Event)  # a held call has begun
    release: threading.Event = field(default_factory=threading.Event)
    returned: threading.Event = field(default_factory=threading.Event)  # a held call's real C_Login returned
    held: bool = False

    @property
    def count(self) -> int:
        return len(self.sessions)

    def hold(self) -> LoginSpy:
        """Hold the calls from now on until ``release`` is set."""
        self.held = True
        return self

    def install(self, monkeypatch: pytest.MonkeyPatch) -> LoginSpy:
        from cardbridge.pkcs11 import _cryptoki

        login = _cryptoki.Cryptoki.login

        def spied(raw: _cryptoki.Cryptoki, session: int, pin: bytearray | None) -> None:
            self.sessions.append(session)
            self.buffers.append(pin)
            if not self.held:
                login(raw, session, pin)
                return
            with memoryview(pin if pin is not None else bytearray()) as exported:  # the module's view
                self.entered.set()
                self.release.wait(30)
                self.seen.append(bytes(exported))
            try:
                login(raw, session, pin)
            finally:
                self.returned.set()

        monkeypatch.setattr(_cryptoki.Cryptoki, "login", spied)
        return self


def own_token(folder: Path) -> dict[str, str]:
    """``cardbridge dev token create`` in ``folder`` (a SoftHSM2 store of its own, made in a
    subprocess since SoftHSM2 reads its config once per process): its ``module``,
    ``softhsm2_conf``, ``label``, ``pin``, ``holder`` and ``ca_certificate``. For a test whose
    process could break a token: the shared ones stay whole."""
    made = subprocess.run(
        [sys.executable, "-m", "cardbridge", "dev", "token", "create", "--json", "--label", "citizen"],
        env={**os.environ, "CARDBRIDGE_DATA_DIR": str(folder)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    token: dict[str, str] = json.loads(made.stdout)
    return token


def until_login_entered(mark: Path, proc: subprocess.Popen[Any]) -> None:
    """Wait (≤ 60 s) until ``tests/tools/slow_login.py`` marks that C_Login has begun."""
    deadline = time.monotonic() + 60
    while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mark.exists(), "the login never reached C_Login"
