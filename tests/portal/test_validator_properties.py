"""Property: whatever arrives as a token, the validator answers Identity or TokenValidationError."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardbridge.emulator.devpki import PrivateKey
from cardbridge.portal import AuthTokenValidator, TokenValidationError
from tests.portal.helpers import NONCE, make_token

FIELDS = ["unverifiedCertificate", "algorithm", "signature", "format", "appVersion"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=200),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
base64_text = st.binary(max_size=600).map(lambda b: base64.b64encode(b).decode())
field_values = st.one_of(
    json_values,
    base64_text,
    st.sampled_from(["ES256", "ES384", "RS256", "PS512", "web-eid:1.0", "web-eid:1", "web-eid:1.1"]),
)
token_objects = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), field_values, max_size=7)


@pytest.fixture(scope="module")
def valid_token(keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]) -> str:
    return make_token(keys["p256"], auth_certs["p256"], "ES256")


def _check(validator: AuthTokenValidator, token: Any) -> None:
    try:
        validator.validate(token, NONCE)
    except TokenValidationError as exc:  # a stable code, never another exception type
        code = exc.code
    else:
        code = None
    assert code is None or str(code).isupper()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=12000))
def test_random_text(validator: AuthTokenValidator, text: str) -> None:
    _check(validator, text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obj=token_objects, as_json=st.booleans())
def test_random_objects(validator: AuthTokenValidator, obj: dict[str, Any], as_json: bool) -> None:
    _check(validator, json.dumps(obj) if as_json else obj)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_valid_token(validator: AuthTokenValidator, valid_token: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(valid_token) - 1))
    replacement = data.draw(st.text(max_size=3))
    mutated = valid_token[:position] + replacement + valid_token[position + 1 :]
    try:
        identity = validator.validate(mutated, NONCE)
    except TokenValidationError:
        return
    # Some mutations are harmless (e.g. in appVersion); the certificate must be untouched then.
    assert base64.b64encode(identity.certificate).decode() in valid_token


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cert=st.binary(min_size=1, max_size=2000), signature=st.binary(min_size=1, max_size=600))
def test_random_certificate_and_signature_bytes(validator: AuthTokenValidator, cert: bytes, signature: bytes) -> None:
    token = {
        "unverifiedCertificate": base64.b64encode(cert).decode(),
        "algorithm": "ES256",
        "signature": base64.b64encode(signature).decode(),
        "format": "web-eid:1.0",
        "appVersion": "https://example.org/releases/1.0" + "0" * 60,
    }
    _check(validator, token)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_certificate_bytes(
    validator: AuthTokenValidator, auth_certs: dict[str, x509.Certificate], data: st.DataObject
) -> None:
    der = bytearray(auth_certs["p256"].public_bytes(serialization.Encoding.DER))
    for _ in range(data.draw(st.integers(1, 4))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    token = {
        "unverifiedCertificate": base64.b64encode(bytes(der)).decode(),
        "algorithm": "ES256",
        "signature": base64.b64encode(b"\x01" * 64).decode(),
        "format": "web-eid:1.0",
    }
    _check(validator, token)
