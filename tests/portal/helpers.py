"""Making tokens and certificates for the portal tests: software keys, the development CA."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from asn1crypto import x509 as asn1x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from cardbridge.authtoken import AuthToken, signing_input
from cardbridge.emulator.devpki import Citizen, DevCA, PrivateKey
from cardbridge.model import Purpose, SignatureAlgorithm

ORIGIN = "https://login.example.no"
NONCE = "Q2FyZGJyaWRnZSB0ZXN0IG5vbmNlIDAxMjM0NTY3ODk="  # 44 characters

HASHES: dict[str, hashes.HashAlgorithm] = {
    "SHA-256": hashes.SHA256(),
    "SHA-384": hashes.SHA384(),
    "SHA-512": hashes.SHA512(),
}


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def sign(key: PrivateKey, algorithm: str, message: bytes, *, hash_function: str | None = None) -> bytes:
    """What a card returns for ``algorithm`` over ``message``: raw r||s for ECDSA."""
    alg = SignatureAlgorithm.from_jws(algorithm)
    hash_algorithm = HASHES[hash_function or alg.hash_function]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hash_algorithm)))
        half = (key.curve.key_size + 7) // 8
        return r.to_bytes(half, "big") + s.to_bytes(half, "big")
    assert isinstance(key, rsa.RSAPrivateKey)
    if alg.padding == "PSS":
        pss = padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size)
        return key.sign(message, pss, hash_algorithm)
    return key.sign(message, padding.PKCS1v15(), hash_algorithm)


def make_token(
    key: PrivateKey,
    cert: x509.Certificate | bytes,
    algorithm: str,
    *,
    origin: str = ORIGIN,
    nonce: str = NONCE,
    signed_algorithm: str | None = None,
) -> str:
    """A token as cardbridge makes it: ``algorithm`` signed over H(origin) || H(nonce).

    ``signed_algorithm`` signs with another algorithm than the token claims."""
    alg = SignatureAlgorithm.from_jws(signed_algorithm or algorithm)
    message = signing_input(origin, nonce, alg.hash_function)
    signature = sign(key, signed_algorithm or algorithm, message)
    cert_der = cert if isinstance(cert, bytes) else der(cert)
    return AuthToken(unverified_certificate=cert_der, algorithm=algorithm, signature=signature).to_json()


@dataclass(frozen=True)
class NoIdCitizen(Citizen):
    """A citizen whose certificate has no subject serialNumber."""

    def name(self) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "NO"),
                x509.NameAttribute(NameOID.COMMON_NAME, self.common_name),
            ]
        )


def issue_custom(
    ca: DevCA,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    *,
    citizen: Citizen | None = None,
    ocsp_url: str | None = None,
    policies: list[str] | None = None,
    extended_key_usage: list[x509.ObjectIdentifier] | None = None,
    not_before: dt.datetime | None = None,
    days: int = 365,
) -> x509.Certificate:
    """An authentication certificate from DevCA.issue, plus AIA (OCSP) and policies."""
    extra: list[x509.ExtensionType] = []
    if ocsp_url is not None:
        extra.append(
            x509.AuthorityInformationAccess(
                [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]
            )
        )
    if policies:
        extra.append(
            x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(p), None) for p in policies])
        )
    return ca.issue(
        public_key,
        citizen or Citizen(),
        Purpose.AUTHENTICATION,
        not_before=not_before,
        days=days,
        extended_key_usage=extended_key_usage,
        extensions=extra,
    )


def make_lenient(ca: DevCA, cert: x509.Certificate) -> bytes:
    """``cert`` with its first BOOLEAN TRUE encoded as 0x01 (BER, not DER), re-signed by ``ca``.

    Real ID cards carry certificates like this; ``cryptography`` refuses to load them."""
    tbs = cert.tbs_certificate_bytes
    index = tbs.find(bytes.fromhex("0101ff"))
    assert index > 0
    lenient_tbs = tbs[:index] + bytes.fromhex("010101") + tbs[index + 3 :]
    signature = ca.key.sign(lenient_tbs, ec.ECDSA(hashes.SHA384()))
    original = asn1x509.Certificate.load(der(cert))
    rebuilt = asn1x509.Certificate(
        {
            "tbs_certificate": asn1x509.TbsCertificate.load(lenient_tbs),
            "signature_algorithm": original["signature_algorithm"],
            "signature_value": signature,
        }
    )
    out = rebuilt.dump()
    assert lenient_tbs in out
    return out
