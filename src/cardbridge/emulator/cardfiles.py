"""Where an emulated card keeps its keys and certificates between runs.

Each card has a folder of its own (mode 0700) with ``auth-key.pem`` and ``sign-key.pem``
(PKCS#8, mode 0600), ``auth-cert.pem`` and ``sign-cert.pem``, and ``card.json`` with the
card's own facts (its serial or document number, which CA issued it, …). A card kind loads
what is there and makes a new card when it is not there or no longer fits.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cardbridge.emulator.devpki import PrivateKey

_KEYS = ("auth-key", "sign-key")
_CERTS = ("auth-cert", "sign-cert")


@dataclass(frozen=True, slots=True)
class CardKeys:
    """A card's two keys and their certificates (DER)."""

    auth_key: PrivateKey
    auth_cert: bytes
    sign_key: PrivateKey
    sign_cert: bytes


class CardFolder:
    """One emulated card's folder (made, mode 0700, when it is not there)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._meta = path / "card.json"
        self._files = {name: path / f"{name}.pem" for name in (*_KEYS, *_CERTS)}

    def load(self) -> tuple[CardKeys, dict[str, Any]] | None:
        """The stored keys and facts; None when a file is missing or a key is neither EC nor RSA."""
        if not self._meta.exists() or not all(p.exists() for p in self._files.values()):
            return None
        keys = [serialization.load_pem_private_key(self._files[n].read_bytes(), password=None) for n in _KEYS]
        auth_key, sign_key = keys
        if not isinstance(auth_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) or not isinstance(
            sign_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
        ):
            return None
        auth_cert, sign_cert = (x509.load_pem_x509_certificate(self._files[n].read_bytes()) for n in _CERTS)
        meta = json.loads(self._meta.read_text(encoding="utf-8"))
        return CardKeys(auth_key, _der(auth_cert), sign_key, _der(sign_cert)), meta

    def save(
        self,
        auth_key: PrivateKey,
        auth_cert: x509.Certificate,
        sign_key: PrivateKey,
        sign_cert: x509.Certificate,
        meta: dict[str, Any],
    ) -> CardKeys:
        """Keep a new card's keys (mode 0600), certificates and facts."""
        for name, key in zip(_KEYS, (auth_key, sign_key), strict=True):
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            fd = os.open(self._files[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
        for name, cert in zip(_CERTS, (auth_cert, sign_cert), strict=True):
            self._files[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._meta.write_text(json.dumps(meta), encoding="utf-8")
        return CardKeys(auth_key, _der(auth_cert), sign_key, _der(sign_cert))


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)
