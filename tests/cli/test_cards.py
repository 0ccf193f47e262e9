"""``cardbridge list`` and ``cardbridge authenticate`` (``cardbridge.cli.cards``)."""

import base64
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from cardbridge import __version__
from cardbridge.cli.common import EXIT_CODES
from cardbridge.errors import Code
from cardbridge.origins import OriginStore
from tests.cli import run
from tests.conftest import ScriptedPinentry
from tests.softhsm import SoftHsm, own_token, until_login_entered
from tests.verify import verify_token

ORIGIN = "https://login.example.no"


@pytest.fixture(autouse=True)
def _login_page_allowed(origin_store: OriginStore) -> None:
    """The person allowed ORIGIN before (the question about a new site has tests of its own)."""
    origin_store.allow(ORIGIN)


def nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.mark.parametrize(
    ("origin", "challenge", "code"),
    [
        ("http://example.com", None, "INVALID_ORIGIN"),
        ("https://a.example/path", None, "INVALID_ORIGIN"),
        ("https://a.example/", None, "INVALID_ORIGIN"),
        ("https://A.example", None, "INVALID_ORIGIN"),
        ("https://a.example:443", None, "INVALID_ORIGIN"),
        ("https://" + "a" * 240 + ".example.no", None, "INVALID_ORIGIN"),
        ("https://bücher.example", None, "INVALID_ORIGIN"),
        (ORIGIN, "A" * 43, "INVALID_NONCE"),
        (ORIGIN, "A" * 129, "INVALID_NONCE"),
        (ORIGIN, "A" * 43 + "\x01", "INVALID_NONCE"),
    ],
)
def test_bad_input_never_loads_a_module(origin: str, challenge: str | None, code: str) -> None:
    # A module path that does not exist: had the CLI touched it, the error would be MODULE_NOT_FOUND.
    result = run(
        "authenticate",
        "--origin",
        origin,
        "--nonce",
        challenge or nonce(),
        "--module",
        "/nonexistent/module.so",
        "--json",
    )
    assert result.returncode == 3, result.stderr
    assert json.loads(result.stdout)["error"]["code"] == code
    assert result.stderr.startswith(f"error: {code}: ")


def test_relative_module_path_is_refused() -> None:
    result = run("authenticate", "--origin", ORIGIN, "--nonce", nonce(), "--module", "libsofthsm2.so")
    assert result.returncode == 7
    assert "MODULE_NOT_FOUND" in result.stderr


@pytest.mark.softhsm
def test_list_json_shape(softhsm: SoftHsm) -> None:
    result = run("list", "--json", "--module", softhsm.module, env=softhsm.env())
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["version"] == __version__
    tokens = {t["token"]["label"]: t for t in doc["tokens"]}
    assert set(softhsm.labels) <= set(tokens)
    p384 = tokens["p384"]
    assert p384["token"]["backend"] == "pkcs11" and p384["token"]["source"] == softhsm.module
    purposes = sorted(c["purpose"] for c in p384["certificates"])
    assert purposes == ["authentication", "signing"]
    cert = p384["certificates"][0]
    assert set(cert) == {
        "sha256",
        "label",
        "purpose",
        "subject",
        "issuer",
        "serialNumber",
        "notBefore",
        "notAfter",
        "keyType",
        "keySize",
        "curve",
        "holder",
    }
    assert (cert["keyType"], cert["keySize"]) == ("EC", 384)
    assert cert["holder"]["idCode"] == softhsm.citizen.id_code
    assert p384["pin"]["blocked"] is False and p384["pin"]["notActive"] is False


