"""The Finnish ID card (FINEID): the built-in driver for the citizen certificate card of the
Digital and Population Data Services Agency (DVV), in its two card profiles:

- S4-1 v4.0 (Thales MultiApp v5.0, issued since March 2023: ECC P-384 keys):
  :class:`FineidToken`, driver ``fineid``;
- S4-1 v3.0/v3.1 (Gemalto MultiApp v3.0 and v4.2, issued 2017-2023): an RSA-2048
  authentication key (01) and an ECC P-256 signature key (03, its certificate 5016/4335):
  :class:`FineidV3Token`, driver ``fineid-v3``. The RSA key signs with RSASSA-PKCS1-v1_5
  (RS256/384/512: MSE SET ``02 | hash``, the card puts the DigestInfo in front) or PSS
  (PS256/384/512: ``05 | hash``, what libelectronic-id uses); a login is RS256.

The ATR picks the profile (``pcsc.atr``: the MultiApp version byte after ``85``: 05 is v4, 03
and 04 are v3); both run the same application and commands.

The card's commands (FINEID S1), as this driver sends them:

- SELECT the PKCS#15 application by AID; certificates by path from the MF: the
  authentication certificate 4331 and the non-repudiation certificate 5016/4332;
  EF.TokenInfo 5032 for the card number (the cache key);
- the PIN state before the dialog: GET DATA ``00 CB 00 FF`` ``A0 03 83 01 <ref>`` (the tries
  left are the first byte of DF21), spending no try; DF2F 00 there says the PIN is not active
  yet (its holder must change it first; OpenSC master's ``card-esteid2025.c``: "needs
  change", libelectronic-id's ``EstEIDThales``: ``pinActive`` false): such a PIN is never
  asked for nor sent (PIN_NOT_ACTIVE, before any dialog). The answer does not give the PIN's
  retry limit: a real v4 card answered ``DF21 04 05 FF A5 03`` for PIN1 with its 5 tries
  (libelectronic-id's recorded exchange), the bytes after the count being its usage and
  unblocking counters (FF, A5: no limit; FINEID S1 v4.2 §3.15.3 as refineid-core reads it);
  OpenSC's esteid2025 driver says "no support" for the maximum, and libelectronic-id
  assumes 5 (3 for the Estonian Thales card). This driver assumes none: after the first
  right PIN on a card presence it reads the count once more in the same transaction, which
  is then the card's limit (:meth:`~cardbridge.pcsc.filesystem.FileSystemToken.learn_maximum`:
  GET DATA and GET RESPONSE in that login, SELECT first for PIN2); later logins show it
  without asking;
- PIN1, the basic PIN (*perustunnusluku*), reference 11, 4 to 12 digits, for the
  authentication key 01; PIN2, the signature PIN (*allekirjoitustunnusluku*), reference 82,
  6 to 12 digits, for the non-repudiation key (02 on v4, 03 on v3); both padded with 00 to
  12 bytes;
- MSE SET ``41 B6`` with ``80 <algorithm + hash>`` and ``84 <key>``, PSO HASH ``90 A0`` with
  the digest in tag 90, PSO COMPUTE DIGITAL SIGNATURE ``9E 9A``: raw ``r || s`` (ECDSA) or
  the RSA signature;
- logout: SELECT the application again (it ends the PIN's security status).

The dialog names the PIN as the card's holder knows it: "PIN1 (perustunnusluku)" and "PIN2
(allekirjoitustunnusluku)".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from cardbridge.errors import CardError, UnsupportedKeyError
from cardbridge.iso7816 import CRT_DST, INS_GET_DATA, INS_PSO
from cardbridge.model import (
    SIGNING_HASHES,
    CertificateInfo,
    CryptoAlgorithm,
    HashFunction,
    KeyType,
    Padding,
    Purpose,
    SignatureAlgorithm,
)
from cardbridge.pcsc.apdu import ApduError, ApduTransport
from cardbridge.pcsc.cardtoken import SignRequest
from cardbridge.pcsc.filesystem import (
    FileSystemSession,
    FileSystemToken,
    KeySpec,
    Location,
    PinSpec,
    PinState,
    SignCommand,
    signature_to_raw,
)
from cardbridge.pcsc.piv import parse_tlv

AID = bytes.fromhex("A000000063504B43532D3135")
LOCAL_PIN = 0x80  # bit 8 of a PIN reference: the PIN belongs to the current DF
_APP = Location(aid=AID)

PIN1 = PinSpec(0x11, "PIN1 (perustunnusluku)", 4, 12, _APP, pad_length=12, pad_byte=0x00)
PIN2 = PinSpec(0x82, "PIN2 (allekirjoitustunnusluku)", 6, 12, _APP, pad_length=12, pad_byte=0x00)

ALG_ECDSA = 0x04
ALG_RSA_PKCS1 = 0x02
ALG_RSA_PSS = 0x05
_HASH_NIBBLE = {28: 0x30, 32: 0x40, 48: 0x50, 64: 0x60}
_RSA_PADDING = {Padding.PKCS1_5: ALG_RSA_PKCS1, Padding.PSS: ALG_RSA_PSS}
PSO_HASH_P1P2 = (0x90, 0xA0)
TAG_HASH = 0x90

AUTH_KEY = KeySpec(
    purpose=Purpose.AUTHENTICATION,
    label="todentamis- ja salausvarmenne",
    key_id=b"\x45",
    key_reference=0x01,
    certificate=Location(path=bytes.fromhex("4331")),  # after read_serial's SELECT
    pin=PIN1,
    location=_APP,
    sign_command=SignCommand.PSO_CDS,
    mse_template=CRT_DST,
)
SIGN_KEY = KeySpec(
    purpose=Purpose.SIGNING,
    label="allekirjoitusvarmenne",
    key_id=b"\x46",
    key_reference=0x02,
    certificate=Location(path=bytes.fromhex("50164332")),
    pin=PIN2,
    location=_APP,
    sign_command=SignCommand.PSO_CDS,
    mse_template=CRT_DST,
)


SIGN_KEY_V3 = replace(SIGN_KEY, key_reference=0x03, certificate=Location(path=bytes.fromhex("50164335")))


class FineidToken(FileSystemToken):
    """A FINEID card (S4-1 v4.0) in one reader (a :class:`cardbridge.model.Token`)."""

    driver = "fineid"
    aid = AID
    keys = (AUTH_KEY, SIGN_KEY)
    read_chunk = 0xFF

    def read_serial(self, transport: ApduTransport) -> str:
        """SELECT the application, then the card number from EF.TokenInfo (serialNumber)."""
        fs = self.session(transport)
        fs.select_aid(self.aid)
        try:
            token_info = fs.read_file(Location(path=bytes.fromhex("5032")), chunk=self.read_chunk)
            outer = parse_tlv(token_info)
            if not outer or outer[0][0] != 0x30:
                return ""
            fields = parse_tlv(outer[0][1])
        except (ApduError, CardError):
            return ""
        serial = next((value for tag, value in fields if tag == 0x04), b"")
        text = serial.decode("ascii", "replace")
        return text if text.isalnum() else serial.hex()

    def pin_state(self, fs: FileSystemSession, pin: PinSpec) -> PinState:
        """GET DATA of the PIN's attributes: the tries left, spending none.

        For a global PIN (PIN1, reference 11: the same PIN from every DF) the card is asked
        where it stands (the application, after this driver's logout), as OpenSC's FinEID
        driver asks it; only when it does not answer there is the application selected
        first. A local PIN (PIN2, 82) is asked in the application. (T=0: GET DATA is a
        case-4 command, so its answer always comes with a GET RESPONSE.)"""
        if not pin.reference & LOCAL_PIN:
            response = fs.send(INS_GET_DATA, 0x00, 0xFF, _pin_query(pin), 0)
            state = _pin_attributes(response.data) if response.ok else None
            if state is not None:
                return state
        self.enter(fs, pin.location)
        return self.read_pin_state(fs, pin)

    def read_pin_state(self, fs: FileSystemSession, pin: PinSpec) -> PinState:
        """GET DATA of the PIN's attributes where the card stands (no SELECT: the caller
        made sure it is the PIN's application, in this transaction)."""
        state = _pin_attributes(fs.send(INS_GET_DATA, 0x00, 0xFF, _pin_query(pin), 0).check())
        if state is None:
            raise CardError("The card did not tell the PIN's tries left.")
        return state

    def supported_algorithms(self, certificate: CertificateInfo) -> Sequence[SignatureAlgorithm]:
        if certificate.key_type == KeyType.RSA and certificate.key_size == 2048:
            return tuple(
                SignatureAlgorithm(CryptoAlgorithm.RSA, h, padding)
                for padding in (Padding.PKCS1_5, Padding.PSS)
                for h in SIGNING_HASHES
            )
        if certificate.key_type != KeyType.EC or certificate.curve not in ("secp256r1", "secp384r1"):
            return ()
        first = HashFunction.SHA384 if certificate.curve == "secp384r1" else HashFunction.SHA256
        rest = [h for h in SIGNING_HASHES if h != first]
        return tuple(SignatureAlgorithm(CryptoAlgorithm.ECC, h, Padding.NONE) for h in (first, *rest))

    def compute_signature(self, fs: FileSystemSession, key: KeySpec, request: SignRequest) -> bytes:
        digest, algorithm = request.digest, request.algorithm
        nibble = _HASH_NIBBLE.get(len(digest))
        if nibble is None:
            raise UnsupportedKeyError("The card signs only SHA-224/256/384/512 digests.")
        low = _RSA_PADDING[algorithm.padding] if algorithm.crypto == CryptoAlgorithm.RSA else ALG_ECDSA
        fs.mse_set(key.mse_template, bytes([0x80, 0x01, low | nibble, 0x84, 0x01, key.key_reference]))
        fs.send(INS_PSO, *PSO_HASH_P1P2, bytes([TAG_HASH, len(digest)]) + digest, None).check()
        signature = fs.compute(key.sign_command, b"", 0)
        if algorithm.crypto == CryptoAlgorithm.RSA:
            if len(signature) != request.certificate.key_size // 8:
                raise CardError("The card's signature has the wrong length.")
            return signature
        return signature_to_raw(signature, (request.certificate.key_size + 7) // 8)


def _pin_query(pin: PinSpec) -> bytes:
    """GET DATA's data for the PIN's attributes: ``A0 03 83 01 <ref>``."""
    return bytes([0xA0, 0x03, 0x83, 0x01, pin.reference])


def _pin_attributes(data: bytes) -> PinState | None:
    """The PIN's state in GET DATA's PIN attributes (``A0 … DF21 <tries> … DF2F <set>``), or
    None without a tries-left count. DF2F 00 (one byte): not active yet; no DF2F, or any
    other value: active (as OpenSC master and libelectronic-id read it)."""
    try:
        outer = parse_tlv(data)
        if not outer or outer[0][0] != 0xA0:
            return None
        attributes = dict(parse_tlv(outer[0][1]))
    except CardError:
        return None
    counter = attributes.get(0xDF21)
    if not counter:
        return None
    tries = counter[0]
    return PinState(tries, tries == 0, active=attributes.get(0xDF2F) != b"\x00")


class FineidV3Token(FineidToken):
    """A FINEID card of the S4-1 v3 profile (an RSA-2048 authentication key, the ECC P-256
    signature key 03 in 5016/4335) in one reader."""

    driver = "fineid-v3"
    keys = (AUTH_KEY, SIGN_KEY_V3)
