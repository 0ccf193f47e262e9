"""Fixtures for the portal tests: a development CA, a foreign CA, software keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cardbridge.emulator.devpki import Citizen, DevCA, PrivateKey
from cardbridge.model import Purpose
from cardbridge.portal import AuthTokenValidator
from tests.portal.helpers import ORIGIN


@pytest.fixture(scope="session")
def dev_ca(tmp_path_factory: pytest.TempPathFactory) -> DevCA:
    return DevCA.load_or_create(tmp_path_factory.mktemp("dev-ca"))


@pytest.fixture(scope="session")
def foreign_ca(tmp_path_factory: pytest.TempPathFactory) -> DevCA:
    """A CA with the same name as dev_ca's, but another key: not trusted."""
    return DevCA.load_or_create(tmp_path_factory.mktemp("foreign-ca"))


@pytest.fixture(scope="session")
def keys() -> dict[str, PrivateKey]:
    return {
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "p521": ec.generate_private_key(ec.SECP521R1()),
        "rsa2048": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


@pytest.fixture(scope="session")
def citizen() -> Citizen:
    return Citizen()


@pytest.fixture(scope="session")
def auth_certs(dev_ca: DevCA, keys: dict[str, PrivateKey], citizen: Citizen) -> dict[str, x509.Certificate]:
    return {name: dev_ca.issue(key.public_key(), citizen, Purpose.AUTHENTICATION) for name, key in keys.items()}


@pytest.fixture(scope="session")
def validator(dev_ca: DevCA) -> AuthTokenValidator:
    return AuthTokenValidator(site_origin=ORIGIN, trusted_ca_certificates=[dev_ca.cert_path.read_bytes()])


@pytest.fixture(scope="session")
def portal_data() -> Path:
    return Path(__file__).parent / "data"
