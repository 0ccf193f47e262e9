"""The Finnish ID card (FINEID), emulated: the citizen certificate card of the Digital and
Population Data Services Agency (DVV), as FINEID S1 (the application's commands) and
S4-1 describe it, in two card profiles (:class:`FineidProfile`):

- :data:`V4`, S4-1 v4.0: the Thales MultiApp v5.0 cards issued since March 2023, ECC P-384
  keys (``cardbridge dev card --kind fineid``; the text below describes it);
- :data:`V3`, S4-1 v3.0: the Gemalto MultiApp v3.0 cards issued 2017-2021 and still in
  citizens' wallets (``--kind fineid-v3``, or ``--kind fineid --key rsa-2048`` as the
  Belgian card's older profile is chosen): an RSA-2048 authentication key and an ECC P-256
  signature key; see "The v3 profile" below.

What the card has, as the public sources give it (the S1/S4-1 texts, DVV's ATR note, and the
APDUs that web-eid's libelectronic-id and OpenSC send to real cards):

- ATR ``3B 7F 96 00 00 80 31 B8 65 B0 85 05 00 11 12 24 60 82 90 00`` (DVV: Thales MultiApp
  v5.0, S4-1 v4.0; T=0 only: the ATR has no TD1). Debian's pcsc-tools list does not name it
  yet; it names the two Gemalto generations before it (…85 03 00 EF… S4-1 v3.0 and
  …85 04 02 1B… S4-1 v3.1).
- The PKCS#15 application ``A0 00 00 00 63 50 4B 43 53 2D 31 35``. Its files: EF.DIR 2F00,
  EF.OD 5031, EF.TokenInfo 5032, EF.AOD 4401, EF.PrKD 4402, EF.CD 4403 (the holder's
  certificates), EF.CD 4404 (trusted: the CA), the authentication certificate 4331, the
  signature directory DF 5016 with the non-repudiation certificate 4332, the CA certificate
  4334. Paths from the MF: ``00 A4 08 04 02 43 31`` and ``… 04 50 16 43 32`` as readers send
  them.
- PIN1, the basic PIN (*perustunnusluku*), reference 11 (global), 4 to 12 digits; PIN2, the
  signature PIN (*allekirjoitustunnusluku*), reference 82, 6 to 12 digits; the PUK
  (*PUK-tunnusluku*), reference 83, 7 to 12 digits (DVV issues 7 or 8). Each is sent padded
  with 00 to 12 bytes; 5 tries each; a successful unblock resets the PUK's counter too.
  Wrong: ``63Cx`` (``63C0`` on the try that blocks); blocked: ``6983``.
- GET DATA ``00 CB 00 FF`` with ``A0 03 83 01 <ref>`` answers the PIN's attributes:
  ``A0 23 83 01 ref 8C … 9C … DF21 04 <tries> FF A5 03 DF27 02 FF FF DF28 01 0C DF2F 01 01``
  (the tries left first in DF21; DF28 the stored length; DF2F 01: the PIN was set by its
  holder). The bytes after the tries are the ones a real card answered (``05 FF A5 03`` for
  PIN1 with its 5 tries, in libelectronic-id's recorded exchange: the usage and unblocking
  counters, FF and A5 meaning no limit). No field gives the PIN's retry limit, so a card
  made with another limit (:meth:`~cardbridge.emulator.iso7816.Iso7816Card.set_pin_tries`)
  does not tell it either. DF2F 00: the PIN is
  not active yet — it must be changed (activated) by its holder before it is used (OpenSC
  master's ``card-esteid2025.c``, which drives the Estonian Thales card and FINEID v4, reads
  DF2F 00 as "needs change" and sets ``CKF_USER_PIN_TO_BE_CHANGED``; libelectronic-id's
  ``EIDThales`` reads it as ``pinActive`` false, for the Estonian card only). ``cardbridge
  dev card --kind fineid --pin-not-active`` (PIN1) or ``--pin2-not-active`` issues such a
  card (:meth:`FineidApplet.issue_not_active`).
- The keys: 01 authentication (PIN1; sign and key agreement), 02 non-repudiation (PIN2).
  MSE SET ``00 22 41 B6 06 80 01 <alg> 84 01 <key>`` with ``alg`` = 04 (ECDSA) + the hash
  (30 SHA-224, 40 SHA-256, 50 SHA-384, 60 SHA-512); ``41 B8`` names the key for key
  agreement. Then PSO HASH ``00 2A 90 A0`` with ``90 <len> <hash>`` (the hash computed
  outside the card) and PSO COMPUTE DIGITAL SIGNATURE ``00 2A 9E 9A 00``: raw ``r || s``.
- GET RESPONSE: a T=0 card answers every command with data that has an answer (SELECT with
  FCP, GET DATA) with ``61xx`` first.

The v3 profile (S4-1 v3.0; the same application, commands, PINs and GET DATA), as the
public sources give it (S4-1 v3.0's contents, libelectronic-id's FinEID v3 and its
recorded exchange with a real 2017 test card, the FINEID v3 driver proposed to OpenSC in
2019):

- ATR ``3B 7F 96 00 00 80 31 B8 65 B0 85 03 00 EF 12 00 F6 82 90 00`` (pcsc-tools:
  "Finnish identity card"; T=0 only);
- key 01, the authentication key: RSA-2048 (the real certificate: keyUsage
  digitalSignature, keyEncipherment, dataEncipherment), PIN1; its certificate 4331;
- key 03, the signature key ("Private ELC key #3"): ECC P-256, PIN2; its certificate in
  DF 5016 as 4335 (keyUsage nonRepudiation, QcCompliance);
- MSE SET ``80 <alg>``: the hash nibble (30 SHA-224, 40 SHA-256, 50 SHA-384, 60 SHA-512)
  with 02 (RSASSA-PKCS1-v1_5: the card puts the hash's DigestInfo in front and pads) or 05
  (RSASSA-PSS, MGF1 with the same hash, salt as long as the hash; libelectronic-id's PS256)
  for the RSA key, 04 (ECDSA) for the EC key; PSO HASH and PSO CDS as on v4; the RSA
  signature is 256 bytes.

Choices the public description leaves open, made here:

- v3: the RSA non-repudiation slot S4-1 v3.0 also describes (key 02, certificate 5016/4332)
  is left out (SELECT answers 6A82): DVV's v3 cards carry the signature certificate in
  4335, the one libelectronic-id reads. The hash nibble 10 (SHA-1) and hashing on the card
  (PSO HASH with tag 80) are not emulated (6A80). A PSO HASH whose length is not the
  algorithm's hash for the RSA key: 6A80. EF.TokenInfo's manufacturer is "Gemalto". Key
  IDs in the PKCS#15 files are 45 and 46 as on v4.


- The application is the card's default application, and its file system is the MF: the
  readers above select paths from the MF after selecting the AID, and OpenSC finds EF.DIR at
  3F00 2F00 before any SELECT by AID. EF.DIR names the application with path 3F00.
- SELECT by AID (again) ends the security status of every PIN (as after a reset); that is
  how a driver logs out.
- The FCP of an EF is ``62 [81 size] [82 01] [83 fid] [8A 05]`` (real cards answered only
  ``81``; the descriptor is there for readers that check the file type); a DF's has 82, 83 and
  the AID for the MF.
- READ BINARY with Le 00 answers at most 181 bytes (B5), as a recorded real card did; with
  another Le, exactly that many (or the rest and ``6282`` at the end of the file).
- PIN2 verifies from any DF of the application; a VERIFY spends one signature with key 02:
  the next one needs PIN2 again. PIN1 stays verified until a reset or SELECT by AID.
- A PIN outside its length rules: ``6A80`` and no try spent; VERIFY data not 12 bytes:
  ``6700``. VERIFY without data gives the tries left (``63Cx``) or ``9000`` when verified.
- PSO COMPUTE DIGITAL SIGNATURE with data, or with no hash from PSO HASH since the last MSE
  SET: ``6985``. A hash whose length is not one of SHA-1/224/256/384/512: ``6A80``. An
  algorithm byte that is not ECDSA with one of the hashes above: ``6A80`` to MSE SET.
- PSO DECIPHER (key agreement) and INTERNAL AUTHENTICATE are not emulated: ``6D00``.
- A PIN that is not active (DF2F 00; the public sources give no status word for what the
  card then answers): VERIFY with data is refused with ``6985`` (conditions of use not
  satisfied) and spends no try, so the PIN's key signs nothing (PSO CDS: ``6982``, as
  without a VERIFY); VERIFY without data still gives the tries left. CHANGE REFERENCE DATA
  with the old and the new PIN (P1 00; what DigiDoc4 and DigiSign Client send to change a
  PIN) activates it: DF2F 01 from then on.
- Certificates: from the development CA, the holder named as the population register names
  its holders (see :class:`~cardbridge.emulator.devpki.FinnishCitizen`); the authentication
  certificate has keyUsage digitalSignature and keyAgreement and no extendedKeyUsage, as the
  real ones; the signature certificate nonRepudiation and the QC statements (compliance,
  SSCD, type e-signature). EF.TokenInfo carries the card number (9 digits) as its serial,
  manufacturer "Thales", label "HENKILOKORTTI".
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from cardbridge.emulator.cardfiles import CardFolder
from cardbridge.emulator.der import bits, integer, octets, path, seq, utf8
from cardbridge.emulator.devpki import DevCA, FinnishCitizen, PrivateKey, citizen_key_usage, generate_key
from cardbridge.emulator.iso7816 import (
    DF,
    EF,
    SW_CONDITIONS,
    SW_INCORRECT_P1P2,
    SW_INS_NOT_SUPPORTED,
    SW_OK,
    SW_REF_NOT_FOUND,
    SW_WRONG_DATA,
    CardKey,
    CommandApdu,
    Iso7816Card,
    Pin,
    ecdsa_raw,
    rsa_pkcs1_digest,
    rsa_pss,
    sw,
)
from cardbridge.emulator.kinds import AppletKind, PinDefault
from cardbridge.errors import InvalidInputError
from cardbridge.iso7816 import CRT_CT, CRT_DST, INS_GET_DATA, INS_INTERNAL_AUTHENTICATE, INS_READ_BINARY, tlv
from cardbridge.model import Purpose

ATR = bytes.fromhex("3B 7F 96 00 00 80 31 B8 65 B0 85 05 00 11 12 24 60 82 90 00")
ATR_V3 = bytes.fromhex("3B 7F 96 00 00 80 31 B8 65 B0 85 03 00 EF 12 00 F6 82 90 00")
PKCS15_AID = bytes.fromhex("A000000063504B43532D3135")

PIN1_REFERENCE = 0x11
PIN2_REFERENCE = 0x82
PUK_REFERENCE = 0x83
PIN_TRIES = 5
PIN_STORED_LENGTH = 12
AUTH_KEY_REFERENCE = 0x01
SIGN_KEY_REFERENCE = 0x02

ALG_ECDSA = 0x04
ALG_RSA_PKCS1 = 0x02
ALG_RSA_PSS = 0x05
HASH_NIBBLES = {0x30: 28, 0x40: 32, 0x50: 48, 0x60: 64}
_HASHES: dict[int, hashes.HashAlgorithm] = {
    0x30: hashes.SHA224(),
    0x40: hashes.SHA256(),
    0x50: hashes.SHA384(),
    0x60: hashes.SHA512(),
}
READ_BINARY_MAX = 0xB5
DEFAULT_PINS = {"pin": "1234", "pin2": "123456", "puk": "12345678"}

# Labels as the FINEID cards write them (Finnish).
AUTH_LABEL = "todentamis- ja salausvarmenne"
SIGN_LABEL = "allekirjoitusvarmenne"
AUTH_KEY_LABEL = "todentamis- ja salausavain"
SIGN_KEY_LABEL = "allekirjoitusavain"
PIN1_LABEL = "perustunnusluku"
PIN2_LABEL = "allekirjoitustunnusluku"
PUK_LABEL = "PUK-tunnusluku"

_QC_STATEMENTS = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.3")
_ETSI_QCS = bytes.fromhex("04008E4601")  # 0.4.0.1862.1


def _pin_object(label: str, auth_id: int, flags: tuple[int, ...], pin: Pin, puk_id: int | None) -> bytes:
    common = utf8(label) + bits() + (octets(bytes([puk_id])) if puk_id else b"")
    attributes = seq(
        bits(*flags),
        tlv(0x0A, b"\x01"),  # ascii-numeric
        integer(pin.min_length),
        integer(PIN_STORED_LENGTH),
        integer(pin.max_length),
        tlv(0x80, bytes([pin.reference])),
        octets(b"\x00"),  # padChar
    )
    return seq(tlv(0x30, common), seq(octets(bytes([auth_id]))), tlv(0xA1, attributes))


def _key_object(
    label: str, key_id: int, auth_id: int, usage: tuple[int, ...], reference: int, key: PrivateKey
) -> bytes:
    """A PrKDF entry: privateRSAKey (SEQUENCE, modulusLength) or privateECKey ([0], field size)."""
    size = key.key_size if isinstance(key, rsa.RSAPrivateKey) else key.curve.key_size
    return tlv(
        0x30 if isinstance(key, rsa.RSAPrivateKey) else 0xA0,
        seq(utf8(label), bits(0), octets(bytes([auth_id])))  # private
        + seq(octets(bytes([key_id])), bits(*usage), tlv(0x01, b"\xff"), bits(0, 2, 3, 4), integer(reference))
        + tlv(0xA1, seq(path(b"\x3f\x00"), integer(size))),
    )


def _cert_object(label: str, cert_id: int, where: bytes, *, authority: bool = False) -> bytes:
    common_cert = octets(bytes([cert_id])) + (tlv(0x01, b"\xff") if authority else b"")
    return seq(seq(utf8(label)), tlv(0x30, common_cert), tlv(0xA1, seq(path(where))))


def _qc_statements() -> bytes:
    """QcCompliance, QcSSCD and QcType e-signature (ETSI EN 319 412-5), DER."""
    compliance = seq(tlv(0x06, _ETSI_QCS + b"\x01"))
    sscd = seq(tlv(0x06, _ETSI_QCS + b"\x04"))
    qc_type = seq(tlv(0x06, _ETSI_QCS + b"\x06"), seq(tlv(0x06, _ETSI_QCS + b"\x06\x01")))
    return seq(compliance, qc_type, sscd)


class FineidEF(EF):
    """A transparent EF whose FCP gives its size in tag 81, as the real cards answer."""

    def fcp(self) -> bytes:
        body = tlv(0x81, len(self.data).to_bytes(2, "big")) + tlv(0x82, b"\x01") + tlv(0x83, self.fid)
        return tlv(0x62, body + tlv(0x8A, b"\x05"))


# -- the card --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FineidProfile:
    """What differs between the FINEID card generations (S4-1 versions)."""

    name: str  # "v4", "v3"
    title: str
    atr: bytes
    auth_key: str  # devpki key kind
    sign_key: str
    sign_key_reference: int
    sign_cert_fid: bytes  # in DF 5016
    manufacturer: str
    auth_key_usage: x509.KeyUsage
    auth_usage_bits: tuple[int, ...]  # PKCS#15 KeyUsageFlags of the authentication key


V4 = FineidProfile(
    "v4",
    "Finnish ID card (FINEID v4, Thales S4-1 v4.0)",
    ATR,
    "ec-p384",
    "ec-p384",
    SIGN_KEY_REFERENCE,
    b"\x43\x32",
    "Thales",
    citizen_key_usage(digital_signature=True, key_agreement=True),
    (2, 8),  # sign, derive
)
V3 = FineidProfile(
    "v3",
    "Finnish ID card (FINEID v3, Gemalto S4-1 v3.0, RSA-2048)",
    ATR_V3,
    "rsa-2048",
    "ec-p256",
    0x03,
    b"\x43\x35",
    "Gemalto",
    citizen_key_usage(digital_signature=True, key_encipherment=True, data_encipherment=True),
    (1, 2, 5),  # decrypt, sign, unwrap
)


@dataclass(frozen=True)
class FineidCardData:
    """What is on the card: keys and certificates (DER), the CA certificate, the card number."""

    auth_key: PrivateKey
    auth_cert: bytes
    sign_key: PrivateKey
    sign_cert: bytes
    ca_cert: bytes
    card_number: str


def card_signature(key: PrivateKey, algorithm: int, digest: bytes) -> bytes:
    """What PSO COMPUTE DIGITAL SIGNATURE gives for the MSE SET's algorithm byte over the hash
    of PSO HASH: ECDSA ``r || s``, or RSA PKCS#1 v1.5 (DigestInfo added) or PSS. ValueError
    when the hash does not fit."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return ecdsa_raw(key, digest)
    chosen = _HASHES[algorithm & 0xF0]
    if algorithm & 0x0F == ALG_RSA_PSS:
        return rsa_pss(key, digest, chosen)
    return rsa_pkcs1_digest(key, digest, chosen)


