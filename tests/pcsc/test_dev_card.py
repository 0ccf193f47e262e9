"""``cardbridge dev card`` as a developer runs it, in pcscd's vpcd reader: the options that
change how the emulated card is issued, seen through the bridge as a real card's would be."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ScriptedPinentry
from tests.pcsc.conftest import READER_1, Pcscd, wait_for_card
from tests.pcsc.national import bridge_env, cli

pytestmark = pytest.mark.pcsc


@pytest.mark.parametrize(("kind", "tries"), [("piv", 7), ("esteid-thales", 10)])
def test_dev_card_pin_tries_issues_the_card_with_that_retry_limit(
    kind: str, tries: int, pcscd: Pcscd, tmp_path: Path, pinentry: ScriptedPinentry
) -> None:
    """``--pin-tries N``: the holder's PINs are issued with N tries (another issuer profile's
    limit), so ``cardbridge list --json`` shows N left, not the kind's own 3."""
    env = bridge_env(tmp_path, pinentry.env())
    command = ["dev", "card", "--kind", kind, "--reader", "1", "--pin-tries", str(tries)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cardbridge", "--lang", "en", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Virtual card"), first + (
            proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        )
        wait_for_card(READER_1, True)
        listed = cli("list", "--json", "--reader", READER_1, env=env)
        assert listed.returncode == 0, listed.stderr
        (token,) = [t for t in json.loads(listed.stdout)["tokens"] if t["token"]["backend"] == "pcsc"]
        assert token["pin"]["retriesLeft"] == tries, token["pin"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    wait_for_card(READER_1, False)
    assert proc.returncode == 0
