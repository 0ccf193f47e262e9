import hashlib
import json

import pytest

from cardbridge.authtoken import AuthToken, authentication_digest, check_nonce, check_origin, signing_input
from cardbridge.errors import Code, InvalidNonceError, InvalidOriginError
from cardbridge.model import SignatureAlgorithm

NONCE = "A" * 43 + "="


@pytest.mark.parametrize(
    "origin",
    [
        "https://login.example.no",
        "https://xn--bcher-kva.example",
        "https://a.example:8443",
        "https://127.0.0.1:9000",
        "https://[::1]:8443",
    ],
)
def test_good_origins(origin: str) -> None:
    assert check_origin(origin) == origin


@pytest.mark.parametrize(
    "origin",
    [
        "http://example.com",
        "https://a.example/path",
        "https://a.example/",
        "https://A.example",
        "https://a.example:443",
        "https://" + "a" * 243 + ".example",  # 256 characters
        "https://bücher.example",
        "https://a.example?x=1",
        "https://a.example#f",
        "https://user@a.example",
        "https://a.example:0",
        "https://a.example:65536",
        "https://a.example:08443",
        "https://a.example.",
        "https://-a.example",
        "https://",
        "ftp://a.example",
        "null",
        "",
        "https://[::0001]",
        "http://localhost:8080",
        "https://xn--zz.example",
    ],
)
def test_bad_origins(origin: str) -> None:
    with pytest.raises(InvalidOriginError) as info:
        check_origin(origin)
    assert info.value.code == Code.INVALID_ORIGIN


def test_256_character_origin_is_refused_and_255_accepted() -> None:
    base = "https://" + "a" * 50 + "." + "b" * 50 + "." + "c" * 50 + "." + "d" * 50 + "."
    ok = base + "e" * (255 - len(base))
    assert len(ok) == 255
    assert check_origin(ok) == ok
    with pytest.raises(InvalidOriginError):
        check_origin(ok + "e")


def test_http_localhost_only_when_allowed() -> None:
    assert check_origin("http://localhost:8080", allow_http_localhost=True)
    assert check_origin("http://127.0.0.1:8080", allow_http_localhost=True)
    with pytest.raises(InvalidOriginError):
        check_origin("http://example.com", allow_http_localhost=True)
    with pytest.raises(InvalidOriginError):
        check_origin("http://localhost:80", allow_http_localhost=True)


@pytest.mark.parametrize(
    "nonce", ["A" * 43, "A" * 129, "A" * 43 + "\n", "A" * 20 + "\x00" + "A" * 30, "A" * 44 + " ", 12]
)
def test_bad_nonces(nonce: object) -> None:
    with pytest.raises(InvalidNonceError) as info:
        check_nonce(nonce)
    assert info.value.code == Code.INVALID_NONCE


@pytest.mark.parametrize("nonce", ["A" * 44, "A" * 128, "+/=" * 20])
def test_good_nonces(nonce: str) -> None:
    assert check_nonce(nonce) == nonce


def test_signing_input_is_hash_of_origin_then_hash_of_nonce_string() -> None:
    origin = "https://ria.ee"
    nonce = "12345678123456781234567812345678912356789123"
    expected = hashlib.sha384(origin.encode()).digest() + hashlib.sha384(nonce.encode()).digest()
    assert signing_input(origin, nonce, "SHA-384") == expected
    algorithm = SignatureAlgorithm.from_jws("ES384")
    assert authentication_digest(origin, nonce, algorithm) == hashlib.sha384(expected).digest()


def test_algorithm_names_round_trip() -> None:
    for name in ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
        assert SignatureAlgorithm.from_jws(name).jws == name
    for bad in ("ES1", "HS256", "none", "RS"):
        with pytest.raises(KeyError):
            SignatureAlgorithm.from_jws(bad)


def test_token_json_has_the_web_eid_fields() -> None:
    token = AuthToken(b"\x30\x82", "ES384", b"\x01" * 96)
    data = json.loads(token.to_json())
    assert data == {
        "unverifiedCertificate": "MII=",
        "algorithm": "ES384",
        "signature": "AQEB" * 32,
        "format": "web-eid:1.0",
        "appVersion": token.app_version,
    }
    assert data["appVersion"].startswith("https://")