class FineidApplet(Iso7816Card):
    """The FINEID application (S1 commands, an S4-1 file system); see the module text."""

    t0 = True

    def __init__(self, data: FineidCardData, *, pin1: str, pin2: str, puk: str, profile: FineidProfile = V4) -> None:
        super().__init__(profile.atr)
        self.profile = profile
        self.not_active: set[int] = set()  # references of the PINs not activated yet (DF2F 00)
        self.pin1 = self.add_pin(self._pin(PIN1_REFERENCE, pin1, 4))
        self.pin2 = self.add_pin(self._pin(PIN2_REFERENCE, pin2, 6))
        self.puk = self.add_pin(self._pin(PUK_REFERENCE, puk, 7, unblocked_by=None))
        self.add_key(
            CardKey(AUTH_KEY_REFERENCE, data.auth_key, PIN1_REFERENCE, operations=frozenset({CRT_DST, CRT_CT}))
        )
        self.add_key(
            CardKey(
                profile.sign_key_reference,
                data.sign_key,
                PIN2_REFERENCE,
                pin_always=True,
                operations=frozenset({CRT_DST}),
            )
        )

        self._hash: bytes | None = None
        self._build(data)

    @staticmethod
    def _pin(reference: int, value: str, min_length: int, *, unblocked_by: int | None = PUK_REFERENCE) -> Pin:
        if not (min_length <= len(value) <= PIN_STORED_LENGTH and value.isdigit()):
            raise InvalidInputError(f"This FINEID PIN must have {min_length} to {PIN_STORED_LENGTH} digits.")
        return Pin(
            reference,
            value.encode(),
            min_length,
            PIN_STORED_LENGTH,
            max_tries=PIN_TRIES,
            pad_length=PIN_STORED_LENGTH,
            pad_byte=0x00,
            unblocked_by=unblocked_by,
        )

    def _build(self, data: FineidCardData) -> None:
        mf = self.mf
        mf.name = PKCS15_AID
        mf.add(FineidEF(b"\x2f\x00", tlv(0x61, tlv(0x4F, PKCS15_AID) + tlv(0x50, b"FINEID") + tlv(0x51, b"\x3f\x00"))))
        mf.add(
            FineidEF(
                b"\x50\x31",
                tlv(0xA0, path(bytes.fromhex("3F004402")))  # private keys
                + tlv(0xA4, path(bytes.fromhex("3F004403")))  # certificates
                + tlv(0xA5, path(bytes.fromhex("3F004404")))  # trusted certificates
                + tlv(0xA8, path(bytes.fromhex("3F004401"))),  # authentication objects
            )
        )
        token_info = seq(
            integer(0),
            octets(data.card_number.encode()),
            utf8(self.profile.manufacturer),
            tlv(0x80, b"HENKILOKORTTI"),
            bits(0, 2, 3),  # readonly, prnGeneration, eidCompliant
        )
        mf.add(FineidEF(b"\x50\x32", token_info))
        mf.add(
            FineidEF(
                b"\x44\x01",
                _pin_object(PIN1_LABEL, 1, (4, 5), self.pin1, 3)  # initialized, needs-padding
                + _pin_object(PIN2_LABEL, 2, (1, 4, 5), self.pin2, 3)  # + local
                + _pin_object(PUK_LABEL, 3, (1, 4, 5, 6), self.puk, None),  # + unblockingPin
            )
        )
        mf.add(
            FineidEF(
                b"\x44\x02",
                _key_object(AUTH_KEY_LABEL, 0x45, 1, self.profile.auth_usage_bits, AUTH_KEY_REFERENCE, data.auth_key)
                + _key_object(  # nonRepudiation
                    SIGN_KEY_LABEL, 0x46, 2, (9,), self.profile.sign_key_reference, data.sign_key
                ),
            )
        )
        mf.add(
            FineidEF(
                b"\x44\x03",
                _cert_object(AUTH_LABEL, 0x45, bytes.fromhex("3F004331"))
                + _cert_object(SIGN_LABEL, 0x46, b"\x3f\x00\x50\x16" + self.profile.sign_cert_fid),
            )
        )
        ca_names = x509.load_der_x509_certificate(data.ca_cert).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ca_label = str(ca_names[0].value) if ca_names else "CA"
        mf.add(FineidEF(b"\x44\x04", _cert_object(ca_label, 0x47, bytes.fromhex("3F004334"), authority=True)))
        mf.add(FineidEF(b"\x43\x31", data.auth_cert))
        mf.add(FineidEF(b"\x43\x34", data.ca_cert))
        esign = DF(b"\x50\x16")
        mf.add(esign)
        esign.add(FineidEF(self.profile.sign_cert_fid, data.sign_cert))

    # -- state ------------------------------------------------------------------------------
    def power_off(self) -> None:
        super().power_off()
        self._hash = None

    # -- commands ---------------------------------------------------------------------------
    def handle(self, apdu: CommandApdu) -> bytes:
        if apdu.ins == INS_GET_DATA:
            return self.get_data(apdu)
        if apdu.ins == INS_INTERNAL_AUTHENTICATE:
            return sw(SW_INS_NOT_SUPPORTED)
        if apdu.ins == INS_READ_BINARY and apdu.le_is_max and not apdu.extended:
            apdu = CommandApdu(apdu.cla, apdu.ins, apdu.p1, apdu.p2, apdu.data, READ_BINARY_MAX, False)
            response = self.read_binary(apdu)
            if response[-2:] == b"\x62\x82" and len(response) > 2:  # Le 00: what there is, 9000
                return response[:-2] + b"\x90\x00"
            return response
        return super().handle(apdu)

    def get_data(self, apdu: CommandApdu) -> bytes:
        data = apdu.data
        if (apdu.p1, apdu.p2) != (0x00, 0xFF) or len(data) != 5 or data[:4] != b"\xa0\x03\x83\x01":
            return sw(SW_REF_NOT_FOUND)
        pin = next((p for p in self.pins if p.reference == data[4]), None)
        if pin is None:
            return sw(SW_REF_NOT_FOUND)
        body = (
            tlv(0x83, bytes([pin.reference]))
            + tlv(0x8C, b"\xf0\x00\x00\x00")
            + tlv(0x9C, b"\xf0\x00\x00\x00")
            + tlv(0xDF21, bytes([pin.tries_left, 0xFF, 0xA5, 0x03]))
            + tlv(0xDF27, b"\xff\xff")
            + tlv(0xDF28, bytes([PIN_STORED_LENGTH]))
            + tlv(0xDF2F, b"\x00" if pin.reference in self.not_active else b"\x01")
        )
        return self.answer(tlv(0xA0, body), apdu)

    # -- PINs not activated yet -------------------------------------------------------------
    def issue_not_active(self, option: str) -> None:
        """Issue the card with the PIN ``option`` (``pin``: PIN1, ``pin2``: PIN2) not
        activated: DF2F 00, VERIFY refused until the holder changes it."""
        pins = {"pin": self.pin1, "pin2": self.pin2}
        if option not in pins:
            raise InvalidInputError(f"Only PIN1 and PIN2 can be issued not activated, not {option!r}.")
        self.not_active.add(pins[option].reference)

    def verify(self, apdu: CommandApdu) -> bytes:
        pin = self.find_pin(apdu.p2)
        if pin is not None and pin.reference in self.not_active and apdu.p1 == 0x00 and apdu.data:
            return sw(SW_CONDITIONS)  # not active: no try spent, nothing verified
        return super().verify(apdu)

    def change_reference_data(self, apdu: CommandApdu) -> bytes:
        response = super().change_reference_data(apdu)
        pin = self.find_pin(apdu.p2)
        if pin is not None and apdu.p1 == 0x00 and response[-2:] == b"\x90\x00":
            self.not_active.discard(pin.reference)  # changed by its holder: active
        return response

    def manage_security_environment(self, apdu: CommandApdu) -> bytes:
        self._hash = None
        return super().manage_security_environment(apdu)

    def algorithm_ok(self, template: int, key: CardKey, algorithm: bytes | None) -> bool:
        if template != CRT_DST:
            return True
        if algorithm is None or len(algorithm) != 1 or algorithm[0] & 0xF0 not in HASH_NIBBLES:
            return False
        if isinstance(key.private_key, rsa.RSAPrivateKey):
            return algorithm[0] & 0x0F in (ALG_RSA_PKCS1, ALG_RSA_PSS)
        return algorithm[0] & 0x0F == ALG_ECDSA

    def perform_security_operation(self, apdu: CommandApdu) -> bytes:
        if (apdu.p1, apdu.p2) == (0x90, 0xA0):  # PSO HASH, hash computed outside the card
            environment = self.environment.get(CRT_DST)
            if environment is None:
                return sw(SW_CONDITIONS)
            data = apdu.data
            if len(data) < 2 or data[0] != 0x90 or data[1] != len(data) - 2 or data[1] not in (20, 28, 32, 48, 64):
                return sw(SW_WRONG_DATA)
            named = self.keys[environment[0x84][0]]
            if (
                isinstance(named.private_key, rsa.RSAPrivateKey)
                and data[1] != HASH_NIBBLES[environment[0x80][0] & 0xF0]
            ):
                return sw(SW_WRONG_DATA)  # the card would put another hash's DigestInfo in front
            self._hash = data[2:]
            return sw(SW_OK)
        if (apdu.p1, apdu.p2) == (0x9E, 0x9A):
            digest, self._hash = self._hash, None
            if apdu.data or digest is None:
                return sw(SW_CONDITIONS)
            key = self._key_for(CRT_DST)
            if isinstance(key, int):
                return sw(key)
            try:
                signature = card_signature(key.private_key, self.environment[CRT_DST][0x80][0], digest)
            except ValueError:
                return sw(SW_WRONG_DATA)
            if key.pin_always:
                self.verified.discard(key.pin_reference)
            return self.answer(signature, apdu)
        return sw(SW_INCORRECT_P1P2)


