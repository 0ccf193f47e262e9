"""The national ID cards, one profile each, for the tests that run every card the same way
through the CLI, the HTTP API and the native host (``test_national.py``).

A profile says what differs from card to card: the ``dev card`` kind (and key), the PINs
and what the card calls them, their references in VERIFY, the tries, where the emulator
keeps the counters, the command that signs a login, and the identity the portal must read
from the certificate. A new card profile is one more entry in :data:`PROFILES`.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from cardbridge.emulator.belgium import BelgianCitizen
from cardbridge.emulator.devpki import FinnishCitizen
from cardbridge.emulator.esteid import EstonianCitizen
from cardbridge.emulator.iso7816 import Applet
from cardbridge.iso7816 import INS_INTERNAL_AUTHENTICATE, INS_PSO
from cardbridge.model import Token

T = TypeVar("T")
ORIGIN = "https://login.example.eu"


@dataclass(frozen=True, slots=True)
class NationalCard:
    """One emulated national card as the entry-point tests use it."""

    kind: str  # cardbridge dev card --kind
    pins: tuple[str, str]  # the login PIN and the signing PIN (the same on a one-PIN card)
    pin_names: tuple[str, str]  # as the card and its country call them (the dialog says so)
    references: tuple[int, int]  # VERIFY's P2 for a login and for a signature
    counters: tuple[str, str]  # where the emulated card keeps each PIN's tries left
    identity: tuple[str, str, str, str]  # id_code, given name, surname, country in the certificate
    login_ins: int  # the command that makes a login's signature (the card is pulled at it)
    tries: int = 3
    key: str | None = None  # dev card --key (the kind's default when None)
    algorithm: str = "ES384"  # the login token's algorithm

    @property
    def id(self) -> str:
        return self.kind + (f"-{self.key}" if self.key else "")

    def tries_left(self, applet: Applet, which: int = 0) -> int:
        value = _get(applet, self.counters[which])
        assert isinstance(value, int)
        return value

    def set_tries_left(self, applet: Applet, tries: int) -> None:
        """Both PINs' counters (as if wrong PINs had been given before: fewer processes)."""
        for path in self.counters:
            owner, _, name = path.rpartition(".")
            setattr(_get(applet, owner) if owner else applet, name, tries)


def _get(obj: object, path: str) -> object:
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


_ESTONIAN, _FINNISH, _BELGIAN = EstonianCitizen(), FinnishCitizen(), BelgianCitizen()
ESTEID = NationalCard(
    "esteid", ("1234", "12345"), ("PIN1", "PIN2"), (0x01, 0x85), ("pin1.tries_left", "pin2.tries_left"),
    (_ESTONIAN.id_code, "JAAK-KRISTJAN", "JÕEORG", "EE"), INS_INTERNAL_AUTHENTICATE,
)  # fmt: skip
ESTEID_THALES = NationalCard(
    "esteid-thales", ("1234", "12345"), ("PIN1", "PIN2"), (0x81, 0x82), ("pin1.tries_left", "pin2.tries_left"),
    (_ESTONIAN.id_code, "JAAK-KRISTJAN", "JÕEORG", "EE"), INS_PSO,
)  # fmt: skip
FINEID = NationalCard(
    "fineid", ("1234", "123456"), ("PIN1 (perustunnusluku)", "PIN2 (allekirjoitustunnusluku)"), (0x11, 0x82),
    ("pin1.tries_left", "pin2.tries_left"), (_FINNISH.satu, "MAIJA", "MEIKÄLÄINEN", "FI"), INS_PSO, tries=5,
)  # fmt: skip
BELPIC = NationalCard(
    "belpic", ("1234", "1234"), ("eID PIN", "eID PIN"), (0x01, 0x01), ("pin_tries_left", "pin_tries_left"),
    (_BELGIAN.national_number, "Jan Pieter", "Peeters", "BE"), INS_PSO, key="ec-p384",
)  # fmt: skip
PROFILES = (
    ESTEID,
    ESTEID_THALES,  # the Thales profile (2025)
    FINEID,
    replace(FINEID, kind="fineid-v3", algorithm="RS256"),  # S4-1 v3.0: RSA-2048 login key
    BELPIC,
    replace(BELPIC, key="rsa-2048", algorithm="RS256"),  # applet 1.7
)


# -- the helpers every such test uses ----------------------------------------------------
def nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def on(token: Token, fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` on the token's own worker thread."""
    return token.executor.submit(fn, *args).result(timeout=30)


def bridge_env(tmp_path: Path, pinentry_env: dict[str, str]) -> dict[str, str]:
    """The built-in drivers and the modules p11-kit registers (OpenSC reaches the same card:
    it counts once), no SoftHSM2 token of the test session, the scripted dialog, a config
    that allows the portal's origin, folders of the test's own."""
    env = {k: v for k, v in os.environ.items() if k not in ("CARDBRIDGE_PKCS11_MODULE", "SOFTHSM2_CONF")}
    folder = tmp_path / "cfg"
    folder.mkdir(mode=0o700, exist_ok=True)
    config = folder / "config.toml"
    config.write_text(f'allowed_origins = ["{ORIGIN}"]\n', encoding="utf-8")
    config.chmod(0o600)
    return {
        **env,
        **pinentry_env,
        "CARDBRIDGE_CONFIG": str(config),
        "CARDBRIDGE_DATA_DIR": str(tmp_path / "data"),
        "CARDBRIDGE_LOG_DIR": str(tmp_path / "log"),
    }


def cli(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cardbridge", "--lang", "en", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def http_login(port: int, challenge: str) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(
            "POST",
            "/v1/authenticate",
            body=json.dumps({"challengeNonce": challenge, "lang": "en"}),
            headers={"Origin": ORIGIN, "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def validate(profile: NationalCard, token: dict[str, Any], challenge: str, card_folder: Path) -> None:
    """The portal's validator (``cardbridge.portal``) against the development CA: the identity
    as the country's certificates give it."""
    from cardbridge.portal import AuthTokenValidator

    assert token.get("algorithm") == profile.algorithm, token
    ca = (card_folder / "ca" / "dev-ca.pem").read_bytes()
    identity = AuthTokenValidator(ORIGIN, [ca]).validate(dict(token), challenge)
    assert (identity.id_code, identity.given_name, identity.surname, identity.country) == profile.identity


def digest_for(token: Token, certificate: Any, data: bytes = b"x") -> tuple[bytes, Any]:
    """The first algorithm the token offers for ``certificate``, and a digest of ``data`` in it."""
    algorithm = on(token, token.supported_algorithms, certificate)[0]
    return hashlib.new(algorithm.hash_function.replace("-", "").lower(), data).digest(), algorithm
