"""The auth token validator: one token for each check it must fail, and tokens it must pass."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import x509 as asn1x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID

from cardbridge.authtoken import AuthToken, signing_input
from cardbridge.emulator.devpki import Citizen, DevCA, PrivateKey
from cardbridge.errors import CardbridgeError, ConfigError, InvalidInputError
from cardbridge.model import Purpose
from cardbridge.portal import AuthTokenValidator, Identity, InMemoryNonceStore, TokenValidationError
from cardbridge.portal.errors import CertificatePurposeError, SignatureInvalidError
from tests.portal.helpers import NONCE, ORIGIN, NoIdCitizen, der, issue_custom, make_lenient, make_token, sign

KEY_USAGE_NO_SIGNATURE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=True,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def refused(validator: AuthTokenValidator, token: Any, nonce: str = NONCE, **kwargs: Any) -> str:
    with pytest.raises(TokenValidationError) as info:
        validator.validate(token, nonce, **kwargs)
    assert isinstance(info.value, CardbridgeError)
    return str(info.value.code)


def fields(token: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(token)
    return data


# Tokens that pass.


@pytest.mark.parametrize(
    ("key_name", "algorithm"),
    [
        ("p256", "ES256"),
        ("p384", "ES384"),
        ("p521", "ES512"),
        ("rsa2048", "RS256"),
        ("rsa2048", "RS384"),
        ("rsa2048", "RS512"),
        ("rsa2048", "PS256"),
        ("rsa2048", "PS384"),
        ("rsa2048", "PS512"),
    ],
)
def test_valid_token_gives_the_identity(
    validator: AuthTokenValidator,
    keys: dict[str, PrivateKey],
    auth_certs: dict[str, x509.Certificate],
    citizen: Citizen,
    key_name: str,
    algorithm: str,
) -> None:
    cert = auth_certs[key_name]
    identity = validator.validate(make_token(keys[key_name], cert, algorithm), NONCE)
    assert identity == Identity(
        id_code=citizen.id_code,
        given_name="Kari",
        surname="Nordmann",
        common_name="Kari Nordmann",
        country="NO",
        certificate=der(cert),
        algorithm=algorithm,
    )
    assert identity.id_code.startswith("PNONO-") and len(identity.id_code) == 17


def test_token_as_dict_and_web_eid_1_1_format_pass(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    data = fields(make_token(keys["p256"], auth_certs["p256"], "ES256"))
    assert validator.validate(data, NONCE).surname == "Nordmann"
    data["format"] = "web-eid:1.1"
    data["unverifiedSigningCertificates"] = []
    assert validator.validate(json.dumps(data), NONCE).given_name == "Kari"


def test_trusted_ca_as_der_or_cryptography_object(
    dev_ca: DevCA, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    token = make_token(keys["p384"], auth_certs["p384"], "ES384")
    for trusted in (der(dev_ca.certificate), dev_ca.certificate):
        validator = AuthTokenValidator(ORIGIN, [trusted])
        assert validator.validate(token, NONCE).country == "NO"


def test_lenient_der_certificate_from_a_real_card_passes(
    validator: AuthTokenValidator, dev_ca: DevCA, keys: dict[str, PrivateKey], citizen: Citizen
) -> None:
    strict = dev_ca.issue(keys["p256"].public_key(), citizen, Purpose.AUTHENTICATION)
    lenient = make_lenient(dev_ca, strict)
    with pytest.raises(ValueError, match="parsing asn1"):
        x509.load_der_x509_certificate(lenient)  # cryptography refuses it ...
    identity = validator.validate(make_token(keys["p256"], lenient, "ES256"), NONCE)  # ... the validator does not
    assert identity.certificate == lenient
    assert identity.id_code == citizen.id_code


def test_lenient_certificate_still_needs_a_valid_ca_signature(
    validator: AuthTokenValidator, dev_ca: DevCA, foreign_ca: DevCA, keys: dict[str, PrivateKey], citizen: Citizen
) -> None:
    strict = dev_ca.issue(keys["p256"].public_key(), citizen, Purpose.AUTHENTICATION)
    forged = make_lenient(foreign_ca, strict)  # same names, signed by another key
    assert refused(validator, make_token(keys["p256"], forged, "ES256")) == "CERTIFICATE_UNTRUSTED"


# One token for each check that fails.


def test_tampered_signature(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    for key_name, algorithm in (("p256", "ES256"), ("rsa2048", "RS256")):
        data = fields(make_token(keys[key_name], auth_certs[key_name], algorithm))
        signature = bytearray(base64.b64decode(data["signature"]))
        signature[len(signature) // 2] ^= 0x01
        data["signature"] = base64.b64encode(bytes(signature)).decode()
        assert refused(validator, json.dumps(data)) == "TOKEN_SIGNATURE_INVALID"


def test_truncated_ecdsa_signature(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    data = fields(make_token(keys["p256"], auth_certs["p256"], "ES256"))
    data["signature"] = base64.b64encode(base64.b64decode(data["signature"])[:-1]).decode()
    assert refused(validator, data) == "TOKEN_SIGNATURE_INVALID"


def test_ecdsa_signature_in_der_instead_of_raw_is_refused(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    key = keys["p256"]
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    der_signature = key.sign(signing_input(ORIGIN, NONCE, "SHA-256"), ec.ECDSA(hashes.SHA256()))
    token = AuthToken(der(auth_certs["p256"]), "ES256", der_signature).to_json()
    assert refused(validator, token) == "TOKEN_SIGNATURE_INVALID"


def test_other_origin(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    token = make_token(keys["p256"], auth_certs["p256"], "ES256", origin="https://evil.example.no")
    with pytest.raises(SignatureInvalidError):
        validator.validate(token, NONCE)


def test_other_nonce(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    token = make_token(keys["p384"], auth_certs["p384"], "ES384")
    other = "X" * 44
    assert refused(validator, token, other) == "TOKEN_SIGNATURE_INVALID"


def test_signature_over_the_base64_decoded_nonce_is_refused(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    # The nonce is signed as the string, never decoded (DESIGN.md).
    key = keys["p256"]
    message = hashes.Hash(hashes.SHA256())
    message.update(ORIGIN.encode())
    origin_hash = message.finalize()
    nonce_hash = hashes.Hash(hashes.SHA256())
    nonce_hash.update(base64.b64decode(NONCE))
    signature = sign(key, "ES256", origin_hash + nonce_hash.finalize())
    token = AuthToken(der(auth_certs["p256"]), "ES256", signature).to_json()
    assert refused(validator, token) == "TOKEN_SIGNATURE_INVALID"


def test_expired_certificate(
    validator: AuthTokenValidator, dev_ca: DevCA, keys: dict[str, PrivateKey], citizen: Citizen
) -> None:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    cert = dev_ca.issue(keys["p256"].public_key(), citizen, Purpose.AUTHENTICATION, not_before=start, days=365)
    assert refused(validator, make_token(keys["p256"], cert, "ES256")) == "CERTIFICATE_EXPIRED"


def test_certificate_not_yet_valid(
    validator: AuthTokenValidator, dev_ca: DevCA, keys: dict[str, PrivateKey], citizen: Citizen
) -> None:
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    cert = dev_ca.issue(keys["p256"].public_key(), citizen, Purpose.AUTHENTICATION, not_before=start)
    assert refused(validator, make_token(keys["p256"], cert, "ES256")) == "CERTIFICATE_NOT_YET_VALID"


def test_validation_time_is_applied_to_a_cached_chain(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    token = make_token(keys["p256"], auth_certs["p256"], "ES256")
    validator.validate(token, NONCE)  # the chain is now cached
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=5000)
    assert refused(validator, token, at=later) == "CERTIFICATE_EXPIRED"
    assert validator.validate(token, NONCE).surname == "Nordmann"


def test_ca_expired_at_validation_time(
    dev_ca: DevCA, keys: dict[str, PrivateKey], citizen: Citizen, tmp_path: Path
) -> None:
    # The leaf outlives the CA: the chain check (not the leaf check) must refuse it.
    cert = dev_ca.issue(keys["p256"].public_key(), citizen, Purpose.AUTHENTICATION, days=20 * 365)
    validator = AuthTokenValidator(ORIGIN, [dev_ca.certificate])
    at = dt.datetime.now(dt.UTC) + dt.timedelta(days=11 * 365)
    assert refused(validator, make_token(keys["p256"], cert, "ES256"), at=at) == "CERTIFICATE_EXPIRED"


def test_untrusted_ca(foreign_ca: DevCA, validator: AuthTokenValidator, keys: dict[str, PrivateKey]) -> None:
    cert = foreign_ca.issue(keys["p256"].public_key(), Citizen(), Purpose.AUTHENTICATION)
    assert refused(validator, make_token(keys["p256"], cert, "ES256")) == "CERTIFICATE_UNTRUSTED"


def test_self_signed_certificate_is_untrusted(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], citizen: Citizen
) -> None:
    key = keys["p256"]
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(citizen.name())
        .issuer_name(citizen.name())
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    assert refused(validator, make_token(key, cert, "ES256")) == "CERTIFICATE_UNTRUSTED"


def test_ca_certificate_as_token_certificate_is_refused(validator: AuthTokenValidator, dev_ca: DevCA) -> None:
    assert refused(validator, make_token(dev_ca.key, dev_ca.certificate, "ES384")) == "CERTIFICATE_NO_IDENTITY"


def test_extended_key_usage_without_client_auth(
    validator: AuthTokenValidator, dev_ca: DevCA, keys: dict[str, PrivateKey], citizen: Citizen
) -> None:
    cert = dev_ca.issue(
        keys["p256"].public_key(),
        citizen,
        Purpose.AUTHENTICATION,
        extended_key_usage=[ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.SERVER_AUTH],
    )
    with pytest.raises(CertificatePurposeError, match="clientAuth"):
        validator.validate(make_token(keys["p256"], cert, "ES256"), NONCE)


def test_extended_key_usage_absent_passes(
    validator: AuthTokenValidator, dev_ca: DevCA, keys: dict[str, PrivateKey], citizen: Citizen
) -> None:
    key_usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    cert = dev_ca.issue(keys["p256"].public_key(), citizen, Purpose.OTHER, key_usage=key_usage)
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert validator.validate(make_token(keys["p256"], cert, "ES256"), NONCE).id_code == citizen.id_code


def test_key_usage_without_digital_signature(
    validator: AuthTokenValidator, dev_ca: DevCA, keys: dict[str, PrivateKey], citizen: Citizen
) -> None:
    cert = dev_ca.issue(keys["p256"].public_key(), citizen, Purpose.AUTHENTICATION, key_usage=KEY_USAGE_NO_SIGNATURE)
    with pytest.raises(CertificatePurposeError, match="digitalSignature"):
        validator.validate(make_token(keys["p256"], cert, "ES256"), NONCE)


def test_signing_certificate_is_refused(
    validator: AuthTokenValidator, dev_ca: DevCA, keys: dict[str, PrivateKey], citizen: Citizen
) -> None:
    cert = dev_ca.issue(keys["p256"].public_key(), citizen, Purpose.SIGNING)  # nonRepudiation only
    assert refused(validator, make_token(keys["p256"], cert, "ES256")) == "CERTIFICATE_WRONG_PURPOSE"


def test_disallowed_policy_default_and_configured(
    dev_ca: DevCA, validator: AuthTokenValidator, keys: dict[str, PrivateKey]
) -> None:
    mobile_id = issue_custom(dev_ca, keys["p256"].public_key(), policies=["1.3.6.1.4.1.10015.1.3.2"])
    token = make_token(keys["p256"], mobile_id, "ES256")
    assert refused(validator, token) == "CERTIFICATE_POLICY_DISALLOWED"
    permissive = AuthTokenValidator(ORIGIN, [dev_ca.certificate], disallowed_policies=[])
    assert permissive.validate(token, NONCE).surname == "Nordmann"
    custom = AuthTokenValidator(ORIGIN, [dev_ca.certificate], disallowed_policies=["1.2.3.4"])
    other = issue_custom(dev_ca, keys["p256"].public_key(), policies=["2.5.29.32.0", "1.2.3.4"])
    assert refused(custom, make_token(keys["p256"], other, "ES256")) == "CERTIFICATE_POLICY_DISALLOWED"
    assert validator.validate(make_token(keys["p256"], other, "ES256"), NONCE).country == "NO"


def test_certificate_without_identification_code(
    validator: AuthTokenValidator, dev_ca: DevCA, keys: dict[str, PrivateKey]
) -> None:
    cert = issue_custom(dev_ca, keys["p256"].public_key(), citizen=NoIdCitizen())
    assert refused(validator, make_token(keys["p256"], cert, "ES256")) == "CERTIFICATE_NO_IDENTITY"


@pytest.mark.parametrize("algorithm", ["ES999", "HS256", "none", "EdDSA", "es256", "ES256 ", "RS1", ""])
def test_unknown_algorithm(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate], algorithm: str
) -> None:
    data = fields(make_token(keys["p256"], auth_certs["p256"], "ES256"))
    data["algorithm"] = algorithm
    assert refused(validator, data) == "TOKEN_ALGORITHM_UNSUPPORTED"


def test_es256_claimed_for_a_p384_key(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    # The signature itself is a correct ECDSA/SHA-256 signature by the P-384 key: only the
    # algorithm/key fit check can refuse it.
    key = keys["p384"]
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    message = signing_input(ORIGIN, NONCE, "SHA-256")
    signature = sign(key, "ES384", message, hash_function="SHA-256")
    key.public_key().verify(_to_der(signature), message, ec.ECDSA(hashes.SHA256()))  # really valid
    token = AuthToken(der(auth_certs["p384"]), "ES256", signature).to_json()
    assert refused(validator, token) == "TOKEN_ALGORITHM_KEY_MISMATCH"


def _to_der(raw: bytes) -> bytes:
    half = len(raw) // 2
    return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))


@pytest.mark.parametrize(
    ("key_name", "algorithm"), [("p256", "ES384"), ("p521", "ES256"), ("p256", "RS256"), ("rsa2048", "ES256")]
)
def test_algorithm_that_does_not_fit_the_key(
    validator: AuthTokenValidator,
    keys: dict[str, PrivateKey],
    auth_certs: dict[str, x509.Certificate],
    key_name: str,
    algorithm: str,
) -> None:
    data = fields(make_token(keys[key_name], auth_certs[key_name], "ES256" if key_name == "p256" else "RS256"))
    if key_name == "p521":
        data = fields(make_token(keys["p521"], auth_certs["p521"], "ES512"))
    data["algorithm"] = algorithm
    assert refused(validator, data) == "TOKEN_ALGORITHM_KEY_MISMATCH"


def test_small_rsa_key_is_refused(validator: AuthTokenValidator, dev_ca: DevCA, citizen: Citizen) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key is the point
    cert = dev_ca.issue(small.public_key(), citizen, Purpose.AUTHENTICATION)
    assert refused(validator, make_token(small, cert, "RS256")) == "TOKEN_ALGORITHM_KEY_MISMATCH"


def test_pss_signature_claimed_as_pkcs1_is_refused(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    token = make_token(keys["rsa2048"], auth_certs["rsa2048"], "RS256", signed_algorithm="PS256")
    assert refused(validator, token) == "TOKEN_SIGNATURE_INVALID"


def test_pss_with_another_salt_length_is_refused(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    key = keys["rsa2048"]
    message = signing_input(ORIGIN, NONCE, "SHA-256")
    assert isinstance(key, rsa.RSAPrivateKey)
    signature = key.sign(message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=0), hashes.SHA256())
    token = AuthToken(der(auth_certs["rsa2048"]), "PS256", signature).to_json()
    assert refused(validator, token) == "TOKEN_SIGNATURE_INVALID"


# The token's shape.


def _valid(keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]) -> dict[str, Any]:
    return fields(make_token(keys["p256"], auth_certs["p256"], "ES256"))


@pytest.mark.parametrize("field", ["unverifiedCertificate", "algorithm", "signature", "format"])
def test_missing_or_mistyped_field(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate], field: str
) -> None:
    data = _valid(keys, auth_certs)
    for value in (None, 42, ["x"], {"a": "b"}, True):
        data[field] = value
        assert refused(validator, json.dumps(data)) == "TOKEN_MALFORMED"
    del data[field]
    assert refused(validator, json.dumps(data)) == "TOKEN_MALFORMED"


def test_app_version_is_optional_but_typed(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    data = _valid(keys, auth_certs)
    data["appVersion"] = 2
    assert refused(validator, data) == "TOKEN_MALFORMED"
    del data["appVersion"]
    assert validator.validate(data, NONCE).given_name == "Kari"


@pytest.mark.parametrize("field", ["unverifiedCertificate", "signature"])
@pytest.mark.parametrize("mangle", ["urlsafe", "no-padding", "whitespace", "non-ascii", "empty"])
def test_not_standard_base64(
    validator: AuthTokenValidator,
    keys: dict[str, PrivateKey],
    auth_certs: dict[str, x509.Certificate],
    field: str,
    mangle: str,
) -> None:
    data = _valid(keys, auth_certs)
    raw = base64.b64decode(data[field])
    if mangle == "urlsafe":
        while b"+" not in base64.b64encode(raw) and b"/" not in base64.b64encode(raw):
            raw = raw + b"\xfb\xff"
        data[field] = base64.urlsafe_b64encode(raw).decode()
    elif mangle == "no-padding":
        while len(raw) % 3 == 0:
            raw = raw + b"\x00"
        data[field] = base64.b64encode(raw).decode().rstrip("=")
    elif mangle == "whitespace":
        data[field] = data[field][:8] + "\n" + data[field][8:]
    elif mangle == "non-ascii":
        data[field] = data[field][:8] + "é" + data[field][8:]
    else:
        data[field] = ""
    assert refused(validator, data) == "TOKEN_MALFORMED"


def test_unsupported_format(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    data = _valid(keys, auth_certs)
    for fmt in ("web-eid:2.0", "web-eid:0.9", "WEB-EID:1.0", "", "cardbridge:1.0"):
        data["format"] = fmt
        assert refused(validator, data) == "TOKEN_FORMAT_UNSUPPORTED"


def test_length_limits(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    token = json.dumps(_valid(keys, auth_certs))
    assert refused(validator, "{}") == "TOKEN_MALFORMED"
    assert refused(validator, "{" + " " * 98 + "}") == "TOKEN_MALFORMED"  # 100 characters: long enough, no fields
    padded = token[:-1] + ', "x": "' + "a" * (10001 - len(token) - 8) + '"}'
    assert len(padded) > 10000
    with pytest.raises(TokenValidationError, match="10000"):
        validator.validate(padded, NONCE)


@pytest.mark.parametrize(
    "token",
    ["[" + "1," * 60 + "1]", '"' + "a" * 120 + '"', "not json at all " * 10, "[" * 5000, "{" + '"a":' * 3000],
)
def test_not_a_json_object(validator: AuthTokenValidator, token: str) -> None:
    assert refused(validator, token) == "TOKEN_MALFORMED"


def test_duplicate_field_is_refused(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    token = make_token(keys["p256"], auth_certs["p256"], "ES256")
    doubled = token[:-1] + ',"algorithm":"ES256"}'
    assert refused(validator, doubled) == "TOKEN_MALFORMED"


def test_certificate_that_does_not_parse(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    data = _valid(keys, auth_certs)
    cert = base64.b64decode(data["unverifiedCertificate"])
    for broken in (b"\x30\x03\x02\x01\x01", cert[:-10], cert + b"\x00\x00", b"garbage" * 20):
        data["unverifiedCertificate"] = base64.b64encode(broken).decode()
        assert refused(validator, data) == "CERTIFICATE_MALFORMED"


def _with_signature_unused_bits(cert_der: bytes, unused_bits: int) -> bytes:
    """The certificate with the first content octet of its signatureValue BIT STRING (the
    count of unused bits in the last octet) set to ``unused_bits``; nothing else changes."""
    signature_value = asn1x509.Certificate.load(cert_der)["signature_value"]
    encoded = signature_value.dump()
    assert cert_der.endswith(encoded)  # the last field of the certificate
    at = len(cert_der) - len(signature_value.contents)
    assert cert_der[at] == 0
    return cert_der[:at] + bytes([unused_bits]) + cert_der[at + 1 :]


@pytest.mark.parametrize("key_name", ["p256", "rsa2048"])
@pytest.mark.parametrize("unused_bits", range(1, 8))
def test_signature_bit_string_with_unused_bits_is_refused(
    validator: AuthTokenValidator,
    dev_ca: DevCA,
    keys: dict[str, PrivateKey],
    citizen: Citizen,
    key_name: str,
    unused_bits: int,
) -> None:
    # DER (X.690 11.2) and RFC 5280: a signature is a whole number of octets, so its BIT
    # STRING has 0 unused bits. asn1crypto and pyhanko-certvalidator read a count of k as
    # "drop the last k bits": when those bits are zero the CA's signature still verifies and
    # the certificate was accepted. Such a certificate (the CA signs with ECDSA, so a fresh
    # issue gives another signature) is refused with one code, whatever k.
    algorithm = "ES256" if key_name == "p256" else "RS256"
    for _ in range(4000):  # 2**k issues on average, 128 at most on average
        original = der(dev_ca.issue(keys[key_name].public_key(), citizen, Purpose.AUTHENTICATION))
        if original[-1] % (1 << unused_bits) == 0:
            break
    else:
        pytest.fail(f"no signature ending in {unused_bits} zero bits")
    assert validator.validate(make_token(keys[key_name], _with_signature_unused_bits(original, 0), algorithm), NONCE)
    odd = _with_signature_unused_bits(original, unused_bits)
    assert refused(validator, make_token(keys[key_name], odd, algorithm)) == "CERTIFICATE_MALFORMED"


def test_malformed_nonce_and_naive_time(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    token = make_token(keys["p256"], auth_certs["p256"], "ES256")
    assert refused(validator, token, "short") == "INVALID_NONCE"
    assert refused(validator, token, NONCE + " ") == "INVALID_NONCE"
    with pytest.raises(InvalidInputError):
        validator.validate(token, NONCE, at=dt.datetime(2026, 1, 1))  # naive: refused


def test_nonce_store_consumes_the_nonce_first(
    dev_ca: DevCA, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    store = InMemoryNonceStore()
    validator = AuthTokenValidator(ORIGIN, [dev_ca.certificate], nonce_store=store)
    nonce = store.issue()
    token = make_token(keys["p256"], auth_certs["p256"], "ES256", nonce=nonce)
    assert refused(validator, token, NONCE) == "NONCE_UNKNOWN"
    assert validator.validate(token, nonce).surname == "Nordmann"
    assert refused(validator, token, nonce) == "NONCE_USED"
    # A refused token still uses up its nonce: one try per nonce.
    nonce = store.issue()
    bad = make_token(keys["p256"], auth_certs["p256"], "ES256", nonce=NONCE)
    assert refused(validator, bad, nonce) == "TOKEN_SIGNATURE_INVALID"
    assert refused(validator, make_token(keys["p256"], auth_certs["p256"], "ES256", nonce=nonce), nonce) == "NONCE_USED"


async def test_validate_works_under_a_running_event_loop(
    dev_ca: DevCA, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    # An aiohttp handler calling validate() directly: the chain check must still run.
    validator = AuthTokenValidator(ORIGIN, [dev_ca.certificate], chain_cache_size=0)
    token = make_token(keys["p256"], auth_certs["p256"], "ES256")
    assert validator.validate(token, NONCE).surname == "Nordmann"
    assert validator.validate(token, NONCE).surname == "Nordmann"


def test_configuration_errors(dev_ca: DevCA) -> None:
    pem = dev_ca.certificate.public_bytes(serialization.Encoding.PEM)
    for origin in ("https://Login.example.no", "http://login.example.no", "https://login.example.no/", "login"):
        with pytest.raises(ConfigError):
            AuthTokenValidator(origin, [pem])
    with pytest.raises(ConfigError):
        AuthTokenValidator(ORIGIN, [])
    with pytest.raises(ConfigError):
        AuthTokenValidator(ORIGIN, [b"not a certificate"])
    with pytest.raises(ConfigError):
        AuthTokenValidator(ORIGIN, [pem], disallowed_policies=["mobile-id"])
    with pytest.raises(ConfigError):
        AuthTokenValidator(ORIGIN, [pem], ocsp_url="http://127.0.0.1:1/")
    with pytest.raises(ConfigError):
        AuthTokenValidator(ORIGIN, [pem], ocsp_check=True, ocsp_url="http://127.0.0.1:1/")
    with pytest.raises(ConfigError):
        AuthTokenValidator(
            ORIGIN, [pem], ocsp_check=True, ocsp_url="file:///etc/passwd", ocsp_responder_certificate=pem
        )
    dev = AuthTokenValidator("http://localhost:8080", [pem + pem], allow_http_localhost=True)
    assert dev.site_origin == "http://localhost:8080"


@pytest.mark.parametrize("extra", ['"x":NaN', '"x":Infinity', '"x":' + "1" * 100])
def test_a_token_with_what_strict_json_refuses_is_malformed(
    validator: AuthTokenValidator, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate], extra: str
) -> None:
    """The validator reads tokens with cardbridge.strictjson (the bridge's own reader)."""
    token = make_token(keys["p256"], auth_certs["p256"], "ES256")
    assert refused(validator, token[:-1] + "," + extra + "}") == "TOKEN_MALFORMED"