# -- making the card -----------------------------------------------------------------------
def load_or_create_fineid(
    folder: Path,
    *,
    reader: int = 0,
    ca: DevCA | None = None,
    citizen: FinnishCitizen | None = None,
    profile: FineidProfile = V4,
) -> FineidCardData:
    """The card's keys and certificates, made once in ``folder/fineid-card-READER`` (v4) or
    ``folder/fineid-v3-card-READER`` (mode 0700); the CA is ``folder/ca`` unless ``ca`` is
    given."""
    prefix = "fineid" if profile is V4 else f"fineid-{profile.name}"
    store = CardFolder(folder / f"{prefix}-card-{reader}")
    authority = ca or DevCA.load_or_create(folder / "ca")
    ca_der = authority.certificate.public_bytes(serialization.Encoding.DER)
    ca_fingerprint = authority.certificate.fingerprint(hashes.SHA256()).hex()
    stored = store.load()
    if stored is not None and stored[1].get("ca") == ca_fingerprint:
        keys, meta = stored
        return FineidCardData(
            keys.auth_key, keys.auth_cert, keys.sign_key, keys.sign_cert, ca_der, str(meta["card_number"])
        )
    person = citizen or FinnishCitizen()
    auth_key, sign_key = generate_key(profile.auth_key), generate_key(profile.sign_key)
    auth_cert = authority.issue(
        auth_key.public_key(),
        person,
        Purpose.AUTHENTICATION,
        key_usage=profile.auth_key_usage,
        extended_key_usage=[],
    )
    sign_cert = authority.issue(
        sign_key.public_key(),
        person,
        Purpose.SIGNING,
        key_usage=citizen_key_usage(non_repudiation=True),
        extensions=[x509.UnrecognizedExtension(_QC_STATEMENTS, _qc_statements())],
    )
    card_number = str(secrets.randbelow(900_000_000) + 100_000_000)
    meta = {"card_number": card_number, "profile": profile.name, "ca": ca_fingerprint}
    store.save(auth_key, auth_cert, sign_key, sign_cert, meta)
    return FineidCardData(
        auth_key,
        auth_cert.public_bytes(serialization.Encoding.DER),
        sign_key,
        sign_cert.public_bytes(serialization.Encoding.DER),
        ca_der,
        card_number,
    )


