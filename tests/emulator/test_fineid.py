"""The emulated Finnish ID card (FINEID S1 / S4-1 v4.0) at the APDU level, and the FINEID
driver's commands against it (pure: the driver's ApduTransport talks to the applet's
``process`` directly, no pcscd)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID

from cardbridge.certs import parse_certificate
from cardbridge.emulator.devpki import DevCA, FinnishCitizen, is_valid_satu, satu_check_character
from cardbridge.emulator.fineid import ATR, ATR_V3, PKCS15_AID, V3, FineidApplet, load_or_create_fineid
from cardbridge.emulator.iso7816 import parse_tlv
from cardbridge.errors import PinBlockedError, PinIncorrectError
from cardbridge.model import SignatureAlgorithm
from cardbridge.pcsc.apdu import ApduTransport
from cardbridge.pcsc.atr import identify
from cardbridge.pcsc.cardtoken import SignRequest
from cardbridge.pcsc.filesystem import FileSystemSession, Location
from cardbridge.pcsc.fineid import AUTH_KEY, PIN1, PIN2, SIGN_KEY, SIGN_KEY_V3, FineidToken, FineidV3Token
from tests.cards import Direct, send, verify_signature

SELECT_AID = bytes.fromhex("00A4040C0C") + PKCS15_AID
ES384 = SignatureAlgorithm("ECC", "SHA-384", "NONE")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fineid")


@pytest.fixture
def card(folder: Path) -> FineidApplet:
    return FineidApplet(load_or_create_fineid(folder), pin1="1234", pin2="123456", puk="12345678")


def padded(pin: str) -> str:
    return pin.encode().ljust(12, b"\x00").hex()


def driver(card: FineidApplet) -> tuple[FineidToken, FileSystemSession]:
    """The driver's card commands without a reader (its token methods that take a session)."""
    return FineidToken.__new__(FineidToken), FileSystemSession(ApduTransport(Direct(card)))


def test_the_atr_picks_the_fineid_driver() -> None:
    card = identify(ATR)
    assert (card.driver, card.known, card.name) == ("fineid", True, "Finnish ID card (FINEID v4)")
    # The 2025 batch (OpenSC master's "FinEID 2025") differs in bytes 12-13 only.
    assert identify(bytes.fromhex("3B7F96000080 31B865B085051024122460829000".replace(" ", ""))).driver == "fineid"
    # The Gemalto v3 generations (S4-1 v3.0 and v3.1) have a driver of their own profile.
    assert identify(ATR_V3).driver == "fineid-v3"
    assert identify(bytes.fromhex("3B7F96000080 31B865B085040 21B1200F6829000".replace(" ", ""))).driver == "fineid-v3"


def test_satu_check_character() -> None:
    # The test cards' SATUs in libelectronic-id's recorded FINEID traces.
    assert satu_check_character("99902038") == "C"
    assert satu_check_character("99900335") == "E"
    assert is_valid_satu("99902038C") and not is_valid_satu("99902038D") and not is_valid_satu("9990203C")


def test_certificates_name_the_holder_as_the_finnish_register_does(folder: Path) -> None:
    data = load_or_create_fineid(folder)
    cert = x509.load_der_x509_certificate(data.auth_cert)
    person = FinnishCitizen()
    assert [a.oid for a in cert.subject] == [
        NameOID.COUNTRY_NAME,
        NameOID.SERIAL_NUMBER,
        NameOID.GIVEN_NAME,
        NameOID.SURNAME,
        NameOID.COMMON_NAME,
    ]
    values = {a.oid: a.value for a in cert.subject}
    assert values[NameOID.SERIAL_NUMBER] == person.satu and is_valid_satu(person.satu)
    assert values[NameOID.COMMON_NAME] == f"MEIKÄLÄINEN MAIJA {person.satu}"
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_agreement and not usage.content_commitment
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    sign = x509.load_der_x509_certificate(data.sign_cert)
    assert sign.extensions.get_extension_for_class(x509.KeyUsage).value.content_commitment
    assert isinstance(sign.public_key(), ec.EllipticCurvePublicKey) and sign.public_key().curve.key_size == 384
    # Made once: the same card next time.
    assert load_or_create_fineid(folder).auth_cert == data.auth_cert
    ca = DevCA.load_or_create(folder / "ca").certificate
    assert ca.public_bytes(serialization.Encoding.DER) == data.ca_cert


