"""``cardbridge dev pinentry``: the service's pinentry client talks to it as to pinentry-tty;
and it answers only under ``cardbridge demo`` — a bridge configured with it refuses."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cardbridge.config import ENV_DEMO_RUN, Config, is_dev_pinentry
from cardbridge.errors import ConfigError, PinentryError, UserCancelledError
from cardbridge.model import PinKind, PinStatus
from cardbridge.pinentry import PinentrySource, PinRequest
from tests.nativemsg.conftest import ORIGIN, HostProcess, write_config

PROGRAM = f"{shlex.quote(sys.executable)} -m cardbridge dev pinentry"


@pytest.fixture
def demo_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``cardbridge demo`` gives the bridge it starts: the marker naming the demo
    process. Here the test process plays the demo (and the bridge): it starts the pinentry."""
    monkeypatch.setenv(ENV_DEMO_RUN, str(os.getpid()))


def request(kind: PinKind = PinKind.AUTHENTICATION, *, pinpad: bool = False) -> PinRequest:
    return PinRequest(
        origin="http://localhost:8123",
        holder="Kari Nordmann",
        kind=kind,
        status=PinStatus(protected_path=pinpad),
        lang="en",
        timeout=30,
    )


@pytest.mark.usefixtures("demo_marker")
async def test_answers_getpin_with_the_dev_pin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    log = tmp_path / "dialogs.jsonl"
    monkeypatch.setenv("CARDBRIDGE_DEV_PIN", "12%3\n4")
    monkeypatch.setenv("CARDBRIDGE_DEV_PINENTRY_LOG", str(log))
    pin = await PinentrySource(PROGRAM).get_pin(request())
    assert pin == bytearray(b"12%3\n4")
    entries = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert len(entries) == 1
    assert entries[0]["command"] == "GETPIN"
    assert "http://localhost:8123" in entries[0]["setdesc"]
    assert "12%3" not in log.read_text(encoding="utf-8")


@pytest.mark.usefixtures("demo_marker")
async def test_confirms_on_a_pinpad(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDBRIDGE_DEV_PIN", "1234")
    monkeypatch.delenv("CARDBRIDGE_DEV_PINENTRY_LOG", raising=False)
    assert await PinentrySource(PROGRAM).get_pin(request(pinpad=True)) == bytearray()


@pytest.mark.usefixtures("demo_marker")
async def test_cancels_without_a_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARDBRIDGE_DEV_PIN", raising=False)
    monkeypatch.delenv("CARDBRIDGE_DEV_PINENTRY_LOG", raising=False)
    with pytest.raises(UserCancelledError):
        await PinentrySource(PROGRAM).get_pin(request(PinKind.SIGNING))


# -- only under `cardbridge demo` -------------------------------------------------------------


def _dev_pinentry_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV_DEMO_RUN}
    return {**env, "CARDBRIDGE_DEV_PIN": "1234", **extra}