@pytest.mark.softhsm
def test_module_from_environment(softhsm: SoftHsm, tmp_path: Path) -> None:
    # No pcscd for this command (a virtual card another test left in a reader would be listed too).
    env = {
        **softhsm.env(),
        "CARDBRIDGE_PKCS11_MODULE": softhsm.module,
        "PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm"),
    }
    result = run("list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert {t["token"]["source"] for t in json.loads(result.stdout)["tokens"]} == {softhsm.module}


@pytest.mark.softhsm
def test_authenticate_with_pin_from_stdin(softhsm: SoftHsm) -> None:
    challenge = nonce()
    result = run(
        "authenticate",
        "--origin",
        ORIGIN,
        "--nonce",
        challenge,
        "--module",
        softhsm.module,
        "--token",
        "rsa",
        "--pin-stdin",
        env=softhsm.env(),
        stdin="1234\n",
    )
    assert result.returncode == 0, result.stderr
    token = json.loads(result.stdout)
    assert token["algorithm"] == "RS256"
    verify_token(token, ORIGIN, challenge)


@pytest.mark.softhsm
def test_authenticate_through_pinentry(softhsm: SoftHsm, pinentry: ScriptedPinentry) -> None:
    pinentry.respond("1234")
    challenge = nonce()
    result = run(
        "authenticate",
        "--origin",
        ORIGIN,
        "--nonce",
        challenge,
        "--module",
        softhsm.module,
        "--token",
        "p384",
        "--lang",
        "en",
        env={**softhsm.env(), **pinentry.env()},
    )
    assert result.returncode == 0, result.stderr
    verify_token(json.loads(result.stdout), ORIGIN, challenge)
    (desc,) = pinentry.texts("SETDESC")
    assert ORIGIN in desc and softhsm.citizen.common_name in desc


@pytest.mark.softhsm
def test_wrong_pin_json_error(softhsm: SoftHsm) -> None:
    result = run(
        "authenticate",
        "--origin",
        ORIGIN,
        "--nonce",
        nonce(),
        "--module",
        softhsm.module,
        "--token",
        "p256",
        "--pin-stdin",
        "--json",
        env=softhsm.env(),
        stdin="9999\n",
    )
    assert result.returncode == 5
    assert json.loads(result.stdout)["error"]["code"] == "PIN_INCORRECT"
    assert "9999" not in result.stdout + result.stderr


@pytest.mark.softhsm
def test_cancel_in_pinentry(softhsm: SoftHsm, pinentry: ScriptedPinentry) -> None:
    pinentry.respond("CANCEL")
    result = run(
        "authenticate",
        "--origin",
        ORIGIN,
        "--nonce",
        nonce(),
        "--module",
        softhsm.module,
        "--token",
        "p256",
        env={**softhsm.env(), **pinentry.env()},
    )
    assert result.returncode == 6
    assert result.stderr.startswith("error: USER_CANCELLED")
    assert result.stdout == ""


@pytest.mark.softhsm
def test_ambiguous_lists_candidates_and_certificate_picks(softhsm: SoftHsm) -> None:
    args = ["authenticate", "--origin", ORIGIN, "--module", softhsm.module, "--token", "two-auth", "--pin-stdin"]
    result = run(*args, "--nonce", nonce(), "--json", env=softhsm.env(), stdin="1234\n")
    assert result.returncode == 4
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "AMBIGUOUS_CERTIFICATE"
    shas = [c["sha256"] for c in error["candidates"]]
    assert len(shas) == 2 and all(f"--certificate {s}" in result.stderr for s in shas)
    challenge = nonce()
    result = run(*args, "--nonce", challenge, "--certificate", shas[0], env=softhsm.env(), stdin="1234\n")
    assert result.returncode == 0, result.stderr
    token = json.loads(result.stdout)
    cert = verify_token(token, ORIGIN, challenge)
    assert hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest() == shas[0]


SLOW_LOGIN = Path(__file__).parents[1] / "tools" / "slow_login.py"


@pytest.mark.softhsm
@pytest.mark.parametrize("sigint", [signal.SIG_DFL, signal.SIG_IGN], ids=["foreground", "background-job"])
def test_a_sigterm_during_the_pin_check_lets_it_finish(tmp_path: Path, sigint: signal.Handlers) -> None:
    """``cardbridge authenticate`` terminated (a script's timeout, a logout) while the card
    checks the PIN: the check finishes before the process leaves (as after Ctrl-C), with
    USER_CANCELLED, and a second SIGTERM while it ends changes nothing; the token stays whole.
    Before, the default action ended the process inside C_Login. Also when the command was
    started with SIGINT ignored (a script's background job): SIGTERM, which takes Ctrl-C's
    path, then did nothing at all and the login went on."""
    card = own_token(tmp_path / "data")
    mark = tmp_path / "login.mark"
    env = {
        **os.environ,
        "SOFTHSM2_CONF": card["softhsm2_conf"],
        "CARDBRIDGE_TEST_LOGIN_MARK": str(mark),
        "CARDBRIDGE_TEST_LOGIN_RELEASE": str(tmp_path / "login.release"),
    }
    command = [sys.executable, str(SLOW_LOGIN), "cli", "authenticate", "--origin", ORIGIN, "--nonce", nonce()]
    proc = subprocess.Popen(
        [*command, "--module", card["module"], "--pin-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),  # whatever this test's own is
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(card["pin"] + "\n")
        proc.stdin.close()
        until_login_entered(mark, proc)
        proc.terminate()
        time.sleep(0.3)
        proc.terminate()  # a second one, while the command ends
        (tmp_path / "login.release").touch()  # the card has checked the PIN
        proc.wait(60)
        assert proc.stderr is not None
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_CODES[Code.USER_CANCELLED], (proc.returncode, err[-800:])
    assert mark.read_text(encoding="ascii").split() == ["entered", "returned"]
    listed = subprocess.run(
        ["pkcs11-tool", "--module", card["module"], "--login", "--pin", card["pin"], "--list-objects"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0 and "Private Key Object" in listed.stdout, listed.stderr
