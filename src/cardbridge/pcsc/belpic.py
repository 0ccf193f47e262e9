"""The Belgian eID card driver: the Belpic applet, versions 1.7 (RSA-2048) and 1.8 (ECDSA
P-384), from its public reference manuals and the card content description.

One PIN (PINcardholder, reference 01, 4–12 digits, 3 tries) guards both keys; Belgians know
it as the PIN of their eID (*eID-pincode*, *code PIN de l'eID*), so the dialog calls it
"eID PIN". The PIN travels in ISO 9564 format 2 (``2L``, BCD digits, ``F`` padding, 8 bytes).
The authentication key (82) needs the PIN once; the non-repudiation key (83) needs a
VERIFY right before each signature, so both are signed the same way, in one transaction::

    MSE SET 41 B6 04 80 <alg> 84 <key>
     [SELECT 3F00 DF00 (P1 08),  only when the card says the key is not where it stands
      MSE SET again]
    VERIFY 00 20 00 01 <PIN block>
    PSO CDS 00 2A 9E 9A <hash>   T=0: 61xx, then GET RESPONSE (the transport)
    LOG OFF 80 E6 00 00          the card's own logout: the card is not reset

MSE SET comes before VERIFY, as in the Belgian middleware, because applet 1.7 wants the
VERIFY directly before the non-repudiation signature. The keys are used with DF(BELPIC)
selected (the Belgian middleware selects it first "for V1.7 cards" and later; the emulator
answers MSE SET ``6A88`` elsewhere). This driver leaves the card there (reading the card
ends in DF(BELPIC), and neither a signature nor LOG OFF moves it), so MSE SET goes first
where the card stands; when the card refuses it there (another program moved it, or reset
the card: the MF is current after a reset), SELECT and MSE SET follow — all before any
PIN reaches the card. While another program holds the card open (seen before the dialog),
it may move it at any time: then SELECT comes first. Should a card take the MSE SET elsewhere and then refuse the
signature, that login fails and this token selects first from then on.

The card is confirmed by SELECT of DF(BELPIC) by its AID and identified by GET CARD DATA
(the chip serial, the cache key, and the applet version). A certificate is read with
SELECT by path and READ BINARY up to its DER length (a certificate EF has 1100 zero bytes
after it). The tries left come from an empty VERIFY (applet 1.7 and 1.8 spend no try).

The PIN's retry limit: no command of the applet reports it. The empty VERIFY answers
``63Cx`` (the tries left), GET CARD DATA with P2 01 (applet 1.8) the tries left in byte 28
(as the Belgian middleware, eid-mw, reads it), and eid-mw's PIN status command (``80 EA``)
the tries left too; the card's PKCS#15 AODF has no such field (OpenSC's pkcs15-pin.c), and
OpenSC's belpic driver asks nothing. Belgians are told that the PIN blocks after three wrong
tries (eid-mw's test notes: "entering an incorrect pincode three times will result in the
card getting locked"), so after a right PIN they expect the dialog to say 3 — but it must
not say 3 for a card personalised with another limit. So no limit is assumed: after the
first right PIN on a card presence the driver sends one empty VERIFY after LOG OFF, in the
same transaction (``FileSystemToken.learn_maximum``). The right PIN has just put the counter
back at its maximum, so the card's answer is its own limit: 3 on the cards Belgians hold,
and the dialog says what they expect. That APDU is spent once per card presence; the warm
login stays 5 (MSE SET, VERIFY, PSO CDS, GET RESPONSE, LOG OFF), and no number is shown
that the card did not give.

Algorithms: applet 1.8 signs ES256, ES384 and ES512 hashes with its P-384 keys (references
01, 02, 04); applet 1.7 signs RS256 (reference 08: the card adds the DigestInfo) and RS384,
RS512 (reference 01 with the DigestInfo sent).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from cardbridge.errors import CardError, UnsupportedCardError, UnsupportedKeyError
from cardbridge.iso7816 import CRT_DST, INS_MSE, INS_READ_BINARY, INS_SELECT
from cardbridge.model import (
    CURVE_HASHES,
    DIGEST_INFO_PREFIXES,
    SIGNING_HASHES,
    CertificateInfo,
    CryptoAlgorithm,
    HashFunction,
    KeyType,
    Padding,
    Purpose,
    SignatureAlgorithm,
    TokenInfo,
)
from cardbridge.pcsc.apdu import SW, ApduTransport
from cardbridge.pcsc.cardtoken import SignRequest
from cardbridge.pcsc.filesystem import (
    MSE_SET_COMPUTE,
    FileSystemSession,
    FileSystemToken,
    KeySpec,
    Location,
    PinEncoding,
    PinSpec,
    PinState,
    SignCommand,
    der_length,
)

log = logging.getLogger(__name__)

AID_BELPIC = bytes.fromhex("A000000177504B43532D3135")  # DF(BELPIC), "PKCS-15"
PATH_BELPIC = bytes.fromhex("3F00DF00")
CLA_PROPRIETARY = 0x80
INS_GET_CARD_DATA = 0xE4
INS_LOG_OFF = 0xE6
P1_SELECT_AID = 0x04
P1_SELECT_PATH = 0x08
P2_NO_FCI = 0x0C
CARD_DATA_LENGTH = 0x1C
CARD_DATA_APPLET_VERSION = 21  # after the serial (16) and the chip's five bytes: 0x17, 0x18
MODEL = "Belgian eID card (applet {version})"

PIN_REFERENCE = 0x01
KEYS_DF = Location(path=bytes.fromhex("DF00"))  # where MSE SET, VERIFY and PSO CDS are sent
PIN = PinSpec(PIN_REFERENCE, "eID PIN", 4, 12, location=KEYS_DF, encoding=PinEncoding.FORMAT_2)
KEY_AUTHENTICATION = 0x82
KEY_NON_REPUDIATION = 0x83

# Algorithm references (MSE SET tag 80).
ALG_ECDSA_SHA256, ALG_ECDSA_SHA384, ALG_ECDSA_SHA512 = 0x01, 0x02, 0x04
ALG_RSA_PKCS1, ALG_RSA_PKCS1_SHA256 = 0x01, 0x08
_ECDSA = {
    HashFunction.SHA256: ALG_ECDSA_SHA256,
    HashFunction.SHA384: ALG_ECDSA_SHA384,
    HashFunction.SHA512: ALG_ECDSA_SHA512,
}
# MSE SET's answers when the key is not where the card stands: 6A88 (the key not found), and
# those the Belgian middleware reads as another DF or applet being current.
_KEY_NOT_HERE = frozenset(
    {
        SW.REFERENCE_NOT_FOUND,
        SW.FILE_NOT_FOUND,
        SW.INCORRECT_P1P2,
        SW.CONDITIONS_NOT_SATISFIED,
        SW.SECURITY_STATUS_NOT_SATISFIED,
        SW.INS_NOT_SUPPORTED,
    }
)
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
        location=KEYS_DF,
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

    def log_off(self) -> None:
        """LOG OFF: the card forgets the PIN (no reset)."""
        self.transport.send(CLA_PROPRIETARY, INS_LOG_OFF, 0x00, 0x00, b"", None).check()


class BelpicToken(FileSystemToken):
    """A Belgian eID card (Belpic applet 1.7 or 1.8) in one reader."""

    driver = "belpic"
    aid = AID_BELPIC
    select_first = False  # True once a signature failed after MSE SET where the card stood
    applet_version: str | None = None  # "1.7", "1.8": from GET CARD DATA, once the card is read
    _where_it_stood = False
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
        data = fs.card_data()
        version = data[CARD_DATA_APPLET_VERSION]
        self.applet_version = f"{version >> 4}.{version & 0x0F}"
        return data[:16].hex().upper()

    @property
    def info(self) -> TokenInfo:
        """The model names the applet version the card reports (the ATR says it only for
        applet 1.8: applet 1.7 has the ATR of the applets before it)."""
        info = super().info
        if self.applet_version is None:
            return info
        return dataclasses.replace(info, model=MODEL.format(version=self.applet_version))

    def read_certificate(self, fs: FileSystemSession, key: KeySpec) -> bytes | None:
        return BelpicSession(fs.transport).read_certificate(key.certificate.path)

    def pin_state(self, fs: FileSystemSession, pin: PinSpec) -> PinState:
        return fs.pin_state(pin.reference)  # a global PIN: no SELECT first

    def supported_algorithms(self, certificate: CertificateInfo) -> Sequence[SignatureAlgorithm]:
        if certificate.key_type == KeyType.EC and certificate.curve in CURVE_HASHES:
            natural = CURVE_HASHES[certificate.curve]
            hashes = [natural] + [h for h in CURVE_HASHES.values() if h != natural]
            return tuple(SignatureAlgorithm(CryptoAlgorithm.ECC, h, Padding.NONE) for h in hashes)
        if certificate.key_type == KeyType.RSA and certificate.key_size == 2048:
            return tuple(SignatureAlgorithm(CryptoAlgorithm.RSA, h, Padding.PKCS1_5) for h in SIGNING_HASHES)
        return ()

    def before_verify(self, fs: FileSystemSession, key: KeySpec, request: SignRequest) -> None:
        """MSE SET before the VERIFY (applet 1.7 wants the VERIFY directly before a
        non-repudiation signature): where the card stands, and after SELECT DF(BELPIC)
        when the card says the key is not there (see the module's docstring)."""
        data = bytes([0x04, 0x80, _mse_reference(request.algorithm), 0x84, key.key_reference])
        self._where_it_stood = False
        if not (self.select_first or self.card_shared):
            response = fs.send(INS_MSE, MSE_SET_COMPUTE, CRT_DST, data, None)
            if response.ok:
                self._where_it_stood = True
                return
            if response.sw not in _KEY_NOT_HERE:
                raise UnsupportedKeyError("The card has no such key or algorithm.", sw=f"{response.sw:04X}")
        super().before_verify(fs, key, request)  # DF(BELPIC), where the PIN and the keys are
        fs.mse_set(CRT_DST, data)

    def compute_signature(self, fs: FileSystemSession, key: KeySpec, request: SignRequest) -> bytes:
        """PSO COMPUTE DIGITAL SIGNATURE of the hash (RSA with a DigestInfo but for the
        SHA-256 reference, which adds its own)."""
        algorithm = request.algorithm
        data = request.digest
        if algorithm.crypto != CryptoAlgorithm.ECC and algorithm.hash_function != HashFunction.SHA256:
            data = DIGEST_INFO_PREFIXES[algorithm.hash_function] + data
        try:
            signature = fs.compute(SignCommand.PSO_CDS, data, 0)
        except CardError:
            if self._where_it_stood:
                self.select_first = True  # the MSE SET where the card stood did not do
            raise
        expected = 2 * ((request.certificate.key_size + 7) // 8) if algorithm.crypto == CryptoAlgorithm.ECC else 256
        if len(signature) != expected:
            raise CardError("The card's signature has the wrong length.")
        return signature

    def logout(self, fs: FileSystemSession, key: KeySpec) -> None:
        """LOG OFF: the card's own logout."""
        BelpicSession(fs.transport).log_off()


def _mse_reference(algorithm: SignatureAlgorithm) -> int:
    """The MSE SET algorithm reference: ECDSA by its hash; RSA PKCS#1 v1.5 with SHA-256
    (the card adds the DigestInfo) or with the DigestInfo sent."""
    if algorithm.crypto == CryptoAlgorithm.ECC:
        return _ECDSA[algorithm.hash_function]
    return ALG_RSA_PKCS1_SHA256 if algorithm.hash_function == HashFunction.SHA256 else ALG_RSA_PKCS1
