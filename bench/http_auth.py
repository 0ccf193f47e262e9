"""Median latency of ``POST /v1/authenticate`` through ``cardbridge serve`` next to a direct,
in-process PKCS#11 login and sign of the same digest, both against SoftHSM2 ES256 tokens
(each path its own token; the bridge's SoftHSM2 store holds only its one, as a citizen
has one card).

The bridge runs as a real process on loopback; its PIN dialog is a scripted pinentry that
answers at once (a POSIX shell script speaking the Assuan protocol, so the dialog costs a
process start, as a real one does, but no person). "direct" is what any login must at
least do with python-pkcs11: open a session, C_Login, find the key, C_Sign the digest
H(H(origin) || H(nonce)), C_Logout, close. The two are measured in alternating rounds in
one run (100 rounds), so machine noise hits both alike. Goal: http / direct at most 3.

Also printed, for the record, to show where the time goes: ``CardService.authenticate`` in
process with the PIN handed over directly (no dialog, no HTTP), and the same HTTP login
with the Python scripted pinentry that the tests use (a Python interpreter start per
dialog; measured after the comparison, so its bursts do not disturb it).

Run: python bench/http_auth.py   (about 15-30 seconds; stops by itself)
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ORIGIN = "https://login.example.no"
PIN = "1234"
# One token per path measured: SoftHSM2 re-reads a token's files when another process has
# used it, so sharing one token would make each path pay for the others. Each bridge process
# has a SoftHSM2 store with its one token, as a citizen has one card.
LABELS = {"http": "bench-http", "direct": "bench-direct", "service": "bench-service", "http-py": "bench-py"}
ROUNDS = 100
PY_ROUNDS = 20
WARMUP = 3
REPO = Path(__file__).resolve().parent.parent
PY_PINENTRY = REPO / "tests" / "tools" / "scripted_pinentry.py"

SH_PINENTRY = """#!/bin/sh
# A pinentry that answers every GETPIN with $BENCH_PIN at once (bench only).
echo "OK Pleased to meet you"
while read -r verb rest; do
  case "$verb" in
    GETPIN) echo "D $BENCH_PIN"; echo "OK" ;;
    BYE) echo "OK closing connection"; exit 0 ;;
    *) echo "OK" ;;
  esac
