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
