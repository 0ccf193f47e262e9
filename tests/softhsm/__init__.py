"""Throwaway SoftHSM2 tokens for one test session, with the development PKI.

SoftHSM2 reads its token folder once, at C_Initialize, so every token a test session needs
is made here, before any test loads the module: one SoftHSM2 config in a temporary folder,
``SOFTHSM2_CONF`` set for the whole session, and one token per case, found by its label.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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


CASES = (
    TokenCase("p256", "ec-p256"),
    TokenCase("p384", "ec-p384"),
    TokenCase("rsa", "rsa-2048"),
    TokenCase("two-auth", "ec-p256", auth_certificates=2),
    TokenCase("orphan", "ec-p256", auth_certificates=0, signing=False, orphan=True),
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