def test_select_and_read_as_the_recorded_readers_do(card: FineidApplet) -> None:
    assert card.atr == ATR and ATR.hex().upper().startswith("3B7F96")
    assert send(card, SELECT_AID) == (b"", 0x9000)
    # libelectronic-id: SELECT by path from the MF with FCP; a T=0 card says 61xx first.
    _, status = send(card, "00A40804024331" + "00")
    assert status >> 8 == 0x61
    fcp, status = send(card, f"00C00000{status & 0xFF:02X}")
    assert status == 0x9000
    size = int.from_bytes(dict(parse_tlv(dict(parse_tlv(fcp))[0x62]))[0x81], "big")
    # READ BINARY with Le 00 answers 181 bytes at a time, as the recorded card did.
    chunk, status = send(card, "00B0000000")
    assert status == 0x9000 and len(chunk) == 0xB5
    content = b""
    while len(content) < size:
        part, status = send(card, f"00B0{len(content):04X}00")
        assert status == 0x9000
        content += part
    assert x509.load_der_x509_certificate(content).subject.rfc4514_string().startswith("CN=MEIKÄLÄINEN MAIJA")
    assert send(card, "00A408040450164332")[1] >> 8 == 0x61
    assert send(card, "00A4080C024333")[1] == 0x6A82


def test_get_data_pin_attributes_and_counters(card: FineidApplet) -> None:
    send(card, SELECT_AID)
    _, status = send(card, "00CB00FF05A003830111")
    assert status == 0x6125
    info, status = send(card, "00C0000025")
    assert status == 0x9000
    assert info == bytes.fromhex("A023830111 8C04F0000000 9C04F0000000 DF210405FFA503 DF2702FFFF DF28010C DF2F0101")
    assert send(card, "00200011")[1] == 0x63C5
    for left in (4, 3, 2, 1, 0):
        assert send(card, "002000110C" + padded("9999"))[1] == 0x63C0 | left
    assert send(card, "002000110C" + padded("1234"))[1] == 0x6983
    send(card, "00CB00FF05A003830111")
    assert send(card, "00C0000025")[0][20] == 0  # DF21: no tries left
    # The PUK unblocks and sets a new PIN1 (RESET RETRY COUNTER P1 00, both padded).
    assert send(card, "002C001118" + padded("12345678") + padded("4321"))[1] == 0x9000
    assert send(card, "002000110C" + padded("4321"))[1] == 0x9000


def test_pin_length_rules(card: FineidApplet) -> None:
    send(card, SELECT_AID)
    assert send(card, "002000820C" + padded("12345"))[1] == 0x6A80  # PIN2 has 6 to 12 digits
    assert send(card, "0020008206" + b"123456".hex())[1] == 0x6700  # not padded to 12
    assert send(card, "00200082")[1] == 0x63C5  # neither spent a try


def sign_apdus(card: FineidApplet, key: int, digest: bytes, algorithm: int = 0x54) -> tuple[bytes, int]:
    assert send(card, f"002241B6068001{algorithm:02X}8401{key:02X}")[1] == 0x9000
    assert send(card, f"002A90A0{len(digest) + 2:02X}90{len(digest):02X}" + digest.hex())[1] == 0x9000
    return send(card, "002A9E9A00")


def test_mse_hash_and_compute_signature(card: FineidApplet, folder: Path) -> None:
    data = load_or_create_fineid(folder)
    digest = hashlib.sha384(b"M").digest()
    send(card, SELECT_AID)
    assert sign_apdus(card, 0x01, digest)[1] == 0x6982  # no PIN1 yet
    assert send(card, "002000110C" + padded("1234"))[1] == 0x9000
    signature, status = sign_apdus(card, 0x01, digest)
    assert status == 0x9000 and len(signature) == 96
    verify_signature(data.auth_cert, digest, signature)
    assert sign_apdus(card, 0x01, digest)[1] == 0x9000  # PIN1 stays verified
    # The signature key wants PIN2 before every signature.
    assert send(card, "002000820C" + padded("123456"))[1] == 0x9000
    signature, status = sign_apdus(card, 0x02, digest)
    assert status == 0x9000
    verify_signature(data.sign_cert, digest, signature)
    assert sign_apdus(card, 0x02, digest)[1] == 0x6982
    # COMPUTE DIGITAL SIGNATURE needs PSO HASH first; unknown keys and algorithms are refused.
    assert send(card, "002241B606800154840101")[1] == 0x9000
    assert send(card, "002A9E9A00")[1] == 0x6985
    assert send(card, "002241B606800154840107")[1] == 0x6A88
    assert send(card, "002241B606800102840101")[1] == 0x6A80  # not ECDSA
    # SELECT by AID logs out.
    send(card, SELECT_AID)
    assert sign_apdus(card, 0x01, digest)[1] == 0x6982


