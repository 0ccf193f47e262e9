"""The ``cardbridge`` command, run as a real process."""

import base64
import json
import os
import secrets
import struct
import subprocess
import sys

import pytest

from cardbridge import __version__
from cardbridge.origins import OriginStore
from tests.conftest import ScriptedPinentry
from tests.softhsm import SoftHsm
from tests.verify import verify_token

ORIGIN = "https://login.example.no"


@pytest.fixture(autouse=True)
def _login_page_allowed(origin_store: OriginStore) -> None:
    """The person allowed ORIGIN before (the question about a new site has tests of its own)."""
    origin_store.allow(ORIGIN)


def nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def run(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cardbridge", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
        timeout=60,
        check=False,
    )


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"cardbridge {__version__}"


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
    assert p384["pin"]["blocked"] is False


@pytest.mark.softhsm
def test_module_from_environment(softhsm: SoftHsm) -> None:
    env = {**softhsm.env(), "CARDBRIDGE_PKCS11_MODULE": softhsm.module}
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
    import hashlib

    from cryptography.hazmat.primitives import serialization

    assert hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest() == shas[0]


@pytest.mark.softhsm
def test_dev_token_create(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "CARDBRIDGE_DATA_DIR": str(tmp_path)}
    env.pop("SOFTHSM2_CONF", None)
    result = run("dev", "token", "create", "--key", "ec-p256", "--json", env=env)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["softhsm2_conf"].startswith(str(tmp_path))
    assert info["id_code"].startswith("PNONO-")
    # It is a working card: list it and log in with it.
    env["SOFTHSM2_CONF"] = info["softhsm2_conf"]
    challenge = nonce()
    result = run(
        "authenticate",
        "--origin",
        ORIGIN,
        "--nonce",
        challenge,
        "--module",
        info["module"],
        "--pin-stdin",
        env=env,
        stdin=info["pin"] + "\n",
    )
    assert result.returncode == 0, result.stderr
    cert = verify_token(json.loads(result.stdout), ORIGIN, challenge)
    assert info["id_code"] in cert.subject.rfc4514_string()
    # Made once: a second call gives the same card.
    again = json.loads(run("dev", "token", "create", "--json", env=env).stdout)
    assert again == info


def test_every_command_ends_through_the_pkcs11_shutdown(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """cli.main leaves only through cardbridge.pkcs11.shutdown (the module call in progress
    waited for, sessions closed, modules finalized), and with os._exit when a module call
    still runs after it (a hung module would keep the interpreter from exiting)."""
    from cardbridge import cli, pkcs11

    monkeypatch.setenv("CARDBRIDGE_CONFIG", str(tmp_path / "config.toml"))
    answers = [True]
    calls: list[bool] = []

    def shutdown() -> bool:
        calls.append(answers[0])
        return answers[0]

    class Left(Exception):
        pass

    def leave(status: int) -> None:
        raise Left(status)

    monkeypatch.setattr(pkcs11, "shutdown", shutdown)
    monkeypatch.setattr(cli.os, "_exit", leave)
    assert cli.main(["config", "path"]) == 0
    assert calls == [True]
    answers[0] = False
    with pytest.raises(Left) as left:
        cli.main(["config", "path"])
    assert left.value.args == (0,)
    with pytest.raises(Left) as left:  # a usage error too
        cli.main(["no-such-command"])
    assert left.value.args == (1,)


@pytest.mark.parametrize(
    ("arguments", "stdin"),
    [
        (["--version"], b""),
        (["native-host"], struct.pack("=I", 36) + b'{"command": "quit", "arguments": {}}'),
    ],
    ids=["version", "native-host"],
)
def test_fast_commands_load_no_command_line(arguments: list[str], stdin: bytes) -> None:
    # `cardbridge --version` and `cardbridge native-host` start without the CLI's parser,
    # messages, asyncio, ssl or the server (bench/cli_start.py measures the time).
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cardbridge", *arguments],
        input=stdin,
        capture_output=True,
        timeout=30,
        check=True,
    )
    modules = {line.split("|")[-1].strip() for line in result.stderr.decode().splitlines() if "|" in line}
    for heavy in ("asyncio", "ssl", "aiohttp", "argparse", "cardbridge.cli", "cardbridge.server", "cardbridge.i18n"):
        assert not {m for m in modules if m == heavy or m.startswith(heavy + ".")}, heavy
    if arguments == ["--version"]:
        assert result.stdout.decode() == f"cardbridge {__version__}\n"
    else:
        assert result.stdout.endswith(b"{}")
