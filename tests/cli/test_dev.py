"""``cardbridge dev`` (``cardbridge.cli.dev``); ``demo`` has tests of its own in tests/demo."""

import base64
import json
import os
import secrets
from pathlib import Path

import pytest

from cardbridge.origins import OriginStore
from tests.cli import run
from tests.verify import verify_token

ORIGIN = "https://login.example.no"


@pytest.mark.softhsm
def test_dev_token_create(tmp_path: Path, origin_store: OriginStore) -> None:
    origin_store.allow(ORIGIN)
    env = {**os.environ, "CARDBRIDGE_DATA_DIR": str(tmp_path)}
    env.pop("SOFTHSM2_CONF", None)
    result = run("dev", "token", "create", "--key", "ec-p256", "--json", env=env)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["softhsm2_conf"].startswith(str(tmp_path))
    assert info["id_code"].startswith("PNONO-")
    # It is a working card: list it and log in with it.
    env["SOFTHSM2_CONF"] = info["softhsm2_conf"]
    challenge = base64.b64encode(secrets.token_bytes(32)).decode()
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


def test_dev_needs_what() -> None:
    result = run("dev")
    assert result.returncode == 2
    assert "error: INVALID_ARGUMENT: " in result.stderr


@pytest.mark.parametrize(
    ("kind", "flag"),
    [("esteid", "--pin2-not-active"), ("piv", "--pin-not-active"), ("fineid-v3", "--pin2-not-active")],
)
def test_dev_card_refuses_a_pin_not_active_on_a_card_without_it(kind: str, flag: str, tmp_path: Path) -> None:
    """Only the Thales application's cards (fineid, esteid-thales) say a PIN is not active yet:
    another kind is refused before any key is made or a reader touched."""
    env = {**os.environ, "CARDBRIDGE_DATA_DIR": str(tmp_path)}
    result = run("dev", "card", "--kind", kind, flag, env=env)
    assert result.returncode == 3, result.stderr
    assert "error: INVALID_ARGUMENT: " in result.stderr and "not activated" in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("kind", "flag", "named"),
    [("belpic", "--pin2", "--pin2"), ("belpic", "--puk", "--puk"), ("piv", "--pin2", "--pin2")],
)
def test_dev_card_refuses_a_pin_the_card_does_not_have(kind: str, flag: str, named: str, tmp_path: Path) -> None:
    """A PIN the kind does not have (the Belgian card and PIV have one PIN and no PUK) is
    INVALID_ARGUMENT, not silently dropped, before any key is made or a reader touched."""
    env = {**os.environ, "CARDBRIDGE_DATA_DIR": str(tmp_path)}
    result = run("dev", "card", "--kind", kind, flag, "4321", env=env)
    assert result.returncode == 3, result.stderr
    assert "error: INVALID_ARGUMENT: " in result.stderr, result.stderr
    assert named in result.stderr and "one PIN" in result.stderr, result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("tries", "exit_code"), [("0", 3), ("16", 3), ("-1", 3), ("three", 2)])
def test_dev_card_refuses_a_pin_retry_limit_out_of_range(tries: str, exit_code: int, tmp_path: Path) -> None:
    """``--pin-tries`` is 1 to 15 (the count a card gives in 63Cx is one hex digit): another
    number is INVALID_ARGUMENT before any key is made or a reader touched."""
    env = {**os.environ, "CARDBRIDGE_DATA_DIR": str(tmp_path)}
    result = run("dev", "card", "--kind", "fineid", "--pin-tries", tries, env=env)
    assert result.returncode == exit_code, result.stderr
    assert "error: INVALID_ARGUMENT: " in result.stderr, result.stderr
    assert ("1 to 15" if exit_code == 3 else "--pin-tries") in result.stderr, result.stderr
    assert not any(tmp_path.iterdir())


def test_pin_not_active_is_a_pin_exit_code() -> None:
    from cardbridge.cli.common import EXIT_CODES
    from cardbridge.errors import Code

    assert EXIT_CODES[Code.PIN_NOT_ACTIVE] == EXIT_CODES[Code.PIN_BLOCKED] == 5