def test_pkcs15_directory_files(card: FineidApplet) -> None:
    files = {c.fid.hex().upper(): c for c in card.mf.children}
    assert {"2F00", "5031", "5032", "4401", "4402", "4403", "4404", "4331", "4334", "5016"} <= set(files)
    (record,) = parse_tlv(files["2F00"].data)  # type: ignore[union-attr]
    assert record[0] == 0x61 and dict(parse_tlv(record[1]))[0x4F] == PKCS15_AID
    odf = dict(parse_tlv(files["5031"].data))  # type: ignore[union-attr]
    assert set(odf) == {0xA0, 0xA4, 0xA5, 0xA8}
    aodf = files["4401"].data  # type: ignore[union-attr]
    assert b"perustunnusluku" in aodf and b"allekirjoitustunnusluku" in aodf


def test_driver_reads_pin_state_and_signs(card: FineidApplet, folder: Path) -> None:
    token, fs = driver(card)
    data = load_or_create_fineid(folder)
    cert = parse_certificate(data.auth_cert, key_id=AUTH_KEY.key_id, label=AUTH_KEY.label)
    state = token.pin_state(fs, PIN1)
    assert (state.retries_left, state.blocked) == (5, False)
    digest = hashlib.sha384(b"origin-bound").digest()
    fs.select_aid(PKCS15_AID)
    fs.verify(PIN1, bytearray(b"1234"))
    request = SignRequest(cert, bytearray(), digest, SignatureAlgorithm("ECC", "SHA-384", "NONE"))
    verify_signature(data.auth_cert, digest, token.compute_signature(fs, AUTH_KEY, request))
    # A wrong PIN2 counts down; the driver reads the counter with GET DATA.
    with pytest.raises(PinIncorrectError) as info:
        fs.verify(PIN2, bytearray(b"000000"))
    assert info.value.retries_left == 4
    assert token.pin_state(fs, PIN2).retries_left == 4
    assert fs.read_file(Location(aid=PKCS15_AID, path=bytes.fromhex("50164332"))).startswith(data.sign_cert)
    for _ in range(3):
        with pytest.raises(PinIncorrectError):
            fs.verify(PIN2, bytearray(b"000000"))
    with pytest.raises(PinBlockedError):
        fs.verify(PIN2, bytearray(b"000000"))
    assert token.pin_state(fs, PIN2).blocked
    assert SIGN_KEY.pin is PIN2 and PIN2.name == "PIN2 (allekirjoitustunnusluku)"


# -- the v3 profile (S4-1 v3.0: RSA-2048 authentication key, ECC P-256 signature key 03) -----
@pytest.fixture
def card_v3(folder: Path) -> FineidApplet:
    data = load_or_create_fineid(folder, profile=V3)
    return FineidApplet(data, pin1="1234", pin2="123456", puk="12345678", profile=V3)