done
"""


def nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def make_tokens(folder: Path) -> str:
    """The tokens this process uses (direct and service), in a SoftHSM2 store of its own."""
    from cardbridge.emulator.devpki import Citizen, DevCA
    from cardbridge.emulator.softhsm import init_token, provision, softhsm_module, write_config

    conf = write_config(folder / "softhsm")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    module = softhsm_module()
    ca = DevCA.load_or_create(folder / "ca")
    for label in (LABELS["direct"], LABELS["service"]):
        init_token(conf, label, PIN, "12345678")
    for label in (LABELS["direct"], LABELS["service"]):
        provision(module, label, PIN, ca, key="ec-p256", citizen=Citizen())
    return module


def bridge_token(folder: Path, label: str) -> Path:
    """A one-token SoftHSM2 store for a bridge process, as a citizen's one card would be
    (made by ``cardbridge dev token create`` in a process of its own)."""
    env = {**os.environ, "CARDBRIDGE_DATA_DIR": str(folder / label)}
    env.pop("SOFTHSM2_CONF", None)
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "cardbridge",
            "dev",
            "token",
            "create",
            "--key",
            "ec-p256",
            "--pin",
            PIN,
            "--label",
            label,
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    return Path(json.loads(made.stdout)["softhsm2_conf"])


def start_bridge(module: str, env: dict[str, str], label: str) -> tuple[subprocess.Popen[str], int]:
    args = ["--module", module, "--token", label, "--allow-origin", ORIGIN, "--no-pcsc", "--port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cardbridge", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the bridge did not start: {line!r}")
    return proc, int(line.split("http://127.0.0.1:")[1].split(",")[0].split()[0])


def stop_bridge(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def http_login(port: int) -> Callable[[], None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def once() -> None:
        body = json.dumps({"challengeNonce": nonce()})
        conn.request(
            "POST", "/v1/authenticate", body=body, headers={"Origin": ORIGIN, "Content-Type": "application/json"}
        )
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise SystemExit(f"authenticate failed: {response.status} {data[:300]!r}")

    return once


def direct_login(module: str) -> Callable[[], None]:
    import pkcs11
    from cardbridge.authtoken import authentication_digest
    from cardbridge.model import SignatureAlgorithm
    from pkcs11 import Attribute, Mechanism, ObjectClass

    token = pkcs11.lib(module).get_token(token_label=LABELS["direct"])
    algorithm = SignatureAlgorithm("ECC", "SHA-256", "NONE")
    auth_key_id = b"\x01"  # the provisioned authentication key (emulator.softhsm.provision)

    def once() -> None:
        digest = authentication_digest(ORIGIN, nonce(), algorithm)
        with token.open(user_pin=PIN) as session:  # C_OpenSession, C_Login … C_Logout, C_CloseSession
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=auth_key_id)
            signature = key.sign(digest, mechanism=Mechanism.ECDSA)
            assert len(signature) == 64 and key[Attribute.ID] == auth_key_id

    return once


def service_login(module: str) -> Callable[[], None]:
    import asyncio

    from cardbridge.pinentry import FixedPinSource
    from cardbridge.service import CardService, Selection, open_backends

    loop = asyncio.new_event_loop()
    service = CardService(open_backends([module]))
    selection = Selection(token_label=LABELS["service"])

    def once() -> None:
        loop.run_until_complete(service.authenticate(ORIGIN, nonce(), FixedPinSource(PIN), selection=selection))

    return once


def timed(fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cardbridge-bench-") as tmp:
        folder = Path(tmp)
        module = make_tokens(folder)
        sh_pinentry = folder / "pinentry.sh"
        sh_pinentry.write_text(SH_PINENTRY, encoding="utf-8")
        sh_pinentry.chmod(0o755)
        script = folder / "pinentry-script.json"
        script.write_text(json.dumps({"responses": [PIN] * (PY_ROUNDS + 1)}), encoding="utf-8")
        base_env = {
            **os.environ,
            "BENCH_PIN": PIN,
            "CARDBRIDGE_CONFIG": str(folder / "no-config.toml"),
            "CARDBRIDGE_LOG_DIR": str(folder / "log"),
        }
        http_conf = bridge_token(folder, LABELS["http"])
        py_conf = bridge_token(folder, LABELS["http-py"])
        bridge, port = start_bridge(
            module,
            {**base_env, "SOFTHSM2_CONF": str(http_conf), "CARDBRIDGE_PINENTRY": str(sh_pinentry)},
            LABELS["http"],
        )
        py_bridge, py_port = start_bridge(
            module,
            {
                **base_env,
                "SOFTHSM2_CONF": str(py_conf),
                "CARDBRIDGE_PINENTRY": f"{sys.executable} {PY_PINENTRY}",
                "CARDBRIDGE_TEST_PINENTRY_SCRIPT": str(script),
            },
            LABELS["http-py"],
        )
        try:
            runs = {
                "http": http_login(port),
                "direct": direct_login(module),
                "service": service_login(module),
            }
            for _ in range(WARMUP):
                for run in runs.values():
                    run()
            samples: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(ROUNDS):  # alternating, side by side
                for name, run in runs.items():
                    samples[name].append(timed(run))
            # For the record only, and after the comparison: each of these dialogs starts a
            # Python interpreter, a burst of work that would disturb the rounds above.
            py_login = http_login(py_port)
            py_login()
            samples["http-py"] = [timed(py_login) for _ in range(PY_ROUNDS)]
        finally:
            stop_bridge(bridge)
            stop_bridge(py_bridge)
    median = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    print(f"SoftHSM2 ES256 login, {ROUNDS} rounds each, alternating (median ms)")
    print(f"  POST /v1/authenticate (sh pinentry):       {median['http']:7.2f} ms")
    print(f"  direct PKCS#11 login + sign (in process):  {median['direct']:7.2f} ms")
    print(f"  ratio http / direct:                        {median['http'] / median['direct']:7.2f}x   (goal <= 3x)")
    print("for the record:")
    print(f"  CardService.authenticate in process, PIN given, no dialog: {median['service']:7.2f} ms")
    print(f"  POST /v1/authenticate with the Python test pinentry:      {median['http-py']:7.2f} ms")


if __name__ == "__main__":
    main()
