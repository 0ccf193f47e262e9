"""APDUs for one authenticate: the built-in PIV driver (cold, then with the certificate
cached) next to OpenSC's PKCS#11 module over the same virtual PIV card, as the card
counted them.

    python bench/apdu.py [--key ec-p256|ec-p384|rsa-2048]

Starts pcscd (when none runs) and the virtual card itself, and stops them again.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from cardbridge.emulator.pcscd import Pcscd
from cardbridge.emulator.virtual_card import ApduRecord, VirtualPivCard, load_or_create_card
from cardbridge.model import Purpose
from cardbridge.pcsc import PcscBackend
from cardbridge.pcsc.scard import E_TIMEOUT, STATE_UNAWARE, PcscContext

READER = "Virtual PCD 00 00"
PIN = "123456"
OPENSC = next(
    (
        p
        for p in ("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so", "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so")
        if os.path.exists(p)
    ),
    None,
)
NAMES = {0xA4: "SELECT", 0xCB: "GET DATA", 0x20: "VERIFY", 0x87: "GENERAL AUTHENTICATE", 0xC0: "GET RESPONSE"}

OPENSC_LOGIN = """
import sys, pkcs11
from pkcs11 import Mechanism, ObjectClass
lib = pkcs11.lib(sys.argv[1])
slot = [s for s in lib.get_slots(token_present=True) if s.slot_description.strip() == sys.argv[2]][0]
with slot.get_token().open(user_pin=sys.argv[3]) as session:
    key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=b"\\x01")
    list(session.get_objects({pkcs11.Attribute.CLASS: ObjectClass.CERTIFICATE, pkcs11.Attribute.ID: b"\\x01"}))
    mech = Mechanism.ECDSA if key.key_type == pkcs11.KeyType.EC else Mechanism.RSA_PKCS
    data = bytes.fromhex(sys.argv[4])
    if mech == Mechanism.RSA_PKCS:
        data = bytes.fromhex("3031300d060960864801650304020105000420") + data
    key.sign(data, mechanism=mech)
"""


def wait_present(timeout: float = 10.0) -> None:
    ctx = PcscContext()
    try:
        deadline, state = time.monotonic() + timeout, STATE_UNAWARE
        while time.monotonic() < deadline:
            code, states = ctx.status([(READER, state)], 500)
            if code != E_TIMEOUT and states[0].present:
                return
            state = states[0].event_state & ~0x2
        raise SystemExit("pcscd did not see the virtual card")
    finally:
        ctx.release()


def summary(records: list[ApduRecord]) -> str:
    counts = Counter(NAMES.get(r.ins, f"INS {r.ins:02X}") for r in records)
    return ", ".join(f"{name} ×{n}" for name, n in counts.most_common())


def driver_authenticate(backend: PcscBackend) -> None:
    """What the service does for one authenticate: find the card and its authentication
    certificate, read the PIN status for the dialog, then log in and sign."""
    token = backend.executor.submit(backend.token, READER).result(timeout=30)
    certs = token.executor.submit(token.certificates).result(timeout=30)
    cert = next(c for c in certs if c.purpose is Purpose.AUTHENTICATION)
    token.executor.submit(token.pin_status, cert).result(timeout=30)
    algorithm = token.supported_algorithms(cert)[0]
    digest = hashlib.new(algorithm.hash_function.replace("-", "").lower(), b"bench").digest()
    token.executor.submit(token.sign_digest, cert, bytearray(PIN.encode()), digest, algorithm).result(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", default="ec-p256", choices=("ec-p256", "ec-p384", "rsa-2048"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, Pcscd():
        card = VirtualPivCard(load_or_create_card(Path(folder), key=args.key), pin=PIN, reader=0).start()
        try:
            card.insert(wait=10)
            wait_present()
            rows: list[tuple[str, list[ApduRecord]]] = []
            backend = PcscBackend()
            try:
                for label in ("built-in PIV driver, cold", "built-in PIV driver, warm (certificate cached)"):
                    card.reset_count()
                    driver_authenticate(backend)
                    rows.append((label, list(card.records)))
                # A warm sign alone: what is left once the dialog has the PIN.
                token = backend.executor.submit(backend.token, READER).result(timeout=30)
                cert = next(c for c in token.executor.submit(token.certificates).result() if c.key_id == b"\x9a")
                algorithm = token.supported_algorithms(cert)[0]
                digest = hashlib.new(algorithm.hash_function.replace("-", "").lower(), b"x").digest()
                card.reset_count()
                token.executor.submit(token.sign_digest, cert, bytearray(PIN.encode()), digest, algorithm).result()
                rows.append(("built-in PIV driver, warm sign_digest only", list(card.records)))
            finally:
                backend.close()
            if OPENSC:
                card.reset_count()
                digest = hashlib.sha256(b"bench").digest()
                subprocess.run(
                    [sys.executable, "-c", OPENSC_LOGIN, OPENSC, READER, PIN, digest.hex()], check=True, timeout=120
                )
                rows.append(("OpenSC opensc-pkcs11.so (load, login, find key and cert, sign)", list(card.records)))
        finally:
            card.stop()
    print(f"APDUs for one authenticate with a virtual PIV card ({args.key}):\n")
    width = max(len(label) for label, _ in rows)
    for label, records in rows:
        print(f"  {label:<{width}}  {len(records):>4}   {summary(records)}")
    cold, warm = len(rows[0][1]), len(rows[1][1])
    print()
    print(f"  warm/cold (built-in): {warm}/{cold} = {warm / cold:.2f}")
    if OPENSC:
        opensc = len(rows[-1][1])
        print(f"  OpenSC/built-in cold: {opensc}/{cold} = {opensc / cold:.1f}×")
        print(f"  OpenSC/built-in warm: {opensc}/{warm} = {opensc / warm:.1f}×")
    print(
        "  goal: warm sign at most one APDU over the minimum (SELECT, VERIFY, GENERAL AUTHENTICATE)"
        " — the one more is the PIV logout (VERIFY P1=FF):",
        len(rows[2][1]),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