def test_v3_keys_certificates_and_files(card_v3: FineidApplet, folder: Path) -> None:
    data = load_or_create_fineid(folder, profile=V3)
    assert card_v3.atr == ATR_V3 and data.auth_cert != load_or_create_fineid(folder).auth_cert
    auth = x509.load_der_x509_certificate(data.auth_cert)
    auth_key = auth.public_key()
    assert isinstance(auth_key, rsa.RSAPublicKey) and auth_key.key_size == 2048
    usage = auth.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and usage.data_encipherment
    assert not usage.key_agreement
    sign = x509.load_der_x509_certificate(data.sign_cert)
    sign_key = sign.public_key()
    assert isinstance(sign_key, ec.EllipticCurvePublicKey) and sign_key.curve.name == "secp256r1"
    # The signature certificate is 5016/4335; the RSA slot 4332 is empty on these cards.
    send(card_v3, SELECT_AID)
    assert send(card_v3, "00A4080C0450164332")[1] == 0x6A82
    assert send(card_v3, "00A4080C0450164335")[1] == 0x9000
    prkd = card_v3.mf.child(b"\x44\x02")
    assert prkd is not None and not isinstance(prkd, type(card_v3.mf))
    (rsa_key, ec_key) = parse_tlv(prkd.data)  # type: ignore[union-attr]
    assert rsa_key[0] == 0x30 and b"\x02\x02\x08\x00" in rsa_key[1]  # privateRSAKey, modulusLength 2048
    assert ec_key[0] == 0xA0 and b"\x02\x02\x01\x00" in ec_key[1]  # privateECKey, 256 bits


def test_v3_rsa_signs_pkcs1_v15_with_the_digest_info_and_pss(card_v3: FineidApplet, folder: Path) -> None:
    data = load_or_create_fineid(folder, profile=V3)
    public = x509.load_der_x509_certificate(data.auth_cert).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    digest = hashlib.sha256(b"M").digest()
    send(card_v3, SELECT_AID)
    assert send(card_v3, "002000110C" + padded("1234"))[1] == 0x9000
    signature, status = sign_apdus(card_v3, 0x01, digest, algorithm=0x42)
    assert status == 0x9000 and len(signature) == 256
    public.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    signature, status = sign_apdus(card_v3, 0x01, digest, algorithm=0x45)
    public.verify(signature, digest, padding.PSS(padding.MGF1(hashes.SHA256()), 32), utils.Prehashed(hashes.SHA256()))
    # ECDSA with the RSA key, or a hash that is not the one MSE SET named: refused.
    assert send(card_v3, "002241B606800144840101")[1] == 0x6A80
    assert send(card_v3, "002241B606800152840101")[1] == 0x9000
    assert send(card_v3, "002A90A022 9020".replace(" ", "") + digest.hex())[1] == 0x6A80
    # The signature key 03 wants PIN2; ECDSA on P-256.
    assert send(card_v3, "002000820C" + padded("123456"))[1] == 0x9000
    signature, status = sign_apdus(card_v3, 0x03, digest, algorithm=0x44)
    assert status == 0x9000 and len(signature) == 64
    verify_signature(data.sign_cert, digest, signature)


def test_v3_driver_signs_rs256_ps256_and_es256(card_v3: FineidApplet, folder: Path) -> None:
    data = load_or_create_fineid(folder, profile=V3)
    token, fs = FineidV3Token.__new__(FineidV3Token), FileSystemSession(ApduTransport(Direct(card_v3)))
    auth = parse_certificate(data.auth_cert, key_id=AUTH_KEY.key_id, label=AUTH_KEY.label)
    algorithms = list(token.supported_algorithms(auth))
    assert [a.jws for a in algorithms] == ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    public = x509.load_der_x509_certificate(data.auth_cert).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    fs.select_aid(PKCS15_AID)
    fs.verify(PIN1, bytearray(b"1234"))
    for algorithm in (algorithms[0], algorithms[3]):
        digest = hashlib.sha256(b"origin-bound").digest()
        signature = token.compute_signature(fs, AUTH_KEY, SignRequest(auth, bytearray(), digest, algorithm))
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15() if algorithm.padding == "PKCS1.5" else padding.PSS(padding.MGF1(hashes.SHA256()), 32)
        )
        public.verify(signature, digest, pad, utils.Prehashed(hashes.SHA256()))
    sign = parse_certificate(data.sign_cert, key_id=SIGN_KEY_V3.key_id, label=SIGN_KEY_V3.label)
    assert token.supported_algorithms(sign)[0].jws == "ES256"
    assert token.key_for(sign) is SIGN_KEY_V3 and SIGN_KEY_V3.key_reference == 0x03
    fs.verify(PIN2, bytearray(b"123456"))
    digest = hashlib.sha256(b"document").digest()
    es256 = SignatureAlgorithm("ECC", "SHA-256", "NONE")
    verify_signature(
        data.sign_cert, digest, token.compute_signature(fs, SIGN_KEY_V3, SignRequest(sign, bytearray(), digest, es256))
    )


