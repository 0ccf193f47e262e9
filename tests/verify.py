"""Independent verification of auth tokens with ``cryptography`` (not the signing code)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

_HASHES = {
    "256": (hashlib.sha256, hashes.SHA256),
    "384": (hashlib.sha384, hashes.SHA384),
    "512": (hashlib.sha512, hashes.SHA512),
}


def verify_token(token: dict[str, Any], origin: str, nonce: str) -> x509.Certificate:
    """Raise ``InvalidSignature`` unless ``token`` signs ``H(origin) || H(nonce)``."""
    algorithm = token["algorithm"]
    hash_fn, hash_cls = _HASHES[algorithm[2:]]
    message = hash_fn(origin.encode()).digest() + hash_fn(nonce.encode()).digest()
    cert = x509.load_der_x509_certificate(base64.b64decode(token["unverifiedCertificate"], validate=True))
    signature = base64.b64decode(token["signature"], validate=True)
    key = cert.public_key()
    if algorithm.startswith("ES"):
        assert isinstance(key, ec.EllipticCurvePublicKey)
        half = len(signature) // 2
        assert half == (key.curve.key_size + 7) // 8, "raw r||s of the curve's length"
        der = encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
        key.verify(der, message, ec.ECDSA(hash_cls()))
    elif algorithm.startswith("RS"):
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(signature, message, padding.PKCS1v15(), hash_cls())
    elif algorithm.startswith("PS"):
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(signature, message, padding.PSS(padding.MGF1(hash_cls()), padding.PSS.AUTO), hash_cls())
    else:
        raise AssertionError(f"unknown algorithm {algorithm}")
    return cert
