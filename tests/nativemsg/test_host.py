"""The real host process, driven over pipes as the browser drives it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from cardbridge import __version__
from cardbridge.nativemsg import (
    EXTENSION_CHROME_ID,
    EXTENSION_FIREFOX_ID,
    WEBEID_CHROME_IDS,
    WEBEID_FIREFOX_ID,
    handshake_version,
)
from tests.conftest import ScriptedPinentry
from tests.nativemsg.conftest import ORIGIN, Card, HostProcess, write_config
from tests.test_i18n import BAD_LANGS
from tests.verify import verify_token

INVALID = "ERR_WEBEID_NATIVE_INVALID_ARGUMENT"


def nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def frame(body: bytes) -> bytes:
    return struct.pack("=I", len(body)) + body


def _alive(pid: int, wait: float = 5.0) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.05)
    return True


def assert_clean_stderr(host: HostProcess) -> None:
    assert "Traceback" not in host.stderr, host.stderr


# -- handshake, quit, refusals --------------------------------------------------------------


def test_handshake_and_quit(start_host: Any) -> None:
    host = start_host()
    assert host.read() == {"version": handshake_version(__version__)}
    host.send({"command": "quit", "arguments": {}})
    assert host.read() == {}
    assert host.rest() == b""  # nothing but frames, and it exits without waiting for stdin
    host.finish()
    assert host.proc.returncode == 0
    assert_clean_stderr(host)


def test_cli_native_host_is_the_same_host(start_host: Any) -> None:
    host = start_host(f"chrome-extension://{EXTENSION_CHROME_ID}/", cli=True)
    assert host.read() == {"version": handshake_version(__version__)}
    host.send({"command": "quit", "arguments": {}})
    assert host.read() == {}
    assert host.rest() == b""
    host.finish()
    assert host.proc.returncode == 0


@pytest.mark.parametrize(
    ("data", "close"),
    [
        pytest.param(struct.pack("=I", 4) + b"{}  ", False, id="length-under-5"),
        pytest.param(struct.pack("=I", 0), False, id="length-0"),
        pytest.param(struct.pack("=I", 8193), False, id="length-over-8192"),
        pytest.param(struct.pack("=I", 0xFFFFFFFF), False, id="length-4GiB"),
        pytest.param(b"\x21\x00", True, id="eof-in-length"),
        pytest.param(struct.pack("=I", 200) + b'{"command": "quit"', True, id="eof-in-body"),
        pytest.param(frame(b'{"command": "qu\xc3\x28it", "arguments": {}}'), False, id="invalid-utf8"),
        pytest.param(frame(b'{"command": "quit", "arguments": {}'), False, id="invalid-json"),
        pytest.param(frame(b'["quit", {}]'), False, id="json-array"),
        pytest.param(frame(b'"quit"'), False, id="json-string"),
        pytest.param(frame(b"[" * 8000), False, id="json-deep"),
        pytest.param(frame(b'{"command": "quit", "arguments": {}, "command": "x"}'), False, id="duplicate-key"),
    ],
)
def test_hostile_input_gets_one_error_frame_then_exit(start_host: Any, data: bytes, close: bool) -> None:
    host = start_host()
    assert host.read() == {"version": handshake_version(__version__)}
    host.send_raw(data)
    if close:
        host.close_stdin()
    # With stdin still open the host must not wait for more: it answers and exits.
    error = host.read()["error"]
    assert error["code"] == INVALID
    assert error["cardbridgeCode"] == "INVALID_ARGUMENT"
    assert host.rest() == b""
    host.finish()
    assert host.proc.returncode == 1
    assert_clean_stderr(host)


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        pytest.param({"command": "format-card", "arguments": {}}, "Unknown command", id="unknown-command"),
        pytest.param(
            {"command": "authenticate", "arguments": {"challengeNonce": "A" * 44, "origin": ORIGIN, "pin": "1234"}},
            "unknown argument",
            id="extra-argument",
        ),
        pytest.param({"command": "authenticate", "arguments": {"origin": ORIGIN}}, "missing", id="missing-argument"),
        pytest.param(
            {"command": "authenticate", "arguments": {"challengeNonce": 44, "origin": ORIGIN}},
            "must be a string",
            id="number-argument",
        ),
        pytest.param({"command": "quit", "arguments": {"now": "yes"}}, "unknown argument", id="quit-argument"),
        pytest.param({"command": "quit"}, "'arguments' object", id="no-arguments"),
        pytest.param({"command": "quit", "arguments": []}, "'arguments' object", id="arguments-array"),
        pytest.param({"command": "quit", "arguments": {}, "id": "1"}, "Unknown field", id="extra-field"),
    ],
)
def test_bad_requests_are_refused(start_host: Any, request_: dict[str, Any], words: str) -> None:
    host = start_host()
    host.read()
    host.send(request_)
    error = host.read()["error"]
    assert (error["code"], error["cardbridgeCode"]) == (INVALID, "INVALID_ARGUMENT")
    assert words in error["message"]
    host.finish()
    assert_clean_stderr(host)


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        pytest.param({"origin": ORIGIN}, "INVALID_ARGUMENT", "the argument 'challengeNonce' is missing.", id="missing"),
        pytest.param(
            {"origin": ORIGIN, "challengeNonce": "A" * 43},
            "INVALID_NONCE",
            "the challenge nonce must have 44 to 128 visible ASCII characters.",
            id="nonce",
        ),
        pytest.param(
            {"origin": ORIGIN, "challengeNonce": "A" * 44, "lang": "x" * 40},
            "INVALID_ARGUMENT",
            "the argument 'lang' must be a language tag such as nb, nn or en.",
            id="lang",
        ),
    ],
)
def test_a_refused_request_is_one_error_of_the_tree(arguments: dict[str, str], code: str, message: str) -> None:
    # The schema's refusal is the error the host answers with: the same class and code (no
    # second exception type in between), its message naming the command.
    from cardbridge.errors import InvalidInputError
    from cardbridge.nativemsg import codes
    from cardbridge.nativemsg.host import check_request

    with pytest.raises(InvalidInputError) as refused:
        check_request({"command": "authenticate", "arguments": arguments})
    assert (str(refused.value.code), refused.value.message) == (code, f"authenticate: {message}")
    assert codes.error_frame(code, refused.value.message) == {
        "error": {"code": INVALID, "message": f"authenticate: {message}", "cardbridgeCode": code}
    }


def test_the_frames_of_refused_requests(start_host: Any) -> None:
    # Exactly what the browser reads, frame for frame, for a request the schema refuses and
    # for one the host refuses before it (an unknown command).
    for request_, code, message in [
        (
            {"command": "authenticate", "arguments": {"origin": ORIGIN, "challengeNonce": "A" * 43}},
            "INVALID_NONCE",
            "authenticate: the challenge nonce must have 44 to 128 visible ASCII characters.",
        ),
        (
            {"command": "quit", "arguments": {"now": "yes"}},
            "INVALID_ARGUMENT",
            "quit: unknown argument 'now'.",
        ),
        (
            {"command": "format-card", "arguments": {}},
            "INVALID_ARGUMENT",
            "Unknown command 'format-card'; known: authenticate, get-signing-certificate, sign, quit.",
        ),
    ]:
        host = start_host()
        assert host.read() == {"version": handshake_version(__version__)}
        host.send(request_)
        assert host.read() == {"error": {"code": INVALID, "message": message, "cardbridgeCode": code}}
        assert host.rest() == b""
        host.finish()
        assert host.proc.returncode == 1
        assert_clean_stderr(host)


def test_end_of_input_before_a_request(start_host: Any) -> None:
    host = start_host()
    host.read()
    host.close_stdin()
    assert host.rest() == b""
    host.finish()
    assert host.proc.returncode == 0


# -- the caller that the browser names ------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((f"chrome-extension://{EXTENSION_CHROME_ID}/",), id="ours-chrome"),
        pytest.param((f"chrome-extension://{WEBEID_CHROME_IDS[0]}/",), id="webeid-chrome"),
        pytest.param((f"chrome-extension://{EXTENSION_CHROME_ID}/", "--parent-window=0"), id="windows"),
        pytest.param(("/home/u/.mozilla/native-messaging-hosts/no.cardbridge.host.json", EXTENSION_FIREFOX_ID)),
        pytest.param(("/usr/lib/mozilla/native-messaging-hosts/no.cardbridge.host.json", WEBEID_FIREFOX_ID)),
    ],
)
def test_allowed_callers(start_host: Any, config_env: dict[str, str], args: tuple[str, ...]) -> None:
    host = start_host(*args, env=config_env)
    assert host.read() == {"version": handshake_version(__version__)}
    host.send({"command": "quit", "arguments": {}})
    assert host.read() == {}


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("chrome-extension://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/",), id="chrome"),
        pytest.param(("/home/u/.mozilla/native-messaging-hosts/no.cardbridge.host.json", "evil@example.com")),
    ],
)
def test_other_extensions_are_refused(start_host: Any, config_env: dict[str, str], args: tuple[str, ...]) -> None:
    host = start_host(*args, env=config_env)
    error = host.read()["error"]  # instead of the handshake
    assert error["cardbridgeCode"] == "ORIGIN_NOT_ALLOWED"
    assert host.rest() == b""
    # The page sees a plain text; the fix, with the config file's path, goes to the log.
    assert "allowed_extensions" not in error["message"] and "/" not in error["message"]
    assert "allowed_extensions" in host.finish()


def test_unexpected_arguments_are_refused(start_host: Any) -> None:
    host = start_host("--module", "/tmp/evil.so")
    assert host.read()["error"]["cardbridgeCode"] == "INVALID_ARGUMENT"


def test_extension_allowed_in_config(start_host: Any, tmp_path: Path) -> None:
    extension = "b" * 32
    config = write_config(tmp_path, allowed_extensions=[f"chrome-extension://{extension}/", "mine@example.org"])
    env = {**os.environ, "CARDBRIDGE_CONFIG": str(config)}
    for args in ([f"chrome-extension://{extension}/"], ["/x/no.cardbridge.host.json", "mine@example.org"]):
        host = start_host(*args, env=env)
        assert host.read() == {"version": handshake_version(__version__)}


# -- the origin -----------------------------------------------------------------------------


def _authenticate_error(start_host: Any, env: dict[str, str], origin: str, challenge: str) -> dict[str, Any]:
    host = start_host(env=env)
    host.read()
    host.send({"command": "authenticate", "arguments": {"challengeNonce": challenge, "origin": origin}})
    error: dict[str, Any] = host.read()["error"]
    error["stderr"] = host.finish()
    return error


def test_empty_allow_list_says_how_to_add_an_origin(start_host: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path, origin_policy="allow-list")
    env = {**os.environ, "CARDBRIDGE_CONFIG": str(config), "CARDBRIDGE_PKCS11_MODULE": "/nonexistent"}
    error = _authenticate_error(start_host, env, ORIGIN, nonce())
    assert (error["code"], error["cardbridgeCode"]) == ("ERR_WEBEID_NATIVE_FATAL", "ORIGIN_NOT_ALLOWED")
    # The page gets no path of the user's (the config file is in their home); the log does.
    assert str(config) not in error["message"] and "allowed_origins" not in error["message"]
    assert "allowed_origins" in error["stderr"] and str(config) in error["stderr"]


@pytest.mark.parametrize(
    ("origin", "challenge", "code", "ours"),
    [
        ("https://evil.example", None, "ERR_WEBEID_NATIVE_FATAL", "ORIGIN_NOT_ALLOWED"),
        ("http://login.example.no", None, INVALID, "INVALID_ORIGIN"),
        ("https://login.example.no/path", None, INVALID, "INVALID_ORIGIN"),
        (ORIGIN, "short", INVALID, "INVALID_NONCE"),
    ],
)
def test_origin_and_nonce_rules_before_any_card(
    start_host: Any, config_env: dict[str, str], origin: str, challenge: str | None, code: str, ours: str
) -> None:
    # A module that does not exist: had the host reached for a card, the error would be MODULE_NOT_FOUND.
    env = {**config_env, "CARDBRIDGE_PKCS11_MODULE": "/nonexistent/module.so"}
    error = _authenticate_error(start_host, env, origin, challenge or nonce())
    assert (error["code"], error["cardbridgeCode"]) == (code, ours)


@pytest.mark.parametrize("lang", BAD_LANGS, ids=lambda v: repr(v)[:20])
@pytest.mark.parametrize("command", ["authenticate", "get-signing-certificate", "sign"])
def test_lang_has_the_http_apis_rule(start_host: Any, config_env: dict[str, str], command: str, lang: str) -> None:
    # A module that does not exist: had the host gone on to the card, the error would be MODULE_NOT_FOUND.
    env = {**config_env, "CARDBRIDGE_PKCS11_MODULE": "/nonexistent/module.so"}
    arguments = {
        "authenticate": {"challengeNonce": nonce()},
        "get-signing-certificate": {},
        "sign": {"hash": base64.b64encode(b"x" * 32).decode(), "hashFunction": "SHA-256", "certificate": "AAAA"},
    }[command]
    host = start_host(env=env)
    host.read()
    host.send({"command": command, "arguments": {**arguments, "origin": ORIGIN, "lang": lang}})
    error = host.read()["error"]
    host.finish()
    assert (error["code"], error["cardbridgeCode"]) == (INVALID, "INVALID_ARGUMENT")
    assert "lang" in error["message"] and len(error["message"]) < 200
    assert_clean_stderr(host)


@pytest.mark.parametrize("lang", ["en", "de-DE", "nn_NO"])
def test_a_language_tag_passes_on_to_the_card(start_host: Any, config_env: dict[str, str], lang: str) -> None:
    env = {**config_env, "CARDBRIDGE_PKCS11_MODULE": "/nonexistent/module.so"}
    host = start_host(env=env)
    host.read()
    host.send({"command": "authenticate", "arguments": {"challengeNonce": nonce(), "origin": ORIGIN, "lang": lang}})
    assert host.read()["error"]["cardbridgeCode"] == "MODULE_NOT_FOUND"
    host.finish()


# -- start-up -------------------------------------------------------------------------------


def test_start_up_imports_nothing_heavy() -> None:
    quit_ = json.dumps({"command": "quit", "arguments": {}}).encode()
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cardbridge.nativemsg"],
        input=frame(quit_),
        capture_output=True,
        timeout=30,
        check=True,
    )
    modules = {line.split("|")[-1].strip() for line in result.stderr.decode().splitlines() if "|" in line}
    for heavy in ("asyncio", "cryptography", "pkcs11", "aiohttp", "asn1crypto", "cardbridge.service", "typing"):
        assert not {m for m in modules if m == heavy or m.startswith(heavy + ".")}, heavy


# -- the card (SoftHSM2) --------------------------------------------------------------------


@pytest.fixture
def card_env(config_env: dict[str, str], card: Card, pinentry: ScriptedPinentry) -> dict[str, str]:
    return {**config_env, **card.env(), **pinentry.env()}


@pytest.mark.softhsm
def test_authenticate(start_host: Any, card_env: dict[str, str], card: Card, pinentry: ScriptedPinentry) -> None:
    pinentry.respond(card.pin)
    challenge = nonce()
    host = start_host(f"chrome-extension://{EXTENSION_CHROME_ID}/", env=card_env)
    host.read()
    host.send({"command": "authenticate", "arguments": {"challengeNonce": challenge, "origin": ORIGIN, "lang": "en"}})
    token = host.read()
    assert host.rest() == b""
    host.finish()
    assert host.proc.returncode == 0
    assert set(token) == {"unverifiedCertificate", "algorithm", "signature", "format", "appVersion"}
    assert token["format"] == "web-eid:1.0" and token["algorithm"] == "ES384"
    verify_token(token, ORIGIN, challenge)
    (description,) = pinentry.texts("SETDESC")
    assert ORIGIN in description and card.holder in description
    assert card.pin not in host.stderr
    # The host logged the login to the private log file (cardbridge.logsetup redacts it).
    logged = "".join(p.read_text(errors="replace") for p in Path(card_env["CARDBRIDGE_LOG_DIR"]).rglob("*.log*"))
    assert "authenticated" in logged and ORIGIN in logged


@pytest.mark.softhsm
@pytest.mark.parametrize(("lang", "expected"), [("et", "en"), ("fi", "en"), ("nn", "nn"), (None, "nb")])
def test_the_dialog_speaks_english_for_a_language_we_lack(
    start_host: Any, card_env: dict[str, str], pinentry: ScriptedPinentry, lang: str | None, expected: str
) -> None:
    # The server's rule (i18n.request_language): ours as named, English for a language we
    # lack, bokmål when nothing names one (no lang, a C locale).
    from cardbridge.i18n import gettext

    pinentry.respond("CANCEL")
    env = {k: v for k, v in card_env.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES")}
    host = start_host(env={**env, "LANG": "C.UTF-8"})
    host.read()
    arguments = {"challengeNonce": nonce(), "origin": ORIGIN} | ({"lang": lang} if lang else {})
    host.send({"command": "authenticate", "arguments": arguments})
    assert host.read()["error"]["code"] == "ERR_WEBEID_USER_CANCELLED"
    host.finish()
    assert pinentry.texts("SETTITLE") == [gettext(expected, "Log in with your ID card")]


@pytest.mark.softhsm
def test_cancel_in_the_dialog(start_host: Any, card_env: dict[str, str], pinentry: ScriptedPinentry) -> None:
    pinentry.respond("CANCEL")
    host = start_host(env=card_env)
    host.read()
    host.send({"command": "authenticate", "arguments": {"challengeNonce": nonce(), "origin": ORIGIN}})
    error = host.read()["error"]
    assert (error["code"], error["cardbridgeCode"]) == ("ERR_WEBEID_USER_CANCELLED", "USER_CANCELLED")


@pytest.mark.softhsm
def test_wrong_pin_then_cancel(start_host: Any, card_env: dict[str, str], pinentry: ScriptedPinentry) -> None:
    pinentry.respond("9876", "CANCEL")
    host = start_host(env=card_env)
    host.read()
    host.send({"command": "authenticate", "arguments": {"challengeNonce": nonce(), "origin": ORIGIN}})
    error = host.read()["error"]
    host.finish()
    # As the Web eID app says it: the person cancelled (the wrong PIN was shown in the dialog).
    assert (error["code"], error["cardbridgeCode"]) == ("ERR_WEBEID_USER_CANCELLED", "USER_CANCELLED")
    assert "9876" not in json.dumps(error) + host.stderr


@pytest.mark.softhsm
@pytest.mark.parametrize("wrapped", [False, True], ids=["pinentry", "wrapper-script"])
def test_browser_closing_stdin_cancels_the_dialog(
    start_host: Any, card_env: dict[str, str], pinentry: ScriptedPinentry, wrapped: bool
) -> None:
    # Also with a pinentry wrapper script that does not exec: the dialog is its child.
    pinentry.respond("HANG")  # a person who has not answered yet
    if wrapped:
        card_env = {**card_env, "CARDBRIDGE_PINENTRY": pinentry.wrapper()}
    host = start_host(env=card_env)
    host.read()
    host.send({"command": "authenticate", "arguments": {"challengeNonce": nonce(), "origin": ORIGIN}})
    deadline = time.monotonic() + 20
    while not pinentry.dialogs() and time.monotonic() < deadline:
        time.sleep(0.05)
    (dialog,) = pinentry.dialogs()
    started = time.monotonic()
    host.close_stdin()  # the page gave up
    assert host.rest() == b""  # nothing more is sent, nothing is signed
    host.finish(timeout=10)
    assert time.monotonic() - started < 5
    assert not _alive(dialog["pid"]), "the dialog closes with it"
    assert_clean_stderr(host)


@pytest.mark.softhsm
def test_signing_certificate_and_sign(
    start_host: Any, card_env: dict[str, str], card: Card, pinentry: ScriptedPinentry
) -> None:
    pinentry.respond("OK")  # the person agrees to share the certificate
    host = start_host(env=card_env)
    host.read()
    host.send({"command": "get-signing-certificate", "arguments": {"origin": ORIGIN, "lang": "nn"}})
    answer = host.read()
    host.finish()
    assert set(answer) == {"certificate", "supportedSignatureAlgorithms"}
    (consent,) = pinentry.dialogs()
    assert "CONFIRM" in [verb for verb, _ in consent["commands"]]
    assert pinentry.texts("SETTITLE") == ["Del sertifikatet ditt"]
    (consent_text,) = pinentry.texts("SETDESC")
    assert ORIGIN in consent_text and card.holder in consent_text
    assert {"cryptoAlgorithm": "ECC", "hashFunction": "SHA-384", "paddingScheme": "NONE"} in answer[
        "supportedSignatureAlgorithms"
    ]
    certificate = x509.load_der_x509_certificate(base64.b64decode(answer["certificate"]))

    pinentry.respond(card.pin)
    digest = hashlib.sha384(b"the document").digest()
    host = start_host(env=card_env)
    host.read()
    host.send(
        {
            "command": "sign",
            "arguments": {
                "hash": base64.b64encode(digest).decode(),
                "hashFunction": "SHA-384",
                "certificate": answer["certificate"],
                "origin": ORIGIN,
                "lang": "nb",
            },
        }
    )
    signed = host.read()
    host.finish()
    assert signed["signatureAlgorithm"] == {
        "cryptoAlgorithm": "ECC",
        "hashFunction": "SHA-384",
        "paddingScheme": "NONE",
    }
    raw = base64.b64decode(signed["signature"])
    der = encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    key = certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA384())))
    (description,) = pinentry.texts("SETDESC")
    assert ORIGIN in description


@pytest.mark.softhsm
def test_signing_certificate_cancelled_gives_no_certificate(
    start_host: Any, card_env: dict[str, str], card: Card, pinentry: ScriptedPinentry
) -> None:
    pinentry.respond("CANCEL")
    host = start_host(env=card_env)
    host.read()
    host.send({"command": "get-signing-certificate", "arguments": {"origin": ORIGIN, "lang": "en"}})
    answer = host.read()
    host.finish()
    assert set(answer) == {"error"}
    assert (answer["error"]["code"], answer["error"]["cardbridgeCode"]) == (
        "ERR_WEBEID_USER_CANCELLED",
        "USER_CANCELLED",
    )
    assert card.holder not in json.dumps(answer)
    (description,) = pinentry.texts("SETDESC")
    assert ORIGIN in description and card.holder in description


@pytest.mark.softhsm
@pytest.mark.parametrize(
    "arguments",
    [
        {"hash": "not base64!", "hashFunction": "SHA-256"},
        {"hash": base64.b64encode(b"x" * 31).decode(), "hashFunction": "SHA-256"},
        {"hash": base64.b64encode(b"x" * 32).decode(), "hashFunction": "MD5"},
    ],
)
def test_bad_sign_arguments(
    start_host: Any, card_env: dict[str, str], pinentry: ScriptedPinentry, arguments: dict[str, str]
) -> None:
    host = start_host(env=card_env)
    host.read()
    certificate = base64.b64encode(b"\x30\x03\x02\x01\x01").decode()
    host.send({"command": "sign", "arguments": {**arguments, "certificate": certificate, "origin": ORIGIN}})
    error = host.read()["error"]
    assert (error["code"], error["cardbridgeCode"]) == (INVALID, "INVALID_ARGUMENT")
    assert pinentry.dialogs() == []


def test_a_config_error_frame_names_no_file_of_the_user(start_host: Any, tmp_path: Path) -> None:
    folder = tmp_path / "home" / ".config" / "cardbridge"
    folder.mkdir(parents=True, mode=0o700)
    config = folder / "config.toml"
    config.write_text("no_such_setting = 1\n")
    config.chmod(0o600)
    env = {**os.environ, "CARDBRIDGE_CONFIG": str(config), "CARDBRIDGE_PKCS11_MODULE": "/nonexistent"}
    error = _authenticate_error(start_host, env, ORIGIN, nonce())
    assert error["cardbridgeCode"] == "CONFIG_ERROR"
    assert str(tmp_path) not in error["message"] and "no_such_setting" not in error["message"]
    assert str(config) in error["stderr"] and "no_such_setting" in error["stderr"]


@pytest.mark.softhsm
def test_a_locked_system_setting_wins_over_the_users_file(
    start_host: Any, card_env: dict[str, str], card: Card, pinentry: ScriptedPinentry, tmp_path: Path
) -> None:
    # The user's file allows ORIGIN; the administrator's locks the list to another site.
    system = tmp_path / "system.toml"
    locked = 'origin_policy = "allow-list"\nallowed_origins = ["https://admin.example.no"]\n'
    system.write_text(locked + 'locked = ["origin_policy", "allowed_origins"]\n', encoding="utf-8")
    system.chmod(0o644)
    env = {**card_env, "CARDBRIDGE_SYSTEM_CONFIG": str(system)}
    pinentry.respond(card.pin)
    error = _authenticate_error(start_host, env, ORIGIN, nonce())
    assert error["cardbridgeCode"] == "ORIGIN_NOT_ALLOWED"
    assert pinentry.dialogs() == []
    # Not locked, the user's list adds to the system's: the same login goes through.
    system.write_text(locked, encoding="utf-8")
    host = start_host(env=env)
    host.read()
    host.send({"command": "authenticate", "arguments": {"challengeNonce": nonce(), "origin": ORIGIN}})
    assert "signature" in host.read()
    host.finish()
