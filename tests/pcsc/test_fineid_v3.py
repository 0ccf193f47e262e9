"""The Finnish ID card of the S4-1 v3 profile (Gemalto, issued 2017-2021: an RSA-2048
authentication key, an ECC P-256 signature key) emulated in pcscd's vpcd reader: OpenSC as
the outside judge, and the FINEID driver's v3 profile through the token. The entry points
(the CLI, the HTTP API, the native host) are in ``test_national.py`` (profile fineid-v3).
Helpers are the v4 module's."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardbridge.emulator.fineid import ATR_V3, V3, FineidApplet
from cardbridge.emulator.virtual_card import VirtualCard
from cardbridge.errors import PinIncorrectError
from cardbridge.model import Purpose, SignatureAlgorithm
from cardbridge.origins import OriginStore
from cardbridge.pcsc import PcscBackend
from tests.pcsc.conftest import Pcscd, start_kind, stop_card
from tests.pcsc.test_fineid import (
    OPENSC,
    ORIGIN,
    PIN1,
    PIN2,
    cert_for,
    fineid_token,
    on,
    opensc,
    read_with_default_driver,
    verify_signature,
)

pytestmark = pytest.mark.pcsc
RS256 = SignatureAlgorithm("RSA", "SHA-256", "PKCS1.5")
PS256 = SignatureAlgorithm("RSA", "SHA-256", "PSS")
ES256 = SignatureAlgorithm("ECC", "SHA-256", "NONE")
INS_VERIFY, INS_MSE, INS_PSO = 0x20, 0x22, 0x2A


@pytest.fixture(autouse=True)
def _login_page_allowed(origin_store: OriginStore) -> None:
    origin_store.allow(ORIGIN)


@pytest.fixture
def fineid_v3(pcscd: Pcscd, card_folder: Path) -> Iterator[VirtualCard]:
    """A fresh FINEID v3 card (5 tries on each PIN) in reader 0; its keys are made once."""
    card = start_kind(card_folder / "fineid", "fineid-v3")
    try:
        yield card
    finally:
        stop_card(card)


def applet(card: VirtualCard) -> FineidApplet:
    assert isinstance(card.applet, FineidApplet) and card.applet.profile is V3
    return card.applet


# -- the outside judge: OpenSC ----------------------------------------------------------------
def pkcs11_tool(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return opensc("pkcs11-tool", "--module", str(OPENSC), "--slot-index", "0", *args, conf=conf)


@pytest.mark.skipif(not OPENSC.exists(), reason="OpenSC is not installed")
def test_opensc_reads_the_v3_card_logs_in_and_counts_down(fineid_v3: VirtualCard, tmp_path: Path) -> None:
    """Debian's OpenSC 0.23 has no driver for the v3 ATR either (the FINEID v3 driver proposed
    in 2019 was never merged; card-setcos.c knows the SetCOS FINEID v1/v2 cards only), so the
    packaged config refuses the card. With ``enable_default_driver`` its generic PKCS#15
    reader must read the emulator's files right (an RSA-2048 and a P-256 key, the signature
    certificate in 5016/4335), log in with PIN1 and count a wrong one down; it cannot sign:
    the default driver registers no RSA algorithm, so ``pkcs11-tool --login --sign`` ends in
    CKR_MECHANISM_INVALID after its C_Login, before any MSE SET reaches the card."""
    card = applet(fineid_v3)
    conf, out = read_with_default_driver(tmp_path, card)
    assert "Path           : 3f0050164335" in out
    assert "Private RSA Key [todentamis- ja salausavain]" in out and "ModLength      : 2048" in out
    assert "Private EC Key [allekirjoitusavain]" in out and "FieldLength    : 256" in out
    assert "Key ref        : 3 (0x03)" in out
    assert "PIN [perustunnusluku]" in out and "Reference      : 17 (0x11)" in out

    wrong = pkcs11_tool(conf, "--login", "--pin", "9999", "--list-objects")
    assert "CKR_PIN_INCORRECT" in wrong.stdout + wrong.stderr
    assert (card.pin1.tries_left, card.pin2.tries_left) == (4, 5)

    fineid_v3.reset_count()
    data = tmp_path / "data"
    data.write_bytes(b"the data")
    signed = pkcs11_tool(
        conf,
        *("--login", "--pin", PIN1, "--sign", "--mechanism", "SHA256-RSA-PKCS", "--id", "45"),
        *("--input-file", str(data), "--output-file", str(tmp_path / "sig")),
    )
    assert signed.returncode != 0 and "CKR_MECHANISM_INVALID" in signed.stdout + signed.stderr
    assert [r.command[3] for r in fineid_v3.records if r.ins == INS_VERIFY] == [0x11]
    assert card.pin1.tries_left == 5  # the right PIN reset the counter
    assert not [r for r in fineid_v3.records if r.ins in (INS_MSE, INS_PSO)]


# -- cardbridge's driver ------------------------------------------------------------------------
def test_driver_signs_rsa_with_pin1_and_ecdsa_with_pin2(fineid_v3: VirtualCard, backend: PcscBackend) -> None:
    token = fineid_token(backend)
    assert token.info.extra["driver"] == "fineid-v3" and token.info.extra["atr"] == ATR_V3.hex(" ").upper()
    assert token.info.model == "Finnish ID card (FINEID v3)"
    auth, sign = cert_for(token, Purpose.AUTHENTICATION), cert_for(token, Purpose.SIGNING)
    assert (auth.key_type, auth.key_size, sign.curve) == ("RSA", 2048, "secp256r1")
    assert [a.jws for a in token.supported_algorithms(auth)][:1] == ["RS256"]
    assert on(token, token.pin_status, auth).name == "PIN1 (perustunnusluku)"
    digest = hashlib.sha256(b"M").digest()
    for algorithm in (RS256, PS256):
        fineid_v3.reset_count()
        signature = on(token, token.sign_digest, auth, bytearray(PIN1.encode()), digest, algorithm)
        verify_signature(auth, digest, signature, algorithm)
        mse = next(r for r in fineid_v3.records if r.ins == INS_MSE)
        assert mse.command[5:] == bytes([0x80, 0x01, 0x42 if algorithm is RS256 else 0x45, 0x84, 0x01, 0x01])
    fineid_v3.reset_count()
    signature = on(token, token.sign_digest, sign, bytearray(PIN2.encode()), digest, ES256)
    verify_signature(sign, digest, signature, ES256)
    assert [r.command[3] for r in fineid_v3.records if r.ins == INS_VERIFY] == [0x82]
    assert next(r for r in fineid_v3.records if r.ins == INS_MSE).command[-1] == 0x03  # key 03
    with pytest.raises(PinIncorrectError) as info:
        on(token, token.sign_digest, auth, bytearray(b"0000"), digest, RS256)
    assert info.value.retries_left == 4 and on(token, token.pin_status, auth).retries_left == 4
    assert applet(fineid_v3).pin1.tries_left == 4