_PINS = (
    PinDefault("pin", "PIN1 (perustunnusluku)", DEFAULT_PINS["pin"]),
    PinDefault("pin2", "PIN2 (allekirjoitustunnusluku)", DEFAULT_PINS["pin2"]),
    PinDefault("puk", "PUK", DEFAULT_PINS["puk"]),
)
PROFILE_BY_KEY = {"ec-p384": V4, "rsa-2048": V3}  # --key: the authentication key's type


def _make(folder: Path, reader: int, key: str, pins: Mapping[str, str]) -> FineidApplet:
    profile = PROFILE_BY_KEY[key]
    return FineidApplet(
        load_or_create_fineid(folder, reader=reader, profile=profile),
        pin1=pins["pin"],
        pin2=pins["pin2"],
        puk=pins["puk"],
        profile=profile,
    )


# ``--kind fineid`` (v4; with ``--key rsa-2048`` the v3 card) and ``--kind fineid-v3``.
KIND = AppletKind(
    name="fineid",
    title=V4.title,
    pins=_PINS,
    keys=("ec-p384", "rsa-2048"),
    make=_make,
    not_active_pins=("pin", "pin2"),
)
KIND_V3 = AppletKind(name="fineid-v3", title=V3.title, pins=_PINS, keys=("rsa-2048",), make=_make)
