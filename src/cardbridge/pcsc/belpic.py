"""The Belgian eID card driver: the Belpic applet, versions 1.7 (RSA-2048) and 1.8 (ECDSA
P-384), from its public reference manuals and the card content description.

One PIN (PINcardholder, reference 01, 4–12 digits, 3 tries) guards both keys; Belgians know
it as the PIN of their eID (*eID-pincode*, *code PIN de l'eID*), so the dialog calls it
"eID PIN". The PIN travels in ISO 9564 format 2 (``2L``, BCD digits, ``F`` padding, 8 bytes).
The authentication key (82) needs the PIN once; the non-repudiation key (83) needs a
VERIFY right before each signature, so both are signed the same way, in one transaction::

    SELECT 3F00 DF00 (P1 08)     the keys' DF
    MSE SET 41 B6 04 80 <alg> 84 <key>
    VERIFY 00 20 00 01 <PIN block>
    PSO CDS 00 2A 9E 9A <hash>   T=0: 61xx, then GET RESPONSE (the transport)
    LOG OFF 80 E6 00 00          the card's own logout: the card is not reset

MSE SET comes before VERIFY, as in the Belgian middleware, because applet 1.7 wants the
VERIFY directly before the non-repudiation signature.

The card is confirmed by SELECT of DF(BELPIC) by its AID and identified by GET CARD DATA
(the chip serial, the cache key, and the applet version). A certificate is read with
SELECT by path and READ BINARY up to its DER length (a certificate EF has 1100 zero bytes
after it). The tries left come from an empty VERIFY (applet 1.7 and 1.8 spend no try).

Algorithms: applet 1.8 signs ES256, ES384 and ES512 hashes with its P-384 keys (references
01, 02, 04); applet 1.7 signs RS256 (reference 08: the card adds the DigestInfo) and RS384,
RS512 (reference 01 with the DigestInfo sent).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from cardbridge.errors import (
    CardbridgeError,
    CardError,
    PinBlockedError,
    PinInvalidLengthError,
    UnsupportedCardError,
    UnsupportedKeyError,
)
from cardbridge.model import CURVE_HASHES, CertificateInfo, Purpose, SignatureAlgorithm
from cardbridge.pcsc.apdu import SW, ApduError, ApduTransport
from cardbridge.pcsc.cardtoken import parse_or_warn
from cardbridge.pcsc.filesystem import (
    CRT_DST,
    FileSystemSession,
    FileSystemToken,
    KeySpec,
    Location,
    PinSpec,
    PinState,
    SignCommand,
    der_length,
)
from cardbridge.pcsc.piv import check_verify

log = logging.getLogger(__name__)

AID_BELPIC = bytes.fromhex("A000000177504B43532D3135")  # DF(BELPIC), "PKCS-15"
PATH_BELPIC = bytes.fromhex("3F00DF00")
CLA_PROPRIETARY = 0x80
INS_SELECT = 0xA4
INS_READ_BINARY = 0xB0
INS_VERIFY = 0x20
INS_MSE = 0x22
INS_PSO = 0x2A
INS_GET_CARD_DATA = 0xE4
INS_LOG_OFF = 0xE6
P1_SELECT_AID = 0x04
P1_SELECT_PATH = 0x08
P2_NO_FCI = 0x0C
CARD_DATA_LENGTH = 0x1C

PIN_REFERENCE = 0x01
PIN_BLOCK_LENGTH = 8
PIN = PinSpec(PIN_REFERENCE, "eID PIN", 4, 12)
KEY_AUTHENTICATION = 0x82
KEY_NON_REPUDIATION = 0x83

# Algorithm references (MSE SET tag 80).
ALG_ECDSA_SHA256, ALG_ECDSA_SHA384, ALG_ECDSA_SHA512 = 0x01, 0x02, 0x04
ALG_RSA_PKCS1, ALG_RSA_PKCS1_SHA256 = 0x01, 0x08
_ECDSA = {"SHA-256": ALG_ECDSA_SHA256, "SHA-384": ALG_ECDSA_SHA384, "SHA-512": ALG_ECDSA_SHA512}
_DIGEST_INFO = {
    "SHA-384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "SHA-512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_READ_CHUNK = 0x100  # READ BINARY Le 00
_MAX_CERTIFICATE = 0x2000


def _key(purpose: Purpose, label: str, key_id: int, reference: int, fid: str) -> KeySpec:
    return KeySpec(
        purpose=purpose,
        label=label,
        key_id=bytes([key_id]),  # the PKCS#15 ID (CKA_ID in OpenSC)
        key_reference=reference,
        certificate=Location(path=bytes.fromhex("DF00" + fid)),
        pin=PIN,
        location=Location(path=bytes.fromhex("DF00")),
        sign_command=SignCommand.PSO_CDS,
        mse_template=CRT_DST,
    )


class BelpicSession(FileSystemSession):
    """The Belpic commands over one transport (inside one transaction)."""

    def select_path(self, path: bytes, *, from_mf: bool = True, fcp: bool = False) -> bytes:
        """SELECT by path from the MF, with the MF's 3F00 in front (P2 0C: the card gives
        no FCI). ApduError(6A82) when absent."""
        full = path if path.startswith(PATH_BELPIC[:2]) else PATH_BELPIC[:2] + path
        return self.send(INS_SELECT, P1_SELECT_PATH, P2_NO_FCI, full, None).check()

    def card_data(self) -> bytes:
        """GET CARD DATA: the chip serial (16 bytes), the OS and applet versions, …"""
        response = self.transport.send(CLA_PROPRIETARY, INS_GET_CARD_DATA, 0x00, 0x00, b"", CARD_DATA_LENGTH)
        if response.sw in (SW.INS_NOT_SUPPORTED, SW.CLA_NOT_SUPPORTED, SW.FILE_NOT_FOUND):
            raise UnsupportedCardError("The card has no Belpic applet.", sw=f"{response.sw:04X}")
        data = response.check()
        if len(data) < CARD_DATA_LENGTH:
            raise CardError("The card's GET CARD DATA answer is too short.")
        return data

    def read_certificate(self, path: bytes) -> bytes | None:
        """The DER certificate in the EF at ``path`` (None when the EF holds none), read up
        to its DER length only."""
        self.select_path(path)
        first = self.send(INS_READ_BINARY, 0, 0, b"", _READ_CHUNK).check()
        size = der_length(first)
        if size is None or size > _MAX_CERTIFICATE:
            return None
        data = bytearray(first[:size])
        while len(data) < size:
            want = min(_READ_CHUNK, size - len(data))
            part = self.send(INS_READ_BINARY, len(data) >> 8, len(data) & 0xFF, b"", want).check()
            if not part:
                raise CardError("The card's certificate file ends early.")
            data += part[:want]
        return bytes(data)

    def verify(self, pin: PinSpec, value: bytearray) -> None:
        """VERIFY in ISO 9564 format 2; checked first against the card's rules (4–12
        digits). Sent once, never retried; the block is wiped."""
        if not pin.min_length <= len(value) <= pin.max_length:
            raise PinInvalidLengthError(
                f"The {pin.name} must have {pin.min_length} to {pin.max_length} digits.",
                minLength=pin.min_length,
                maxLength=pin.max_length,
            )
        if any(not 0x30 <= c <= 0x39 for c in value):
            raise PinInvalidLengthError(f"The {pin.name} has digits only.")
        block = bytearray([0x20 | len(value)]) + bytearray([0xFF] * (PIN_BLOCK_LENGTH - 1))
        for i, c in enumerate(value):  # two BCD digits a byte, the first in the high nibble
            shift = 4 if i % 2 == 0 else 0
            block[1 + i // 2] = (block[1 + i // 2] & ~(0x0F << shift) & 0xFF) | ((c - 0x30) << shift)
        try:
            response = self.send(INS_VERIFY, 0x00, pin.reference, bytes(block), None)
        finally:
            block[:] = b"\x00" * len(block)
        check_verify(response)

    def mse_set_signature(self, algorithm: int, key_reference: int) -> None:
        data = bytes([0x04, 0x80, algorithm, 0x84, key_reference])
        response = self.send(INS_MSE, 0x41, CRT_DST, data, None)
        if response.sw in (SW.REFERENCE_NOT_FOUND, SW.WRONG_DATA):
            raise UnsupportedKeyError("The card has no such key or algorithm.", sw=f"{response.sw:04X}")
        response.check()

    def log_off(self) -> None:
        """LOG OFF: the card forgets the PIN (no reset)."""
        self.transport.send(CLA_PROPRIETARY, INS_LOG_OFF, 0x00, 0x00, b"", None).check()


class BelpicToken(FileSystemToken):
    """A Belgian eID card (Belpic applet 1.7 or 1.8) in one reader."""

    driver = "belpic"
    aid = AID_BELPIC
    keys = (
        _key(Purpose.AUTHENTICATION, "Authentication", 0x02, KEY_AUTHENTICATION, "5038"),
        _key(Purpose.SIGNING, "Signature", 0x03, KEY_NON_REPUDIATION, "5039"),
    )

    def session(self, transport: ApduTransport) -> BelpicSession:
        return BelpicSession(transport)

    def read_serial(self, transport: ApduTransport) -> str:
        """SELECT DF(BELPIC) by its AID (the confirmation), then GET CARD DATA: the chip
        serial, the cache key."""
        fs = self.session(transport)
        fs.select_aid(self.aid)
        return fs.card_data()[:16].hex().upper()

    def read_certificates(self, transport: ApduTransport) -> list[CertificateInfo]:
        fs = self.session(transport)
        out: list[CertificateInfo] = []
        for key in self.keys:
            try:
                der = fs.read_certificate(key.certificate.path)
            except ApduError as exc:
                if exc.sw == SW.FILE_NOT_FOUND:
                    continue
                raise
            if der is None:  # an empty certificate file (no such certificate on this card)
                continue
            cert = parse_or_warn(der, key.key_id, key.label)
            if cert is not None:
                out.append(cert)
        return out

    def pin_state(self, fs: FileSystemSession, pin: PinSpec) -> PinState:
        return fs.pin_state(pin.reference)  # a global PIN: no SELECT first

    def supported_algorithms(self, certificate: CertificateInfo) -> Sequence[SignatureAlgorithm]:
        if certificate.key_type == "EC" and certificate.curve in CURVE_HASHES:
            natural = CURVE_HASHES[certificate.curve]
            hashes = [natural] + [h for h in CURVE_HASHES.values() if h != natural]
            return tuple(SignatureAlgorithm("ECC", h, "NONE") for h in hashes)
        if certificate.key_type == "RSA" and certificate.key_size == 2048:
            return tuple(SignatureAlgorithm("RSA", h, "PKCS1.5") for h in ("SHA-256", "SHA-384", "SHA-512"))
        return ()

    def sign_digest(
        self,
        certificate: CertificateInfo,
        pin: bytearray | None,
        digest: bytes,
        algorithm: SignatureAlgorithm,
    ) -> bytes:
        key = self.key_for(certificate)
        pin = self.check_sign_request(certificate, pin, digest, algorithm)
        if algorithm.crypto == "ECC":
            reference, data = _ECDSA[algorithm.hash_function], digest
        elif algorithm.hash_function == "SHA-256":
            reference, data = ALG_RSA_PKCS1_SHA256, digest
        else:
            reference, data = ALG_RSA_PKCS1, _DIGEST_INFO[algorithm.hash_function] + digest
        verified = [False]
        reset = [False]

        def step(transport: ApduTransport) -> bytes:
            fs = self.session(transport)
            try:
                fs.select_path(key.location.path)
                fs.mse_set_signature(reference, key.key_reference)
                fs.verify(key.pin, pin)
                verified[0] = True
                response = fs.send(INS_PSO, 0x9E, 0x9A, data, 0)
                if response.sw == SW.SECURITY_STATUS_NOT_SATISFIED:
                    raise CardError("The card wants the PIN again before it signs.", sw=f"{response.sw:04X}")
                if response.sw == SW.AUTH_METHOD_BLOCKED:
                    raise PinBlockedError("The PIN is blocked.", retries_left=0)
                signature = response.check()
            finally:
                if verified[0]:
                    try:
                        fs.log_off()
                    except CardbridgeError:
                        log.info("The card did not log out; it is reset on disconnect")
                        reset[0] = True
            expected = 2 * ((certificate.key_size + 7) // 8) if algorithm.crypto == "ECC" else 256
            if len(signature) != expected:
                raise CardError("The card's signature has the wrong length.")
            return signature

        return self.transact(step, reset=lambda: reset[0])
