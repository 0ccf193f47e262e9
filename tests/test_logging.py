"""Logging: the TRACE level, the rotating private log file, and PINs that never reach it."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import platformdirs
import pytest

from cardbridge import logsetup
from cardbridge.logsetup import TRACE, RedactFilter, redact, setup_logging
from cardbridge.origins import OriginStore
from tests.conftest import ScriptedPinentry
from tests.verify import verify_token

PIN = "739184"  # unusual, so that a hit in the log can only be the PIN
WRONG_PIN = "281946"


@pytest.fixture
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def test_trace_is_a_named_level_below_debug() -> None:
    assert TRACE == 5 < logging.DEBUG
    assert logging.getLevelName(TRACE) == "TRACE"
    assert logsetup.level_number("trace") == TRACE
    assert logsetup.level_number("nonsense") == logging.INFO
    assert [logsetup.stderr_level(v) for v in range(4)] == [logging.WARNING, logging.INFO, logging.DEBUG, TRACE]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("> 00 20 00 80 08 37 33 39 31 38 34 FF FF", "> 00 20 00 80 <redacted>"),
        ("> 00 24 00 80 10 31 32 33 34 FF FF FF FF 37 33 39 31 38 34 FF FF", "> 00 24 00 80 <redacted>"),
        ("> 00 2C 00 80 10 31 32 33 34", "> 00 2C 00 80 <redacted>"),
        ("> 00 A4 04 00 09 A0 00 00 03 08", "> 00 A4 04 00 09 A0 00 00 03 08"),
        (f"login with pin={PIN}", "login with pin=<redacted>"),
        (f'{{"pin": "{PIN}", "so_pin": "12345678"}}', '{"pin": "<redacted>", "so_pin": "<redacted>"}'),
        (f"user PIN: {PIN}", "user PIN: <redacted>"),
        (f"the PIN {PIN} was wrong", "the PIN <redacted> was wrong"),
        (f"C_Login(CKU_USER, {PIN}) on p256", "C_Login(CKU_USER, <redacted>) on p256"),
        (f"pinentry -> D {PIN}", "pinentry -> D <redacted>"),
        (f"softhsm2-util --init-token --pin {PIN} --so-pin 12345678", None),
        ("The PIN must have 4 to 8 characters.", "The PIN must have 4 to 8 characters."),
        ("PinStatus(retries_left=3, min_length=4)", "PinStatus(retries_left=3, min_length=4)"),
        ("Enter your login PIN (PIN1) if you agree.", "Enter your login PIN (PIN1) if you agree."),
    ],
)
def test_redact(line: str, expected: str | None) -> None:
    out = redact(line)
    if expected is None:
        assert PIN not in out and "12345678" not in out
    else:
        assert out == expected


def test_filter_redacts_arguments_and_tracebacks() -> None:
    record = logging.LogRecord("cardbridge.x", logging.INFO, __file__, 1, "verify pin=%s for %s", (PIN, "card"), None)
    try:
        raise ValueError(f"pin={PIN}")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert RedactFilter().filter(record)
    text = logging.Formatter().format(record)
    assert PIN not in text and "pin=<redacted> for card" in text and "ValueError" in text


def test_default_folder_is_the_platforms(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(logsetup.ENV_LOG_DIR, raising=False)
    assert logsetup.log_dir() == Path(platformdirs.user_log_dir("cardbridge"))
    monkeypatch.setenv(logsetup.ENV_LOG_DIR, str(tmp_path))
    assert logsetup.log_dir() == tmp_path


def test_private_rotating_file(clean_logging: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(logsetup.ENV_LOG_LEVEL, raising=False)
    folder = tmp_path / "logs"
    path = setup_logging(file_level="INFO", directory=folder, max_bytes=2000, backup_count=2)
    assert path == folder / "cardbridge.log"
    log = logging.getLogger("cardbridge.test")
    log.log(TRACE, "trace line")
    log.debug("debug line")
    for i in range(100):
        log.info("line %03d %s", i, "x" * 40)
    log.info("secret pin=%s", PIN)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == ["cardbridge.log", "cardbridge.log.1", "cardbridge.log.2"], "it rotates"
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    everything = "".join(f.read_text(encoding="utf-8") for f in files)
    assert "trace line" not in everything and "debug line" not in everything
    assert "INFO cardbridge.test: line 099" in everything
    assert PIN not in everything and "secret pin=<redacted>" in everything


def test_trace_reaches_the_file_only_when_asked(
    clean_logging: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(logsetup.ENV_LOG_LEVEL, "TRACE")  # wins over the config file's level
    path = setup_logging(file_level="WARNING", directory=tmp_path)
    assert path is not None
    logging.getLogger("cardbridge.pcsc.apdu").log(TRACE, "> 00 20 00 80 06 37 33 39 31 38 34")
    text = path.read_text(encoding="utf-8")
    assert "TRACE cardbridge.pcsc.apdu: > 00 20 00 80 <redacted>" in text
    assert "37 33 39" not in text
    # Set up again: one file handler, not two.
    setup_logging(file_level="INFO", directory=tmp_path)
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_cardbridge", False)]
    assert len(ours) == 2


def test_unwritable_log_folder_is_not_fatal(clean_logging: None, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert setup_logging(directory=blocker / "logs") is None


def _run(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cardbridge", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _pin_forms(pin: str) -> list[str]:
    raw = pin.encode()
    return [pin, raw.hex(), raw.hex(" "), raw.hex(" ").upper(), raw.hex().upper(), base64.b64encode(raw).decode()]


@pytest.mark.softhsm
def test_no_pin_in_the_log_of_a_real_login_at_trace(
    tmp_path: Path, pinentry: ScriptedPinentry, origin_store: OriginStore
) -> None:
    origin_store.allow("https://login.example.no")  # the question about a new site is tested elsewhere
    base = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    base["CARDBRIDGE_DATA_DIR"] = str(tmp_path / "data")
    base["CARDBRIDGE_CONFIG"] = str(tmp_path / "none.toml")
    created = _run(
        "dev", "token", "create", "--key", "ec-p256", "--pin", PIN, "--label", "log-test", "--json", env=base
    )
    assert created.returncode == 0, created.stderr
    card = json.loads(created.stdout)
    log_dir = tmp_path / "log"
    env = {
        **base,
        **pinentry.env(),
        "SOFTHSM2_CONF": card["softhsm2_conf"],
        "CARDBRIDGE_LOG_DIR": str(log_dir),
        "CARDBRIDGE_LOG_LEVEL": "TRACE",
    }
    origin = "https://login.example.no"
    challenge = base64.b64encode(secrets.token_bytes(32)).decode()
    # A wrong PIN first, then the right one, both typed into the (scripted) pinentry.
    pinentry.respond(WRONG_PIN, PIN)
    result = _run("-vvv", "authenticate", "--origin", origin, "--nonce", challenge, "--module", card["module"], env=env)
    assert result.returncode == 0, result.stderr
    verify_token(json.loads(result.stdout), origin, challenge)
    assert len(pinentry.dialogs()) == 2
    # And once through standard input.
    result = _run(
        "-vvv",
        "authenticate",
        "--origin",
        origin,
        "--nonce",
        base64.b64encode(secrets.token_bytes(32)).decode(),
        "--module",
        card["module"],
        "--pin-stdin",
        env=env,
        stdin=PIN + "\n",
    )
    assert result.returncode == 0, result.stderr

    files = list(log_dir.iterdir())
    assert files, "the log file was written"
    text = "".join(f.read_text(encoding="utf-8") for f in files)
    # TRACE was on: the PKCS#11 and pinentry traffic is there …
    assert " TRACE cardbridge.pkcs11.backend: C_Login(CKU_USER, <redacted>)" in text
    assert " TRACE cardbridge.pinentry.assuan: pinentry <- SETDESC" in text
    assert "pinentry -> D <redacted>" in text
    # … and no PIN, in any form, in the log file or on standard error.
    for secret in (PIN, WRONG_PIN):
        for form in _pin_forms(secret):
            assert form not in text, f"{form!r} in the log"
            assert form not in result.stderr
