"""The PIV token: the built-in PIV driver behind the :class:`cardbridge.model.Token` interface.

A call that verified the PIN ends with the PIV logout (VERIFY with P1=FF, SP 800-73-4) in
the same transaction, and the card is left as it is: a reset (SCARD_RESET_CARD) would also
reset it for every other program that uses it (only a card that does not log out is reset
on disconnect). Certificates are cached by card identity
(ATR and CHUID), so a warm authenticate is SELECT, VERIFY, GENERAL AUTHENTICATE and the
logout.
"""

from __future__ import annotations

from collections.abc import Sequence

from cardbridge.errors import CardError, NoCertificateError
from cardbridge.model import (
    SIGNING_HASHES,
    CertificateInfo,
    CryptoAlgorithm,
    HashFunction,
    KeyType,
    Padding,
    PinStatus,
    SignatureAlgorithm,
)
from cardbridge.pcsc.apdu import ApduTransport
from cardbridge.pcsc.cardtoken import CardToken, SignRequest, parse_or_warn
from cardbridge.pcsc.piv import (
    KEY_LABELS,
    PIN_MAX,
    PIN_MIN,
    Algorithm,
    KeyRef,
    PivSession,
    ecdsa_der_to_raw,
    pkcs1_v15_block,
)

_CERT_KEYS = (KeyRef.AUTHENTICATION, KeyRef.SIGNATURE)


class PivToken(CardToken):
    """A PIV card in one reader (a :class:`model.Token`)."""

    driver = "piv"

    def pin_status(self, certificate: CertificateInfo) -> PinStatus:
        def step(transport: ApduTransport) -> PinStatus:
            state = PivSession(transport).pin_state()
            return PinStatus(
                retries_left=state.retries_left,
                final_try=state.retries_left == 1,
                blocked=state.blocked,
                min_length=PIN_MIN,
                max_length=PIN_MAX,
            )

        return self.transact(step)

    def supported_algorithms(self, certificate: CertificateInfo) -> Sequence[SignatureAlgorithm]:
        if certificate.key_type == KeyType.EC and certificate.curve == "secp256r1":
            return (SignatureAlgorithm(CryptoAlgorithm.ECC, HashFunction.SHA256, Padding.NONE),)
        if certificate.key_type == KeyType.EC and certificate.curve == "secp384r1":
            return (SignatureAlgorithm(CryptoAlgorithm.ECC, HashFunction.SHA384, Padding.NONE),)
        if certificate.key_type == KeyType.RSA and certificate.key_size == 2048:
            return tuple(SignatureAlgorithm(CryptoAlgorithm.RSA, h, Padding.PKCS1_5) for h in SIGNING_HASHES)
        return ()

    def check_key(self, certificate: CertificateInfo) -> None:
        _key_ref(certificate)

    def sign_on_card(self, transport: ApduTransport, request: SignRequest) -> bytes:
        """VERIFY, GENERAL AUTHENTICATE, and the PIV logout."""
        certificate = request.certificate
        key = _key_ref(certificate)
        if certificate.key_type == KeyType.RSA:
            alg = Algorithm.RSA_2048
            challenge = pkcs1_v15_block(request.digest, request.algorithm.hash_function, 256)
        else:
            alg = Algorithm.ECC_P256 if certificate.curve == "secp256r1" else Algorithm.ECC_P384
            challenge = request.digest
        piv = PivSession(transport)
        try:
            piv.verify_pin(request.pin)
            signature = piv.general_authenticate(key, alg, challenge)
        finally:
            self.log_out(request, piv.reset_security_status)
        if alg == Algorithm.RSA_2048:
            if len(signature) != 256:
                raise CardError("The card's RSA signature has the wrong length.")
            return signature
        return ecdsa_der_to_raw(signature, 32 if alg == Algorithm.ECC_P256 else 48)

    # -- CardToken ---------------------------------------------------------------------
    def read_serial(self, transport: ApduTransport) -> str:
        chuid = PivSession(transport).read_chuid()
        return chuid.serial if chuid else ""

    def read_certificates(self, transport: ApduTransport) -> list[CertificateInfo]:
        piv = PivSession(transport, select=False)
        certs: list[CertificateInfo] = []
        for ref in _CERT_KEYS:
            der = piv.read_certificate(ref)
            if der is None:
                continue
            cert = parse_or_warn(der, bytes([ref]), KEY_LABELS[ref])
            if cert is not None:
                certs.append(cert)
        return certs


def _key_ref(certificate: CertificateInfo) -> KeyRef:
    if len(certificate.key_id) == 1 and certificate.key_id[0] in (KeyRef.AUTHENTICATION, KeyRef.SIGNATURE):
        return KeyRef(certificate.key_id[0])
    raise NoCertificateError("The certificate is not from this PIV card.")