@pytest.mark.parametrize(
    "marker",
    [
        None,  # a plain start: someone set pinentry = "cardbridge dev pinentry"
        "1",  # a fixed value, as a config or a unit file would hold
        "0",
        "yes",
        "999999999",  # no such process
    ],
)
def test_dev_pinentry_refuses_outside_the_demo(marker: str | None) -> None:
    env = _dev_pinentry_env(**({ENV_DEMO_RUN: marker} if marker is not None else {}))
    result = subprocess.run(
        [sys.executable, "-m", "cardbridge", "dev", "pinentry"],
        input=b"GETPIN\nCONFIRM\nBYE\n",
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.stdout == b""  # not even the greeting: no PIN, no confirmation
    assert result.returncode == 8, result.stderr
    assert b"CONFIG_ERROR" in result.stderr and b"cardbridge demo" in result.stderr


async def test_bridge_client_gets_no_pin_from_it_outside_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    # Even when something else picks it (a wrapper script the bridge cannot recognize), the
    # service's pinentry client gets an error, never a PIN.
    monkeypatch.delenv(ENV_DEMO_RUN, raising=False)
    monkeypatch.setenv("CARDBRIDGE_DEV_PIN", "1234")
    with pytest.raises(PinentryError):
        await PinentrySource(PROGRAM).get_pin(request())


@pytest.mark.parametrize(
    "program",
    [
        "cardbridge dev pinentry",
        PROGRAM,
        "/usr/local/bin/cardbridge --lang en dev pinentry",
        "python3 -m cardbridge dev  pinentry",
    ],
)
def test_config_refuses_the_dev_pinentry_unless_the_demo_started_this_process(program: str) -> None:
    assert is_dev_pinentry(program)
    for config, env in ((Config(pinentry=program), {}), (Config(), {"CARDBRIDGE_PINENTRY": program})):
        with pytest.raises(ConfigError, match="only `cardbridge demo`"):
            config.pinentry_program(env)
        with pytest.raises(ConfigError):
            config.pinentry_program({**env, ENV_DEMO_RUN: str(os.getpid())})  # this process, not its parent
        assert config.pinentry_program({**env, ENV_DEMO_RUN: str(os.getppid())}) == program


@pytest.mark.parametrize("program", ["pinentry-gnome3", "pinentry-tty --timeout 60", "cardbridge dev", "pinentry"])
def test_other_pinentry_programs_need_no_marker(program: str) -> None:
    assert not is_dev_pinentry(program)
    assert Config(pinentry=program).pinentry_program({}) == program


def test_serve_with_the_dev_pinentry_refuses_to_start(tmp_path: Path) -> None:
    folder = tmp_path / "cfg"
    folder.mkdir(mode=0o700)
    config = write_config(folder, allowed_origins=[ORIGIN], pinentry=PROGRAM)
    base = _dev_pinentry_env(CARDBRIDGE_CONFIG=str(config), CARDBRIDGE_DATA_DIR=str(tmp_path / "data"))
    for env in (
        base,  # from the config file
        {**base, "CARDBRIDGE_PINENTRY": "cardbridge dev pinentry"},  # from the environment
        {**base, ENV_DEMO_RUN: "1"},  # a fixed marker
    ):
        result = subprocess.run(
            [sys.executable, "-m", "cardbridge", "serve", "--port", "0", "--no-pcsc"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert result.returncode == 8, result.stdout + result.stderr
        assert "CONFIG_ERROR" in result.stderr and "cardbridge demo" in result.stderr
        assert "listening" not in result.stdout


@pytest.mark.parametrize("command", ["authenticate", "sign"])
def test_native_host_with_the_dev_pinentry_refuses(tmp_path: Path, command: str) -> None:
    folder = tmp_path / "cfg"
    folder.mkdir(mode=0o700)
    config = write_config(folder, allowed_origins=[ORIGIN], pinentry=PROGRAM)
    env = _dev_pinentry_env(
        CARDBRIDGE_CONFIG=str(config),
        CARDBRIDGE_DATA_DIR=str(tmp_path / "data"),
        CARDBRIDGE_PKCS11_MODULE="/nonexistent/module.so",
    )
    challenge = base64.b64encode(secrets.token_bytes(32)).decode()
    arguments = {
        "authenticate": {"challengeNonce": challenge, "origin": ORIGIN},
        "sign": {
            "hash": base64.b64encode(bytes(32)).decode(),
            "hashFunction": "SHA-256",
            "certificate": base64.b64encode(b"0").decode(),
            "origin": ORIGIN,
        },
    }[command]
    host = HostProcess(env=env)
    try:
        host.read()
        host.send({"command": command, "arguments": arguments})
        error = host.read()["error"]
        host.finish()
    finally:
        host.kill()
    assert error["cardbridgeCode"] == "CONFIG_ERROR", error
    # The page hears only that the set-up is wrong; the details (which name files) go to the log.
    assert str(tmp_path) not in error["message"] and "dev pinentry" not in error["message"]


def test_doctor_reports_the_dev_pinentry_as_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    from cardbridge import doctor

    monkeypatch.delenv(ENV_DEMO_RUN, raising=False)
    monkeypatch.delenv("CARDBRIDGE_PINENTRY", raising=False)
    check = doctor.check_pinentry(Config(pinentry="cardbridge dev pinentry"), "en")
    assert check.status is doctor.Status.FAIL
    assert "development pinentry" in check.detail and "cardbridge demo" in check.detail
    assert check.fix
