"""The model's enums are the strings of the wire: Web eID's algorithm names, the token's
``algorithm``, ``list --json``'s ``keyType`` and ``backend``, byte for byte as before."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from cardbridge.model import (
    CURVE_HASHES,
    DIGEST_INFO_PREFIXES,
    HASH_LENGTHS,
    BackendKind,
    CertificateInfo,
    CryptoAlgorithm,
    HashFunction,
    KeyType,
    Padding,
    Purpose,
    SignatureAlgorithm,
    TokenInfo,
    hash_bytes,
)


@pytest.mark.parametrize(
    ("jws", "webeid"),
    [
        ("ES256", '{"cryptoAlgorithm": "ECC", "hashFunction": "SHA-256", "paddingScheme": "NONE"}'),
        ("ES384", '{"cryptoAlgorithm": "ECC", "hashFunction": "SHA-384", "paddingScheme": "NONE"}'),
        ("RS512", '{"cryptoAlgorithm": "RSA", "hashFunction": "SHA-512", "paddingScheme": "PKCS1.5"}'),
        ("PS256", '{"cryptoAlgorithm": "RSA", "hashFunction": "SHA-256", "paddingScheme": "PSS"}'),
    ],
)
def test_an_algorithm_on_the_wire_is_web_eids_strings(jws: str, webeid: str) -> None:
    algorithm = SignatureAlgorithm.from_jws(jws)
    assert json.dumps(algorithm.to_webeid()) == webeid
    assert algorithm.jws == jws
    # The same algorithm made from the wire's strings is equal, and hashes alike (a set, a dict key).
    fields = json.loads(webeid)
    plain = SignatureAlgorithm(fields["cryptoAlgorithm"], fields["hashFunction"], fields["paddingScheme"])
    assert plain == algorithm and hash(plain) == hash(algorithm) and algorithm in {plain}


def test_the_members_are_the_strings_they_replace() -> None:
    assert [str(m) for m in CryptoAlgorithm] == ["ECC", "RSA"]
    assert [str(m) for m in HashFunction] == ["SHA-224", "SHA-256", "SHA-384", "SHA-512"]
    assert [str(m) for m in Padding] == ["NONE", "PKCS1.5", "PSS"]
    assert [str(m) for m in KeyType] == ["EC", "RSA"]
    assert [str(m) for m in BackendKind] == ["pkcs11", "pcsc"]
    # The tables keyed by hash find a hash given as the wire's string too.
    for table in (HASH_LENGTHS, DIGEST_INFO_PREFIXES):
        assert table["SHA-384"] is table[HashFunction.SHA384]
    assert CURVE_HASHES["secp384r1"] == "SHA-384"
    assert hash_bytes("SHA-256", b"") == hash_bytes(HashFunction.SHA256, b"")


def test_a_listing_on_the_wire_is_unchanged() -> None:
    now = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
    certificate = CertificateInfo(b"\x30", "CN=X", "CN=CA", "01", now, now, KeyType.EC, 384, "secp384r1", Purpose.OTHER)
    info = TokenInfo(BackendKind.PKCS11, "/usr/lib/softhsm/libsofthsm2.so", "p384")
    assert json.dumps(certificate.to_dict()["keyType"]) == '"EC"'
    assert json.dumps(info.to_dict()).startswith('{"backend": "pkcs11", "source": ')
    assert f"{certificate.key_type} {certificate.key_size}" == "EC 384"  # as `cardbridge list` prints it
