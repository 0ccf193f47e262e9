"""Property: whatever arrives as a token, the validator refuses it with a TokenValidationError and a
stable code (never another exception), unless it is the valid token with a harmless change."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cardbridge.emulator.devpki import PrivateKey
from cardbridge.errors import Code
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


CODES = frozenset(Code)


def _check(validator: AuthTokenValidator, token: Any) -> str:
    """``token`` must be refused with a TokenValidationError carrying one of the stable codes.

    An accepted token fails the test (none of these inputs carries a valid signature), and
    so does any other exception type (it would propagate out of ``validate`` to the portal)."""
    with pytest.raises(TokenValidationError) as info:
        validator.validate(token, NONCE)
    code = info.value.code
    assert code in CODES, code
    return str(code)


class _Accepting:
    """A validator that accepts everything, or raises ``error``: what _check must catch."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def validate(self, token: Any, nonce: str) -> object:
        if self.error is not None:
            raise self.error
        return object()


@pytest.mark.parametrize("error", [None, ValueError("a foreign exception"), KeyError("unverifiedCertificate")])
def test_check_fails_when_the_validator_accepts_or_raises_a_foreign_exception(error: Exception | None) -> None:
    with pytest.raises((pytest.fail.Exception, ValueError, KeyError)):
        _check(_Accepting(error), "{}")  # type: ignore[arg-type]


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
    except TokenValidationError as exc:
        code = exc.code
    else:
        code = None
    if code is not None:
        assert code in CODES, code
        return
    # Some mutations are harmless (e.g. in appVersion, or JSON white space): then the token
    # still proves the same certificate, byte for byte, and the same algorithm.
    original = json.loads(valid_token)
    assert identity.certificate == base64.b64decode(original["unverifiedCertificate"])
    assert identity.algorithm == original["algorithm"]


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


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_changed_certificate_is_refused_even_with_a_good_token_signature(
    validator: AuthTokenValidator,
    keys: dict[str, PrivateKey],
    auth_certs: dict[str, x509.Certificate],
    data: st.DataObject,
) -> None:
    # The token itself is signed by the certificate's key over the right origin and nonce:
    # only the CA's signature over the certificate stands between a changed byte and a
    # login. No byte of a DER certificate is free to change (the CA signs the whole
    # tbsCertificate; the outer fields are fixed by DER), so every change is refused.
    original = auth_certs["p256"].public_bytes(serialization.Encoding.DER)
    der = bytearray(original)
    for _ in range(data.draw(st.integers(1, 3))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    assume(bytes(der) != original)
    _check(validator, make_token(keys["p256"], bytes(der), "ES256"))
