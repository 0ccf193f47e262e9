"""Properties of the validator's token decoding (``parse_token``, ``parse_algorithm`` and the
lenient certificate parser), over generated input (hypothesis).

Whatever a login page posts, decoding gives the three fields or a TokenValidationError with
a stable code — never another exception. A well-formed token decodes to exactly what was
put in. The numbers of examples are bounded so the suite stays fast; ``make fuzz`` runs the
atheris harness in ``fuzz/fuzz_token.py`` for as long as one likes.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardbridge.authtoken import AuthToken
from cardbridge.errors import Code
from cardbridge.portal import TokenValidationError
from cardbridge.portal._certificate import check_purpose, parse_subject_certificate
from cardbridge.portal.validator import TOKEN_MAX_LENGTH, TOKEN_MIN_LENGTH, parse_algorithm, parse_token

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CODES = frozenset(Code)
FIELDS = ["unverifiedCertificate", "algorithm", "signature", "format", "appVersion"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=100),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
b64_text = st.binary(max_size=400).map(lambda b: base64.b64encode(b).decode())
field_values = json_values | b64_text | st.sampled_from(["ES256", "RS256", "PS512", "web-eid:1.0", "web-eid:10", ""])
token_objects = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), field_values, max_size=7)


def _refused_code(token: Any) -> str | None:
    """None when ``token`` decodes; else the code of the TokenValidationError it raised.
    Any other exception propagates and fails the test."""
    try:
        fields = parse_token(token)
    except TokenValidationError as exc:
        code = exc.code
    else:
        code = None
    if code is not None:
        assert code in CODES, code
        return str(code)
    assert fields.certificate and fields.signature
    assert isinstance(fields.algorithm, str)
    return None


@EXAMPLES
@given(text=st.text(max_size=TOKEN_MAX_LENGTH + 100))
def test_any_text_decodes_or_is_refused(text: str) -> None:
    code = _refused_code(text)
    if not TOKEN_MIN_LENGTH <= len(text) <= TOKEN_MAX_LENGTH:
        assert code == "TOKEN_MALFORMED"


@EXAMPLES
@given(obj=token_objects, as_text=st.booleans())
def test_any_object_decodes_or_is_refused(obj: dict[str, Any], as_text: bool) -> None:
    _refused_code(json.dumps(obj) if as_text else obj)


@EXAMPLES
@given(value=json_values)
def test_any_json_value_decodes_or_is_refused(value: Any) -> None:
    _refused_code(json.dumps(value))
    _refused_code(value)


@EXAMPLES
@given(
    prefix=st.sampled_from(['{"format": "web-eid:1.0", "x": ', '{"a": ' * 50, "[" * 3000, '{"n": ' + "9" * 5000]),
    tail=st.text(max_size=200),
)
def test_hostile_json_shapes_are_refused(prefix: str, tail: str) -> None:
    # Deep nesting, numbers past Python's 4,300 digits, truncated objects: refused with a code.
    assert _refused_code(prefix + tail) is not None


@EXAMPLES
@given(
    certificate=st.binary(min_size=1, max_size=2000),
    signature=st.binary(min_size=1, max_size=600),
    algorithm=st.text(min_size=1, max_size=12),
    app_version=st.text(max_size=60),
)
def test_well_formed_token_decodes_to_what_was_put_in(
    certificate: bytes, signature: bytes, algorithm: str, app_version: str
) -> None:
    token = AuthToken(unverified_certificate=certificate, algorithm=algorithm, signature=signature)
    data = {**token.to_dict(), "appVersion": app_version}
    text = json.dumps(data)
    if not TOKEN_MIN_LENGTH <= len(text) <= TOKEN_MAX_LENGTH:
        return
    fields = parse_token(text)
    assert (fields.certificate, fields.signature, fields.algorithm) == (certificate, signature, algorithm)
    assert parse_token(data) == fields


@EXAMPLES
@given(name=st.text(max_size=30))
def test_any_algorithm_name_is_known_or_refused(name: str) -> None:
    try:
        algorithm = parse_algorithm(name)
    except TokenValidationError as exc:
        refused_code = str(exc.code)
    else:
        refused_code = None
    if refused_code is not None:
        assert refused_code == "TOKEN_ALGORITHM_UNSUPPORTED"
        return
    assert algorithm.jws == name


@EXAMPLES
@given(der=st.binary(max_size=3000))
def test_any_certificate_bytes_parse_or_are_refused(der: bytes) -> None:
    _parse_certificate(der)


@pytest.fixture(scope="module")
def certificate_der(auth_certs: dict[str, x509.Certificate]) -> bytes:
    return auth_certs["p256"].public_bytes(serialization.Encoding.DER)


@EXAMPLES
@given(data=st.data())
def test_mutated_certificate_parses_or_is_refused(certificate_der: bytes, data: st.DataObject) -> None:
    der = bytearray(certificate_der)
    for _ in range(data.draw(st.integers(1, 6))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(der)))
    _parse_certificate(bytes(der[:cut]) if data.draw(st.booleans()) else bytes(der))


def _parse_certificate(der: bytes) -> None:
    """asn1crypto parses lazily and raises many kinds of errors: every one must come out as
    a certificate refusal (CERTIFICATE_*), and a parsed certificate must answer every
    question the validator asks of it without raising anything else."""
    try:
        cert = parse_subject_certificate(der)
        check_purpose(cert)
    except TokenValidationError as exc:
        code = str(exc.code)
    else:
        code = None
    if code is not None:
        assert code.startswith("CERTIFICATE_"), code
        return
    assert cert.der == der and cert.id_code
    _ = cert.not_before < cert.not_after, cert.policies, cert.key_usage, cert.extended_key_usage
