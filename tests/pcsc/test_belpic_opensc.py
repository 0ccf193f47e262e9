"""The independent check of the emulated Belgian eID card: OpenSC's own ``belpic`` driver
(Debian's opensc: ``pkcs15-tool``, ``pkcs11-tool``, ``opensc-tool`` and
``opensc-pkcs11.so``) reads it through pcscd and vpcd, logs in and signs.

What Debian 12's OpenSC 0.23 can do with a Belgian card, and so what these tests ask of it:

- applet 1.7 (RSA-2048): list the certificates, log in, sign with the authentication key.
  It never signs with the non-repudiation key: its driver sends MSE SET for key 83 and
  then refuses by design ("No GUI for NonRep key present") — the test checks that the
  card took that MSE SET.
- applet 1.8 (ECDSA P-384): list the certificates and log in; ECDSA for belpic came with
  OpenSC 0.26, so the signing test skips while the installed module offers no ECDSA.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from cardbridge.emulator.belpic_card import DEFAULT_PIN, BelpicCard
from cardbridge.emulator.virtual_card import VirtualCard
from tests.pcsc.conftest import Pcscd, start_kind, stop_card

pytestmark = pytest.mark.pcsc

MODULE = Path("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so")


@pytest.fixture(autouse=True)
def _opensc() -> None:
    if not MODULE.exists() or shutil.which("pkcs11-tool") is None or shutil.which("pkcs15-tool") is None:
        pytest.skip("OpenSC (opensc, opensc-pkcs11) is not installed")


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({result.returncode}): {result.stdout}{result.stderr}")
    return result


def _p11(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run("pkcs11-tool", "--module", str(MODULE), *args, check=check)


def _applet(card: VirtualCard) -> BelpicCard:
    assert isinstance(card.applet, BelpicCard)
    return card.applet


def _list_certificates_matches(card: VirtualCard, tmp_path: Path) -> None:
    listing = _run("pkcs15-tool", "--list-certificates").stdout
    for label, cert_id, path in (
        ("Authentication", "02", "3f00df005038"),
        ("Signature", "03", "3f00df005039"),
        ("CA", "04", "3f00df00503a"),
        ("Root", "06", "3f00df00503b"),
    ):
        block = listing.split(f"X.509 Certificate [{label}]", 1)
        assert len(block) == 2, listing
        assert f"ID             : {cert_id}" in block[1].split("X.509 Certificate", 1)[0]
        assert f"Path           : {path}" in block[1].split("X.509 Certificate", 1)[0]
    data = _applet(card).data
    for cert_id, der in (("02", data.auth_cert), ("03", data.sign_cert)):
        pem = _run("pkcs15-tool", "--read-certificate", cert_id).stdout
        assert x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER) == der


def _wrong_pin_counts_down(card: VirtualCard) -> None:
    wrong = _p11("--login", "--pin", "9999", "--list-objects", check=False)
    assert wrong.returncode != 0 and "CKR_PIN_INCORRECT" in wrong.stderr, wrong.stderr
    # OpenSC's own reading of the counter (VERIFY without data): 63 C2.
    status = _run("opensc-tool", "--send-apdu", "00:20:00:01").stdout
    assert "SW1=0x63, SW2=0xC2" in status, status
    assert _applet(card).pin_tries_left == 2
    _p11("--login", "--pin", DEFAULT_PIN, "--list-objects")  # the right PIN resets the counter
    assert _applet(card).pin_tries_left == 3


def test_opensc_lists_logs_in_and_signs_with_applet_1_7(pcscd: Pcscd, card_folder: Path, tmp_path: Path) -> None:
    card = start_kind(card_folder, "belpic", key="rsa-2048")
    try:
        assert card.atr == bytes.fromhex("3B9813400AA503010101AD1311")
        _list_certificates_matches(card, tmp_path)
        message = tmp_path / "message.bin"
        message.write_bytes(b"cardbridge belpic check " * 10)
        signature = tmp_path / "signature.bin"
        card.reset_count()
        _p11(
            "--login", "--pin", DEFAULT_PIN, "--sign", "--id", "02", "-m", "SHA256-RSA-PKCS",
            "--input-file", str(message), "--output-file", str(signature),
        )  # fmt: skip
        auth = x509.load_der_x509_certificate(_applet(card).data.auth_cert).public_key()
        assert isinstance(auth, rsa.RSAPublicKey)
        auth.verify(signature.read_bytes(), message.read_bytes(), padding.PKCS1v15(), hashes.SHA256())
        assert any(r.command.startswith(bytes.fromhex("0022 41B6 05 04 8001 8482")) for r in card.records)

        # The non-repudiation key: OpenSC 0.23 stops after MSE SET, on purpose.
        card.reset_count()
        nonrep = _p11(
            "--login", "--pin", DEFAULT_PIN, "--sign", "--id", "03", "-m", "SHA256-RSA-PKCS",
            "--input-file", str(message), "--output-file", str(tmp_path / "nonrep.bin"), check=False,
        )  # fmt: skip
        assert nonrep.returncode != 0 and "CKR_FUNCTION_NOT_SUPPORTED" in nonrep.stderr, nonrep.stderr
        mse = [r for r in card.records if r.command.startswith(bytes.fromhex("0022 41B6 05 04 8001 8483"))]
        assert mse and all(r.response_sw == 0x9000 for r in mse)

        _wrong_pin_counts_down(card)
        for expected in ("CKR_PIN_INCORRECT", "CKR_PIN_INCORRECT", "CKR_PIN_INCORRECT", "CKR_PIN_LOCKED"):
            result = _p11("--login", "--pin", "9999", "--list-objects", check=False)
            assert expected in result.stderr, result.stderr
        assert _applet(card).pin_tries_left == 0
    finally:
        stop_card(card)


def test_opensc_lists_and_logs_in_with_applet_1_8(pcscd: Pcscd, card_folder: Path, tmp_path: Path) -> None:
    card = start_kind(card_folder, "belpic", key="ec-p384")
    try:
        assert card.atr == bytes.fromhex("3B7F96000080318065B085040120120FFF829000")
        _list_certificates_matches(card, tmp_path)
        keys = _run("pkcs15-tool", "--list-keys").stdout
        assert "Private EC Key [Authentication]" in keys and "Private EC Key [Signature]" in keys
        assert "FieldLength    : 384" in keys and "Key ref        : 131 (0x83)" in keys
        _wrong_pin_counts_down(card)
    finally:
        stop_card(card)


def test_opensc_signs_ecdsa_with_applet_1_8(pcscd: Pcscd, card_folder: Path, tmp_path: Path) -> None:
    card = start_kind(card_folder, "belpic", key="ec-p384")
    try:
        mechanisms = _p11("--list-mechanisms").stdout
        if "ECDSA" not in mechanisms:
            pytest.skip("this OpenSC's belpic driver predates applet 1.8's ECDSA (OpenSC 0.26 added it)")
        digest = hashes.Hash(hashes.SHA384())
        digest.update(b"cardbridge belpic check")
        hashed = tmp_path / "hash.bin"
        hashed.write_bytes(digest.finalize())
        signature = tmp_path / "signature.bin"
        _p11(
            "--login", "--pin", DEFAULT_PIN, "--sign", "--id", "02", "-m", "ECDSA",
            "--input-file", str(hashed), "--output-file", str(signature),
        )  # fmt: skip
        raw = signature.read_bytes()
        auth = x509.load_der_x509_certificate(_applet(card).data.auth_cert).public_key()
        assert isinstance(auth, ec.EllipticCurvePublicKey)
        der = utils.encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
        auth.verify(der, hashed.read_bytes(), ec.ECDSA(utils.Prehashed(hashes.SHA384())))
    finally:
        stop_card(card)


def test_list_and_doctor_show_the_card_once_beside_p11kits_opensc(
    pcscd: Pcscd, card_folder: Path, tmp_path: Path
) -> None:
    """OpenSC's slot of a Belgian card carries the card's CA and root certificates too: with
    its module registered with p11-kit (Debian's default) the card was listed twice, and the
    CA certificates' purpose ("other") made ``list`` and ``doctor`` fail with INTERNAL."""
    from tests.pcsc.national import bridge_env, cli

    if not Path("/usr/share/p11-kit/modules/opensc-pkcs11.module").exists():
        pytest.skip("OpenSC's module is not registered with p11-kit")
    card = start_kind(card_folder, "belpic", key="rsa-2048")
    try:
        env = bridge_env(tmp_path, {})
        listed = cli("list", env=env)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert "BELPIC" not in listed.stdout, "OpenSC's slot of the same card"
        assert listed.stdout.count("[authentication]") == 1, listed.stdout
        doctor = cli("doctor", "--json", env=env)
        assert doctor.returncode in (0, 1), doctor.stderr  # 1: some check failed, not INTERNAL
        checks = json.loads(doctor.stdout)["checks"]
        tokens = [c for c in checks if c["id"] == "tokens"]
        assert tokens and all("BELPIC" not in json.dumps(c) for c in tokens), tokens
    finally:
        stop_card(card)
