"""How soon a login that waits for the card goes on once the card is in: from the virtual
card's insertion to the PIN dialog, through a running ``cardbridge serve`` (its card
monitor's events wake the search at once) and through ``cardbridge authenticate`` (no
monitor: it looks once a second), side by side in one run.

    python bench/wait_for_card.py [--rounds N]

Starts pcscd (when none runs) and the virtual PIV card in the vpcd reader itself, and stops
them again. The dialogs are the test suite's scripted pinentry: the notice stays open until
the bridge closes it, the PIN dialog is cancelled (nothing is signed). Run it under the
suite's PC/SC lock on a shared machine.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cardbridge.emulator.pcscd import Pcscd
from cardbridge.emulator.virtual_card import VirtualPivCard, load_or_create_card

ORIGIN = "https://login.example.no"
PINENTRY = Path(__file__).resolve().parents[1] / "tests" / "tools" / "scripted_pinentry.py"


class Dialogs:
    """The scripted pinentry's script and log."""

    def __init__(self, folder: Path) -> None:
        self.script = folder / "script.json"
        self.log = folder / "log.jsonl"

    def reset(self) -> None:
        self.log.unlink(missing_ok=True)
        self.script.write_text(json.dumps({"responses": ["WAIT", "CANCEL"], "log": str(self.log)}), encoding="utf-8")

    def count(self) -> int:
        return len(self.log.read_text(encoding="utf-8").splitlines()) if self.log.exists() else 0

    def wait_for(self, count: int, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() >= count:
                return time.monotonic()
            time.sleep(0.005)
        raise SystemExit(f"dialog {count} did not open within {timeout} s")

    def env(self) -> dict[str, str]:
        return {"CARDBRIDGE_PINENTRY": str(PINENTRY), "CARDBRIDGE_TEST_PINENTRY_SCRIPT": str(self.script)}


def nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def one_round(card: VirtualPivCard, dialogs: Dialogs, start_login: Callable[[], Callable[[], None]]) -> float:
    """Seconds from the card's insertion to the PIN dialog."""
    card.remove(wait=10)
    dialogs.reset()
    finish = start_login()
    dialogs.wait_for(1)  # the notice: no card
    time.sleep(0.3)
    inserted = time.monotonic()
    card.insert(wait=10)
    shown = dialogs.wait_for(2)  # the PIN dialog
    finish()
    return shown - inserted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cardbridge-bench-") as tmp, Pcscd():
        folder = Path(tmp)
        dialogs = Dialogs(folder)
        env = {k: v for k, v in os.environ.items() if k not in ("CARDBRIDGE_PKCS11_MODULE", "SOFTHSM2_CONF")}
        env.update(
            dialogs.env(),
            CARDBRIDGE_CONFIG=str(folder / "none.toml"),
            CARDBRIDGE_STATE_DIR=str(folder / "state"),
            CARDBRIDGE_LOG_DIR=str(folder / "log"),
            CARDBRIDGE_DATA_DIR=str(folder / "data"),
        )
        card = VirtualPivCard(load_or_create_card(folder / "card", key="ec-p256", reader=0), reader=0).start()
        serve = subprocess.Popen(
            [sys.executable, "-m", "cardbridge", "serve", "--port", "0", "--allow-origin", ORIGIN],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        try:
            assert serve.stdout is not None
            line = serve.stdout.readline()
            port = int(line.split("http://127.0.0.1:")[1].split(",")[0].split()[0])
            time.sleep(1.0)  # the card monitor has its first look

            def http_login() -> Callable[[], None]:
                def post() -> None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    body = json.dumps({"challengeNonce": nonce()})
                    conn.request(
                        "POST", "/v1/authenticate", body, {"Origin": ORIGIN, "Content-Type": "application/json"}
                    )
                    conn.getresponse().read()
                    conn.close()

                thread = threading.Thread(target=post)
                thread.start()
                return lambda: thread.join(60)

            def cli_login() -> Callable[[], None]:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "cardbridge", "authenticate", "--origin", ORIGIN, "--nonce", nonce()],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env={**env, "CARDBRIDGE_CONFIG": str(folder / "allow.toml")},
                )
                return lambda: proc.wait(60) and None

            allow = folder / "allow.toml"
            allow.write_text(f'allowed_origins = ["{ORIGIN}"]\n', encoding="utf-8")
            allow.chmod(0o600)
            events, polls = [], []
            for _ in range(args.rounds):  # alternating, so both see the same machine
                events.append(one_round(card, dialogs, http_login))
                polls.append(one_round(card, dialogs, cli_login))
        finally:
            serve.terminate()
            serve.wait(10)
            card.stop()
    median_events, median_polls = statistics.median(events), statistics.median(polls)
    print(f"card in -> PIN dialog, {args.rounds} rounds each (median, min-max):")
    print(f"  serve, card events:         {median_events:.3f} s ({min(events):.3f}-{max(events):.3f})")
    print(f"  authenticate, 1 s polling:  {median_polls:.3f} s ({min(polls):.3f}-{max(polls):.3f})")
    print(f"  polling / events: {median_polls / median_events:.2f}")


if __name__ == "__main__":
    main()
