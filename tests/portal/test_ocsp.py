"""OCSP against a real responder on loopback: good, revoked, unknown, stale, wrong signer, …"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cardbridge.emulator.devpki import Citizen, DevCA, PrivateKey
from cardbridge.model import Purpose
from cardbridge.portal import AuthTokenValidator, TokenValidationError
from tests.portal.helpers import NONCE, ORIGIN, der, issue_custom, make_token
from tests.portal.ocsp_responder import Behaviour, Responder, serve


@pytest.fixture(scope="module")
def responder_server(dev_ca: DevCA) -> Iterator[Responder]:
    with serve(Responder(ca_key=dev_ca.key, ca_cert=dev_ca.certificate)) as responder:
        yield responder


@pytest.fixture
def responder(responder_server: Responder) -> Responder:
    responder_server.reset()
    return responder_server


@pytest.fixture(scope="module")
def card_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def aia_cert(dev_ca: DevCA, card_key: ec.EllipticCurvePrivateKey, responder_server: Responder) -> x509.Certificate:
    return issue_custom(dev_ca, card_key.public_key(), ocsp_url=responder_server.url)


@pytest.fixture(scope="module")
def aia_validator(dev_ca: DevCA) -> AuthTokenValidator:
    return AuthTokenValidator(ORIGIN, [dev_ca.certificate], ocsp_check=True)


def _responder_cert(
    issuer_key: PrivateKey, issuer_name: x509.Name, key: ec.EllipticCurvePrivateKey, *, eku: bool = True
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cardbridge test OCSP responder")]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def code(validator: AuthTokenValidator, token: str, **kwargs: Any) -> str:
    with pytest.raises(TokenValidationError) as info:
        validator.validate(token, NONCE, **kwargs)
    return str(info.value.code)


def test_good_status_from_the_aia_responder(
    aia_validator: AuthTokenValidator,
    responder: Responder,
    dev_ca: DevCA,
    card_key: PrivateKey,
    aia_cert: x509.Certificate,
) -> None:
    identity = aia_validator.validate(make_token(card_key, aia_cert, "ES256"), NONCE)
    assert identity.id_code == Citizen().id_code
    (request,) = responder.requests
    assert request.serial_number == aia_cert.serial_number
    # The CertID is the one any OCSP client computes for this certificate and issuer.
    reference = ocsp.OCSPRequestBuilder().add_certificate(aia_cert, dev_ca.certificate, hashes.SHA1()).build()  # noqa: S303
    assert (request.issuer_name_hash, request.issuer_key_hash) == (
        reference.issuer_name_hash,
        reference.issuer_key_hash,
    )
    assert isinstance(request.hash_algorithm, hashes.SHA1)
    nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    assert len(nonce) == 32
    # A fresh nonce for every request.
    aia_validator.validate(make_token(card_key, aia_cert, "ES256"), NONCE)
    assert responder.requests[1].extensions.get_extension_for_class(x509.OCSPNonce).value.nonce != nonce


def test_revoked(
    aia_validator: AuthTokenValidator, responder: Responder, card_key: PrivateKey, aia_cert: x509.Certificate
) -> None:
    responder.behaviour = Behaviour(status="revoked")
    assert code(aia_validator, make_token(card_key, aia_cert, "ES256")) == "OCSP_REVOKED"


def test_unknown(
    aia_validator: AuthTokenValidator, responder: Responder, card_key: PrivateKey, aia_cert: x509.Certificate
) -> None:
    responder.behaviour = Behaviour(status="unknown")
    assert code(aia_validator, make_token(card_key, aia_cert, "ES256")) == "OCSP_UNKNOWN"


@pytest.mark.parametrize(
    ("this_update", "next_update", "expected"),
    [
        (dt.timedelta(hours=-1), None, "OCSP_STALE"),
        (dt.timedelta(minutes=-20), dt.timedelta(hours=1), "OCSP_STALE"),
        (dt.timedelta(minutes=20), dt.timedelta(hours=1), "OCSP_STALE"),
        (dt.timedelta(minutes=-10), dt.timedelta(minutes=-10), "OCSP_STALE"),  # nextUpdate passed 20 min ago
        (dt.timedelta(minutes=-10), dt.timedelta(hours=1), None),
        (dt.timedelta(minutes=10), None, None),
    ],
)
def test_update_times(
    aia_validator: AuthTokenValidator,
    responder: Responder,
    card_key: PrivateKey,
    aia_cert: x509.Certificate,
    this_update: dt.timedelta,
    next_update: dt.timedelta | None,
    expected: str | None,
) -> None:
    responder.behaviour = Behaviour(this_update=this_update, next_update=next_update)
    token = make_token(card_key, aia_cert, "ES256")
    if expected is None:
        assert aia_validator.validate(token, NONCE).surname == "Nordmann"
    else:
        assert code(aia_validator, token) == expected


@pytest.mark.parametrize("by_name", [False, True])
def test_wrong_signer(
    aia_validator: AuthTokenValidator,
    responder: Responder,
    foreign_ca: DevCA,
    card_key: PrivateKey,
    aia_cert: x509.Certificate,
    by_name: bool,
) -> None:
    # A CA with the very same name but another key: by name it claims to be the issuer.
    responder.behaviour = Behaviour(
        signer_key=foreign_ca.key, signer_cert=foreign_ca.certificate, responder_id_by_name=by_name
    )
    assert code(aia_validator, make_token(card_key, aia_cert, "ES256")) == "OCSP_SIGNER_UNTRUSTED"


def test_delegated_responder(
    aia_validator: AuthTokenValidator,
    responder: Responder,
    dev_ca: DevCA,
    foreign_ca: DevCA,
    card_key: PrivateKey,
    aia_cert: x509.Certificate,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = make_token(card_key, aia_cert, "ES256")
    delegated = _responder_cert(dev_ca.key, dev_ca.certificate.subject, key)
    responder.behaviour = Behaviour(signer_key=key, signer_cert=delegated, include_signer_cert=True)
    assert aia_validator.validate(token, NONCE).country == "NO"
    responder.behaviour.responder_id_by_name = True
    assert aia_validator.validate(token, NONCE).country == "NO"
    # Without id-kp-OCSPSigning, or issued by another CA, or not sent along: refused.
    no_eku = _responder_cert(dev_ca.key, dev_ca.certificate.subject, key, eku=False)
    responder.behaviour = Behaviour(signer_key=key, signer_cert=no_eku, include_signer_cert=True)
    assert code(aia_validator, token) == "OCSP_SIGNER_UNTRUSTED"
    foreign = _responder_cert(foreign_ca.key, dev_ca.certificate.subject, key)
    responder.behaviour = Behaviour(signer_key=key, signer_cert=foreign, include_signer_cert=True)
    assert code(aia_validator, token) == "OCSP_SIGNER_UNTRUSTED"
    responder.behaviour = Behaviour(signer_key=key, signer_cert=delegated, include_signer_cert=False)
    assert code(aia_validator, token) == "OCSP_SIGNER_UNTRUSTED"


def test_designated_responder_with_pinned_certificate(
    dev_ca: DevCA, responder: Responder, keys: dict[str, PrivateKey], auth_certs: dict[str, x509.Certificate]
) -> None:
    # The certificate has no AIA; the portal names the responder and pins its certificate.
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "designated responder")])
    pinned = _responder_cert(key, name, key)  # self-signed, issued by no CA the portal trusts
    validator = AuthTokenValidator(
        ORIGIN,
        [dev_ca.certificate],
        ocsp_check=True,
        ocsp_url=responder.url,
        ocsp_responder_certificate=der(pinned),
    )
    token = make_token(keys["p384"], auth_certs["p384"], "ES384")
    responder.behaviour = Behaviour(signer_key=key, signer_cert=pinned)
    assert validator.validate(token, NONCE).surname == "Nordmann"
    responder.behaviour = Behaviour(signer_key=key, signer_cert=pinned, status="revoked")
    assert code(validator, token) == "OCSP_REVOKED"
    # The CA itself is not the pinned responder.
    responder.behaviour = Behaviour()
    assert code(validator, token) == "OCSP_SIGNER_UNTRUSTED"
    # Another key with a certificate of the pinned certificate's name.
    impostor = ec.generate_private_key(ec.SECP384R1())
    impostor_cert = _responder_cert(impostor, name, impostor)
    responder.behaviour = Behaviour(signer_key=impostor, signer_cert=impostor_cert, responder_id_by_name=True)
    assert code(validator, token) == "OCSP_SIGNER_UNTRUSTED"


def test_nonce_rules(
    dev_ca: DevCA,
    aia_validator: AuthTokenValidator,
    responder: Responder,
    card_key: PrivateKey,
    aia_cert: x509.Certificate,
) -> None:
    token = make_token(card_key, aia_cert, "ES256")
    responder.behaviour = Behaviour(nonce="omit")
    assert code(aia_validator, token) == "OCSP_NONCE_MISMATCH"
    responder.behaviour = Behaviour(nonce="other")
    assert code(aia_validator, token) == "OCSP_NONCE_MISMATCH"
    lax = AuthTokenValidator(ORIGIN, [dev_ca.certificate], ocsp_check=True, ocsp_require_nonce=False)
    responder.behaviour = Behaviour(nonce="omit")
    assert lax.validate(token, NONCE).surname == "Nordmann"
    responder.behaviour = Behaviour(nonce="other")
    assert code(lax, token) == "OCSP_NONCE_MISMATCH"


def test_response_about_another_certificate(
    aia_validator: AuthTokenValidator, responder: Responder, card_key: PrivateKey, aia_cert: x509.Certificate
) -> None:
    responder.behaviour = Behaviour(serial_offset=1)
    assert code(aia_validator, make_token(card_key, aia_cert, "ES256")) == "OCSP_INVALID_RESPONSE"


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        (Behaviour(http_status=500), "OCSP_UNAVAILABLE"),
        (Behaviour(garbage=True), "OCSP_INVALID_RESPONSE"),
        (Behaviour(unsuccessful=True), "OCSP_INVALID_RESPONSE"),
    ],
)
def test_broken_responder(
    aia_validator: AuthTokenValidator,
    responder: Responder,
    card_key: PrivateKey,
    aia_cert: x509.Certificate,
    behaviour: Behaviour,
    expected: str,
) -> None:
    responder.behaviour = behaviour
    assert code(aia_validator, make_token(card_key, aia_cert, "ES256")) == expected


def test_timeout(dev_ca: DevCA, responder: Responder, card_key: PrivateKey, aia_cert: x509.Certificate) -> None:
    validator = AuthTokenValidator(ORIGIN, [dev_ca.certificate], ocsp_check=True, ocsp_timeout=0.3)
    responder.behaviour = Behaviour(delay=1.0)
    assert code(validator, make_token(card_key, aia_cert, "ES256")) == "OCSP_UNAVAILABLE"


def test_no_responder(
    aia_validator: AuthTokenValidator,
    dev_ca: DevCA,
    keys: dict[str, PrivateKey],
    auth_certs: dict[str, x509.Certificate],
) -> None:
    # No AIA in the certificate, no designated responder.
    assert code(aia_validator, make_token(keys["p256"], auth_certs["p256"], "ES256")) == "OCSP_UNAVAILABLE"
    # A responder that does not listen.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cert = issue_custom(dev_ca, keys["p256"].public_key(), ocsp_url=f"http://127.0.0.1:{port}/")
    assert code(aia_validator, make_token(keys["p256"], cert, "ES256")) == "OCSP_UNAVAILABLE"


def test_non_http_aia_url_is_not_fetched(
    aia_validator: AuthTokenValidator, dev_ca: DevCA, keys: dict[str, PrivateKey]
) -> None:
    cert = issue_custom(dev_ca, keys["p256"].public_key(), ocsp_url="file:///etc/hostname")
    assert code(aia_validator, make_token(keys["p256"], cert, "ES256")) == "OCSP_UNAVAILABLE"


def test_no_ocsp_request_for_a_token_that_fails_earlier(
    aia_validator: AuthTokenValidator, responder: Responder, card_key: PrivateKey, aia_cert: x509.Certificate
) -> None:
    token = make_token(card_key, aia_cert, "ES256", nonce="Z" * 44)
    assert code(aia_validator, token) == "TOKEN_SIGNATURE_INVALID"
    assert responder.requests == []


def test_rsa_certificate_with_ocsp(dev_ca: DevCA, responder: Responder, keys: dict[str, PrivateKey]) -> None:
    cert = issue_custom(dev_ca, keys["rsa2048"].public_key(), ocsp_url=responder.url)
    validator = AuthTokenValidator(ORIGIN, [dev_ca.certificate], ocsp_check=True)
    assert validator.validate(make_token(keys["rsa2048"], cert, "PS256"), NONCE).id_code == Citizen().id_code
    responder.behaviour = Behaviour(status="revoked")
    assert code(validator, make_token(keys["rsa2048"], cert, "RS256")) == "OCSP_REVOKED"


def test_signing_purpose_unchanged_by_ocsp(dev_ca: DevCA, keys: dict[str, PrivateKey], responder: Responder) -> None:
    cert = dev_ca.issue(keys["p256"].public_key(), Citizen(), Purpose.SIGNING)
    validator = AuthTokenValidator(ORIGIN, [dev_ca.certificate], ocsp_check=True)
    assert code(validator, make_token(keys["p256"], cert, "ES256")) == "CERTIFICATE_WRONG_PURPOSE"
    assert responder.requests == []
