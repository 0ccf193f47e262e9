"""The Estonian ID card's Thales profile (cards issued since December 2025), emulated.

The card runs the same Thales MultiApp application as the Finnish v4 card (OpenSC master
drives both with one driver, ``card-esteid2025.c``; web-eid's libelectronic-id derives
``EstEIDThales`` and ``FinEIDv4`` from one ``EIDThales``), so this applet is
:class:`~cardbridge.emulator.fineid.FineidApplet`'s commands (GET DATA of a PIN's
attributes, MSE SET ``80 <04 | hash> 84 <key>``, PSO HASH ``90 A0`` with tag 90, PSO CDS,
READ BINARY answering at most B5 bytes for Le 00) with the Estonian card's objects. The
public facts, as OpenSC master (``card-esteid2025.c``, ``pkcs15-esteid2025.c``) and
libelectronic-id (``EstEIDThales``) use them:

- ATR ``3B FF 96 00 00 80 31 FE 43 80 31 B8 53 65 49 44 64 B0 85 05 10 12 23 3F 1D`` (OpenSC
  master "EstEID 2025"; T=0 and T=1); the application ``A0 00 00 00 63 50 4B 43 53 2D 31
  35``, selected by AID (and to log out);
- the document number: ``DFDD/5007``, 9 alphanumeric bytes (OpenSC's serial); the
  authentication certificate ``ADF1/3411`` ("Isikutuvastus"), the signing certificate
  ``ADF2/3421`` ("Allkirjastamine"), selected by path from the MF (``00 A4 08 04`` or
  ``0C``);
- PIN1 reference 81 (4-12 digits), PIN2 82 (5-12), PUK 83 (8-12), each padded with 00 to
  12 bytes, 3 tries; GET DATA ``00 CB 00 FF A0 03 83 01 <ref>``: the tries left first in
  DF21, DF2F 00 when the PIN is not active yet and must be changed first (OpenSC master:
  "needs change", ``CKF_USER_PIN_TO_BE_CHANGED``; libelectronic-id's ``EstEIDThales``:
  ``pinActive`` false for either PIN; the Web eID app then asks for no PIN: PIN1 not active
  means the card, delivered by courier, must first be activated in the Police and Border
  Guard Board's self-service portal, PIN2 not active that PIN2 must be changed in DigiDoc4);
- the authentication key 01 (ECC P-384, PIN1; sign and ECDH), the signing key 05 (ECC
  P-384, PIN2, nonRepudiation, a VERIFY before each signature).

What the public sources do not give, and what is chosen here (the card's own developer
guide, ``tdc_est_eid_developer_guide.pdf`` on id.ee, was not readable for this emulator):

- the FCP of the files (here FINEID's: ``62 81 <size> 82 01 83 <fid> 8A 05``), the other
  files of DFDD (the personal data; only 5007 is here), whether ADF1/ADF2 have DF names
  (here none), any EF.DIR or PKCS#15 files (none: both drivers use fixed paths, OpenSC a
  synthetic PKCS#15), and the status words of each error (here FINEID's: 63Cx, 6983, 6A80,
  6700, 6985, 6A88);
- whether PIN1 and PIN2 are local to a DF (OpenSC's emulation flags them local but both
  drivers VERIFY without selecting a DF first; here they verify anywhere);
- what the card answers to a PIN that is not active (``dev card --kind esteid-thales
  --pin-not-active`` or ``--pin2-not-active``; by default both are active, DF2F 01): no
  source gives a status word, so this card answers as
  :class:`~cardbridge.emulator.fineid.FineidApplet` does — VERIFY with data ``6985``, no
  try spent, the key refuses to sign (``6982``), and CHANGE REFERENCE DATA with the old and
  new PIN activates it (the self-service portal's activation of PIN1 is not emulated);
- whether the authentication key is used with another algorithm byte than ECDSA with a
  hash (OpenSC master sends 54, libelectronic-id 04 | hash; both accepted);
- the certificates: from the development CA, the holder named as :class:`EstonianCitizen`
  (the 2018 cards' subject; the 2025 cards are issued by ESTEID2025, Zetes); EF 5007 holds
  the document number as "N" and eight digits.

Not emulated: key agreement (MSE SET B8 is accepted, PSO DECIPHER is not), PIN change and
unblocking by the PUK beyond the engine's RESET RETRY COUNTER, contactless (PACE).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from cardbridge.emulator.cardfiles import CardFolder
from cardbridge.emulator.devpki import DevCA, citizen_key_usage
from cardbridge.emulator.esteid import EsteidData, EstonianCitizen
from cardbridge.emulator.fineid import PIN_STORED_LENGTH, PKCS15_AID, FineidApplet, FineidEF
from cardbridge.emulator.iso7816 import DF, CardKey, Iso7816Card, Pin
from cardbridge.emulator.kinds import AppletKind, PinDefault
from cardbridge.errors import InvalidInputError
from cardbridge.iso7816 import CRT_CT, CRT_DST
from cardbridge.model import Purpose

ATR = bytes.fromhex("3B FF 96 00 00 80 31 FE 43 80 31 B8 53 65 49 44 64 B0 85 05 10 12 23 3F 1D")
PIN1_REFERENCE, PIN2_REFERENCE, PUK_REFERENCE = 0x81, 0x82, 0x83
AUTH_KEY_REFERENCE, SIGN_KEY_REFERENCE = 0x01, 0x05
TRIES = 3
DEFAULT_PINS = {"pin": "1234", "pin2": "12345", "puk": "17258403"}


class EsteidThalesCard(FineidApplet):
    """The Estonian ID card (Thales, 2025): the Thales application's commands
    (:class:`FineidApplet`) with the Estonian files, PINs and keys; see the module text."""

    t0 = False  # the card offers T=1 too; answers come without 61xx

    def __init__(self, data: EsteidData, *, pin1: str, pin2: str, puk: str) -> None:
        Iso7816Card.__init__(self, ATR)  # FineidApplet's own files and PINs are not this card's
        self.not_active: set[int] = set()
        self.pin1 = self.add_pin(_pin(PIN1_REFERENCE, pin1, 4))
        self.pin2 = self.add_pin(_pin(PIN2_REFERENCE, pin2, 5))
        self.puk = self.add_pin(_pin(PUK_REFERENCE, puk, 8, unblocked_by=None))
        self.add_key(
            CardKey(AUTH_KEY_REFERENCE, data.auth_key, PIN1_REFERENCE, operations=frozenset({CRT_DST, CRT_CT}))
        )
        self.add_key(
            CardKey(SIGN_KEY_REFERENCE, data.sign_key, PIN2_REFERENCE, pin_always=True, operations=frozenset({CRT_DST}))
        )
        self._hash = None
        mf = self.mf
        mf.name = PKCS15_AID
        personal = DF(b"\xdf\xdd")
        mf.add(personal)
        personal.add(FineidEF(b"\x50\x07", data.document_number.encode()))
        for fid, efid, der in ((b"\xad\xf1", b"\x34\x11", data.auth_cert), (b"\xad\xf2", b"\x34\x21", data.sign_cert)):
            adf = DF(fid)
            mf.add(adf)
            adf.add(FineidEF(efid, der))


def _pin(reference: int, value: str, min_length: int, *, unblocked_by: int | None = PUK_REFERENCE) -> Pin:
    if not (min_length <= len(value) <= PIN_STORED_LENGTH and value.isdigit()):
        raise InvalidInputError(f"This PIN must have {min_length} to {PIN_STORED_LENGTH} digits.")
    return Pin(
        reference,
        value.encode(),
        min_length,
        PIN_STORED_LENGTH,
        max_tries=TRIES,
        pad_length=PIN_STORED_LENGTH,
        pad_byte=0x00,
        unblocked_by=unblocked_by,
    )


def load_or_create_esteid_thales(folder: Path, *, reader: int = 0, ca: DevCA | None = None) -> EsteidData:
    """The card's keys and certificates, made once in ``folder/esteid-thales-card-READER``
    with the development CA in ``folder/ca``."""
    store = CardFolder(folder / f"esteid-thales-card-{reader}")
    holder = EstonianCitizen()
    stored = store.load()
    if stored is not None:
        keys, meta = stored
        if isinstance(keys.auth_key, ec.EllipticCurvePrivateKey) and isinstance(
            keys.sign_key, ec.EllipticCurvePrivateKey
        ):
            return EsteidData(keys.auth_key, keys.auth_cert, keys.sign_key, keys.sign_cert, meta["document"], holder)
    authority = ca or DevCA.load_or_create(folder / "ca")
    auth_key, sign_key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    auth_cert = authority.issue(
        auth_key.public_key(),
        holder,
        Purpose.AUTHENTICATION,
        key_usage=citizen_key_usage(digital_signature=True, key_agreement=True),
    )
    sign_cert = authority.issue(sign_key.public_key(), holder, Purpose.SIGNING)
    document = "N" + str(int.from_bytes(os.urandom(4), "big") % 100_000_000).rjust(8, "0")
    saved = store.save(auth_key, auth_cert, sign_key, sign_cert, {"document": document, "ca": str(authority.cert_path)})
    return EsteidData(auth_key, saved.auth_cert, sign_key, saved.sign_cert, document, holder)


def _make(folder: Path, reader: int, key: str, pins: Mapping[str, str]) -> EsteidThalesCard:
    data = load_or_create_esteid_thales(folder, reader=reader)
    return EsteidThalesCard(data, pin1=pins["pin"], pin2=pins["pin2"], puk=pins["puk"])


KIND = AppletKind(
    name="esteid-thales",
    title="Estonian ID card (Thales, 2025)",
    pins=(
        PinDefault("pin", "PIN1", DEFAULT_PINS["pin"]),
        PinDefault("pin2", "PIN2", DEFAULT_PINS["pin2"]),
        PinDefault("puk", "PUK", DEFAULT_PINS["puk"]),
    ),
    keys=("ec-p384",),
    make=_make,
    not_active_pins=("pin", "pin2"),
)
