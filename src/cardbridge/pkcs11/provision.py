"""Put keys and certificates on a writable PKCS#11 token (used for SoftHSM2 dev tokens).

Keys are generated on the token and never leave it; the caller gets the public key, has
it certified, and stores the certificate next to the key under the same CKA_ID.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

import pkcs11
from cardbridge.errors import InvalidInputError, NoTokenError
from cardbridge.pkcs11.errors import convert
from pkcs11 import Attribute, CertificateType, KeyType, ObjectClass

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
_CURVES = {"ec-p256": "secp256r1", "ec-p384": "secp384r1", "ec-p521": "secp521r1"}


class TokenWriter:
    """A logged-in read-write session on the token labelled ``label``."""

    def __init__(self, module: str, label: str, pin: str) -> None:
        try:
            lib = pkcs11.lib(module)
            token = lib.get_token(token_label=label)
            self._session: Any = token.open(rw=True, user_pin=pin)
        except pkcs11.NoSuchToken as exc:
            raise NoTokenError(f"No token labelled {label!r} in {module}.") from exc
        except pkcs11.PKCS11Error as exc:
            raise convert(exc, "opening the token for writing") from exc

    def __enter__(self) -> TokenWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._session.close()

    def generate_key(self, kind: str, key_id: bytes, label: str) -> PublicKey:
        """Generate a signing key pair on the token; returns its public key."""
        common = {Attribute.TOKEN: True, Attribute.ID: key_id, Attribute.LABEL: label}
        private = {**common, Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False}
        try:
            if kind in _CURVES:
                params = self._session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[kind])}, local=True
                )
                public, _ = params.generate_keypair(store=True, public_template=common, private_template=private)
                spki = encode_ec_public_key(public)
                key = serialization.load_der_public_key(spki)
            elif kind.startswith("rsa-"):
                bits = int(kind.removeprefix("rsa-"))
                public, _ = self._session.generate_keypair(
                    KeyType.RSA, bits, store=True, public_template=common, private_template=private
                )
                modulus = int.from_bytes(public[Attribute.MODULUS], "big")
                exponent = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
                key = rsa.RSAPublicNumbers(exponent, modulus).public_key()
            else:
                raise InvalidInputError(f"Unknown key type {kind!r}.")
        except pkcs11.PKCS11Error as exc:
            raise convert(exc, "generating a key") from exc
        if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise InvalidInputError("unexpected public key type")
        return key

    def store_certificate(self, der: bytes, subject_der: bytes, key_id: bytes, label: str) -> None:
        """Store an X.509 certificate object under ``key_id``."""
        try:
            self._session.create_object(
                {
                    Attribute.CLASS: ObjectClass.CERTIFICATE,
                    Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: False,
                    Attribute.ID: key_id,
                    Attribute.LABEL: label,
                    Attribute.SUBJECT: subject_der,
                    Attribute.VALUE: der,
                }
            )
        except pkcs11.PKCS11Error as exc:
            raise convert(exc, "storing a certificate") from exc
