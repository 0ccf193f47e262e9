"""The demo's tests use the portal tests' development CA, keys and certificates."""

from tests.portal.conftest import auth_certs, citizen, dev_ca, foreign_ca, keys, portal_data, validator

__all__ = ["auth_certs", "citizen", "dev_ca", "foreign_ca", "keys", "portal_data", "validator"]