def test_the_v3_card_is_a_kind_and_the_finnish_kind_with_an_rsa_key() -> None:
    from cardbridge.emulator.fineid import KIND, KIND_V3, PROFILE_BY_KEY, V4
    from cardbridge.emulator.kinds import card_kind
    from cardbridge.errors import InvalidInputError

    assert card_kind("fineid-v3") is KIND_V3 and PROFILE_BY_KEY[KIND_V3.keys[0]] is V3
    assert card_kind("fineid") is KIND and PROFILE_BY_KEY[KIND.keys[0]] is V4 and PROFILE_BY_KEY["rsa-2048"] is V3
    with pytest.raises(InvalidInputError):
        KIND.create(Path("/nonexistent"), reader=0, key="ec-p256", pins={})
    with pytest.raises(InvalidInputError):
        KIND_V3.create(Path("/nonexistent"), reader=0, key="ec-p384", pins={})


# -- a PIN not activated yet (DF2F 00) ---------------------------------------------------------
def test_a_pin_not_active_says_df2f_00_refuses_verify_and_signs_nothing(card: FineidApplet, folder: Path) -> None:
    card.issue_not_active("pin2")
    send(card, SELECT_AID)
    send(card, "00CB00FF05A003830182")
    info, status = send(card, "00C0000025")
    assert status == 0x9000 and info.endswith(bytes.fromhex("DF2F0100"))  # PIN2: not active
    send(card, "00CB00FF05A003830111")
    assert send(card, "00C0000025")[0].endswith(bytes.fromhex("DF2F0101"))  # PIN1: set by its holder
    # VERIFY is refused whatever the PIN, and spends no try; the key signs nothing.
    for pin in ("123456", "000000"):
        assert send(card, "002000820C" + padded(pin))[1] == 0x6985
    assert send(card, "00200082")[1] == 0x63C5 and card.pin2.tries_left == 5
    digest = hashlib.sha384(b"M").digest()
    assert sign_apdus(card, 0x02, digest)[1] == 0x6982
    # Changed by its holder (old and new PIN, as DigiDoc4 and DigiSign Client send it): active.
    assert send(card, "0024008218" + padded("123456") + padded("654321"))[1] == 0x9000
    send(card, "00CB00FF05A003830182")
    assert send(card, "00C0000025")[0].endswith(bytes.fromhex("DF2F0101"))
    assert send(card, "002000820C" + padded("654321"))[1] == 0x9000
    signature, status = sign_apdus(card, 0x02, digest)
    assert status == 0x9000
    verify_signature(load_or_create_fineid(folder).sign_cert, digest, signature)


def test_a_wrong_old_pin_does_not_activate_it(card: FineidApplet) -> None:
    card.issue_not_active("pin")
    send(card, SELECT_AID)
    assert send(card, "0024001118" + padded("9999") + padded("4321"))[1] == 0x63C4  # a wrong old PIN1 counts
    assert card.not_active == {0x11}
    assert send(card, "002000110C" + padded("1234"))[1] == 0x6985


def test_the_driver_reads_a_pin_not_active_from_df2f(card: FineidApplet) -> None:
    token, fs = driver(card)
    assert token.pin_state(fs, PIN2).active
    card.issue_not_active("pin2")
    state = token.pin_state(fs, PIN2)
    assert (state.retries_left, state.blocked, state.active) == (5, False, False)
    assert token.pin_state(fs, PIN1).active


def test_which_kinds_can_issue_a_pin_not_active(tmp_path: Path) -> None:
    from cardbridge.emulator.kinds import card_kind
    from cardbridge.errors import InvalidInputError

    for name in ("fineid", "esteid-thales"):
        assert card_kind(name).not_active_pins == ("pin", "pin2")
    for name, option in (
        ("esteid", "pin2"),
        ("belpic", "pin"),
        ("piv", "pin"),
        ("fineid-v3", "pin2"),
        ("fineid", "puk"),
    ):
        with pytest.raises(InvalidInputError, match="not activated"):
            card_kind(name).create(tmp_path / "never", reader=0, key=None, pins={}, not_active=(option,))
    assert not (tmp_path / "never").exists(), "refused before any key was made"
