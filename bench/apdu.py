"""APDUs and wall time for one warm login, per card kind: cardbridge's direct driver next to
OpenSC's PKCS#11 module over the same emulated card, as the card counted them.

    python bench/apdu.py [--kind piv|esteid|…] [--key ec-p256|ec-p384|rsa-2048] [--rounds N]

"Warm" is the second login of a process that already read the card: for the driver, the
token and its certificates are cached (what the service does per login: the PIN state for
the dialog, then log in and sign), and the PIN's tries left are the ones the last VERIFY's
answer gave (``cardbridge.pcsc.pinstate``); the row "warm login, PIN state read" is the
same login when that count cannot be used (another program holds the card, or it is older
than its time to live) and the card is asked before the dialog; with OpenSC holding the card
from another process (the count is not used) and from the bridge's own process (p11-kit's
OpenSC on Debian: the count is used). For OpenSC, a second
C_Login + C_Sign + C_Logout in the same session after a first one (the module loaded and
the card's PKCS#15 read). Starts pcscd (when none runs) and each virtual card itself, and
stops them again.

Each kind's rows are printed as soon as that kind is measured. A kind that fails prints
"not measured: <the error>" and the next kind goes on; the exit status is then 1. OpenSC's
second process failing (its module refuses the card's mechanism, say) is one
"OpenSC: not measured: …" line of that kind.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from cardbridge.emulator.kinds import KINDS, card_kind, pins_with_defaults
from cardbridge.emulator.pcscd import Pcscd
from cardbridge.emulator.virtual_card import ApduRecord, VirtualCard
from cardbridge.errors import CardbridgeError
from cardbridge.model import Purpose
from cardbridge.pcsc import PcscBackend
from cardbridge.pcsc.scard import E_TIMEOUT, STATE_PRESENT, STATE_UNAWARE, PcscContext
from cardbridge.pkcs11.backend import ModuleBackend

READER = "Virtual PCD 00 00"
OPENSC = next(
    (
        p
        for p in ("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so", "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so")
        if os.path.exists(p)
    ),
    None,
)
NAMES = {
    0xA4: "SELECT",
    0xCB: "GET DATA",
    0x20: "VERIFY",
    0x87: "GENERAL AUTHENTICATE",
    0xC0: "GET RESPONSE",
    0xB0: "READ BINARY",
    0x22: "MSE SET",
    0x88: "INTERNAL AUTHENTICATE",
    0x2A: "PSO",
    0xE4: "GET CARD DATA",
    0xE6: "LOG OFF",
}
# The card's least APDUs for a login (its description): select, verify, sign (+ MSE SET where
# the card needs the key set before it signs). Estonian: SELECT ADF1, VERIFY, MSE SET,
# INTERNAL AUTHENTICATE; FINEID: SELECT, VERIFY, MSE SET, PSO HASH, PSO CDS; Belpic (with
# DF(BELPIC) current, where the driver leaves the card): MSE SET, VERIFY, PSO CDS and the GET
# RESPONSE that T=0 needs. The goal: fewer APDUs than OpenSC, at most one (the logout) more
# than the minimum.
MINIMUM = {"piv": 3, "esteid": 4, "fineid": 5, "fineid-v3": 5, "esteid-thales": 5, "belpic": 4}
MINIMUM_TEXT = {
    "piv": "SELECT, VERIFY, GENERAL AUTHENTICATE",
    "esteid": "SELECT, VERIFY, MSE SET, INTERNAL AUTHENTICATE",
    "fineid": "SELECT, VERIFY, MSE SET, PSO HASH, PSO CDS",
    "fineid-v3": "SELECT, VERIFY, MSE SET, PSO HASH, PSO CDS",
    "esteid-thales": "SELECT, VERIFY, MSE SET, PSO HASH, PSO CDS",
    "belpic": "MSE SET, VERIFY, PSO CDS, GET RESPONSE",
}
# Kinds Debian's OpenSC (0.23) cannot log in and sign with, and why.
OPENSC_CANNOT = {
    "fineid": "OpenSC 0.23 has no driver for the FINEID v4 ATR; its default driver reads the PKCS#15 "
    "files but signs nothing (tests/pcsc/test_fineid.py)",
    "fineid-v3": "OpenSC 0.23 has no driver for the FINEID v3 ATRs; its default driver reads the PKCS#15 "
    "files but signs nothing (tests/pcsc/test_fineid_v3.py)",
    "esteid-thales": "OpenSC 0.23 has no driver for the Estonian Thales card (esteid2025 came in a later OpenSC)",
}
# Why OpenSC's second process failed, where it is known (kind, key, the exception's name).
OPENSC_FAILS = {
    ("belpic", "ec-p384", "MechanismInvalid"): "OpenSC 0.23's belpic driver signs with RSA only (applet 1.7), "
    "not with applet 1.8's ECDSA key",
}
# Kinds measured with each of their keys (the Belgian card: applet 1.8 and applet 1.7).
KIND_KEYS: dict[str, tuple[str, ...]] = {"belpic": ("ec-p384", "rsa-2048")}
# The authentication key's CKA_ID in OpenSC where it is not 01 (Belpic: the PKCS#15 ID 02).
OPENSC_KEY_ID = {"belpic": "02"}

# A second process: OpenSC logs in and signs once (cold), says so, waits for a line, then
# logs in and signs again (warm) and prints the warm time.
OPENSC_LOGIN = """
import sys, time, pkcs11
from pkcs11 import Mechanism, ObjectClass
lib = pkcs11.lib(sys.argv[1])
slots = [s for s in lib.get_slots(token_present=True) if s.slot_description.strip() == sys.argv[2]]
pin, data = sys.argv[3], bytes.fromhex(sys.argv[4])
token = slots[0].get_token()
def once():
    started = time.perf_counter()
    with token.open(user_pin=pin) as session:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=bytes.fromhex(sys.argv[6]))
        mech = Mechanism.ECDSA if key.key_type == pkcs11.KeyType.EC else Mechanism.RSA_PKCS
        prefix = bytes.fromhex("3031300d060960864801650304020105000420")
        payload = data if mech == Mechanism.ECDSA else prefix + data[:32]
        key.sign(payload, mechanism=mech)
    return time.perf_counter() - started
once()
print("cold", flush=True)
sys.stdin.readline()
times = [once() for _ in range(int(sys.argv[5]))]
print("warm", min(times), flush=True)
"""


# A second process that loads OpenSC's module and lists its tokens, which leaves the card
# connected (as in a browser with the module, or cardbridge's own PKCS#11 backend with
# p11-kit's OpenSC), until a line comes.
OPENSC_HOLD = """
import sys, pkcs11
lib = pkcs11.lib(sys.argv[1])
for slot in lib.get_slots(token_present=True):
    slot.get_token()
print("holding", flush=True)
sys.stdin.readline()
"""


@dataclass
class Row:
    label: str
    records: list[ApduRecord]
    seconds: float


@dataclass
class Measured:
    rows: list[Row]
    opensc_not_measured: str | None = None  # why OpenSC has no row, when it should have had one


class NotMeasured(Exception):
    """One kind could not be measured (the message says why)."""


def wait_present(timeout: float = 10.0) -> None:
    ctx = PcscContext()
    try:
        deadline, state = time.monotonic() + timeout, STATE_UNAWARE
        while time.monotonic() < deadline:
            code, states = ctx.status([(READER, state)], 500)
            if code != E_TIMEOUT and states[0].present:
                return
            state = states[0].event_state & ~0x2
        raise NotMeasured("pcscd did not see the virtual card")
    finally:
        ctx.release()


def wait_absent(timeout: float = 10.0) -> None:
    """Wait until pcscd saw the card go, so that the next kind's card is not taken for this
    one (its ATR picks the driver). Gives up quietly: the next kind's settle() then waits."""
    ctx = PcscContext()
    try:
        deadline, state = time.monotonic() + timeout, STATE_UNAWARE
        while time.monotonic() < deadline:
            code, states = ctx.status([(READER, state)], 500)
            if code != E_TIMEOUT and not states[0].event_state & STATE_PRESENT:
                return
            state = states[0].event_state & ~0x2
    finally:
        ctx.release()


def summary(records: list[ApduRecord]) -> str:
    counts = Counter(NAMES.get(r.ins, f"INS {r.ins:02X}") for r in records)
    return ", ".join(f"{name} ×{n}" for name, n in counts.most_common())


def settle(timeout: float = 45.0) -> None:
    """Wait until the freshly inserted card answers (vpcd powers it up on first use), each
    try with a backend of its own (a backend remembers a card it could not identify). Says
    once per error code that it waits; a busy machine can take many seconds."""
    deadline = time.monotonic() + timeout
    said: set[str] = set()
    while True:
        backend = PcscBackend()
        try:
            backend.executor.submit(backend.token, READER).result(timeout=30)
            return
        except CardbridgeError as exc:
            if time.monotonic() > deadline:
                raise
            if str(exc.code) not in said:
                said.add(str(exc.code))
                print(f"  (the card is not ready yet: {exc.code}; waiting up to {timeout:g} s)", file=sys.stderr)
            time.sleep(0.5)
        finally:
            backend.close()


def driver_login(backend: PcscBackend, pin: str) -> None:
    """What the service does for one authenticate: find the card and its authentication
    certificate, read the PIN state for the dialog, then log in and sign."""
    token = backend.executor.submit(backend.token, READER).result(timeout=30)
    certs = token.executor.submit(token.certificates).result(timeout=30)
    cert = next(c for c in certs if c.purpose is Purpose.AUTHENTICATION)
    token.executor.submit(token.pin_status, cert).result(timeout=30)
    algorithm = token.supported_algorithms(cert)[0]
    digest = hashlib.new(algorithm.hash_function.replace("-", "").lower(), b"bench").digest()
    token.executor.submit(token.sign_digest, cert, bytearray(pin.encode()), digest, algorithm).result(timeout=30)


def measure(kind_name: str, key: str | None, folder: Path, rounds: int) -> Measured:
    kind = card_kind(kind_name)
    pins = pins_with_defaults(kind, {})
    card: VirtualCard = kind.create(folder, reader=0, key=key, pins=pins).start()
    rows: list[Row] = []
    opensc_not_measured = None
    try:
        card.insert(wait=10)
        wait_present()
        settle()  # with a backend of its own: the measured one starts cold
        backend = PcscBackend()
        try:
            card.reset_count()
            started = time.perf_counter()
            driver_login(backend, pins["pin"])
            rows.append(Row("cardbridge driver, cold", list(card.records), time.perf_counter() - started))
            times = []
            for _ in range(rounds):
                card.reset_count()
                started = time.perf_counter()
                driver_login(backend, pins["pin"])
                times.append(time.perf_counter() - started)
            rows.append(Row("cardbridge driver, warm login", list(card.records), min(times)))
            # The same login when the tries left must be read from the card before the dialog.
            times, records = [], []
            for _ in range(rounds):
                known = backend.executor.submit(backend.token, READER).result(timeout=30)
                counters = getattr(known, "pin_counters", None)
                if counters is not None:
                    counters.forget()
                card.reset_count()
                started = time.perf_counter()
                driver_login(backend, pins["pin"])
                times.append(time.perf_counter() - started)
                records = list(card.records)
            rows.append(Row("cardbridge driver, warm login, PIN state read", records, min(times)))
            if OPENSC:  # the same login while OpenSC's module (another PC/SC client) holds the card
                driver_login(backend, pins["pin"])  # the count known again
                command = [sys.executable, "-c", OPENSC_HOLD, OPENSC]
                holder = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                assert holder.stdin is not None and holder.stdout is not None
                try:
                    if holder.stdout.readline().strip() == "holding":
                        card.reset_count()
                        started = time.perf_counter()
                        driver_login(backend, pins["pin"])
                        label = "cardbridge driver, warm login, OpenSC holding the card"
                        rows.append(Row(label, list(card.records), time.perf_counter() - started))
                finally:
                    holder.stdin.write("\n")
                    holder.stdin.flush()
                    holder.wait(timeout=60)
                driver_login(backend, pins["pin"])  # OpenSC gone again: what the next login sees
                # OpenSC's module loaded into this process, as p11-kit loads it into the bridge
                # on a Debian system with opensc installed (it keeps every card it knows
                # connected): not another program.
                module = ModuleBackend(OPENSC)
                try:
                    module.executor.submit(module.tokens).result(timeout=60)
                    driver_login(backend, pins["pin"])  # the first login after OpenSC's start
                    readers = backend.executor.submit(backend.readers_state).result(timeout=30)
                    module.executor.submit(module.tokens, frozenset({READER}), readers).result(timeout=60)
                    card.reset_count()
                    started = time.perf_counter()
                    # The service lists every backend, not asking a module about a card a driver serves.
                    readers = backend.executor.submit(backend.readers_state).result(timeout=30)
                    module.executor.submit(module.tokens, frozenset({READER}), readers).result(timeout=60)
                    driver_login(backend, pins["pin"])
                    label = "cardbridge driver, warm login, OpenSC's module in the bridge"
                    rows.append(Row(label, list(card.records), time.perf_counter() - started))
                finally:
                    module.close()
            # The signature alone: what is left once the dialog has the PIN.
            token = backend.executor.submit(backend.token, READER).result(timeout=30)
            cert = next(c for c in token.certificates() if c.purpose is Purpose.AUTHENTICATION)
            algorithm = token.supported_algorithms(cert)[0]
            digest = hashlib.new(algorithm.hash_function.replace("-", "").lower(), b"x").digest()
            card.reset_count()
            started = time.perf_counter()
            pin = bytearray(pins["pin"].encode())
            token.executor.submit(token.sign_digest, cert, pin, digest, algorithm).result(timeout=30)
            rows.append(Row("cardbridge driver, warm sign only", list(card.records), time.perf_counter() - started))
        finally:
            backend.close()
        if OPENSC and kind_name not in OPENSC_CANNOT:
            digest = hashlib.sha384(b"bench").digest()[: 32 if key == "ec-p256" else 48]
            try:
                rows.append(opensc_login(card, kind_name, key, pins["pin"], digest, rounds))
            except NotMeasured as exc:
                opensc_not_measured = str(exc)
    finally:
        card.stop()
        wait_absent()
    return Measured(rows, opensc_not_measured)


def opensc_login(card: VirtualCard, kind_name: str, key: str | None, pin: str, digest: bytes, rounds: int) -> Row:
    """OpenSC's warm login, measured in a second process (it keeps its own PC/SC connection).
    Its failure is one NotMeasured naming the exception the module raised, never its traceback."""
    arguments = [OPENSC_LOGIN, str(OPENSC), READER, pin, digest.hex(), str(rounds), OPENSC_KEY_ID.get(kind_name, "01")]
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-c", *arguments], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            line: list[str] = []
            if proc.stdout.readline().strip() == "cold":
                card.reset_count()
                with contextlib.suppress(BrokenPipeError):  # it ended after the cold login: stderr says why
                    proc.stdin.write("\n")
                    proc.stdin.flush()
                line = proc.stdout.readline().split()
            records = list(card.records)
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if len(line) == 2 and line[0] == "warm" and proc.returncode == 0:
            return Row("OpenSC opensc-pkcs11.so, warm login", records[: len(records) // rounds], float(line[1]))
        errors.seek(0)
        last = next((text.strip() for text in reversed(errors.read().splitlines()) if text.strip()), "")
    # The traceback's last line: "pkcs11.exceptions.MechanismInvalid" or "Name: message".
    name, _, message = last.partition(":")
    name = name.rsplit(".", 1)[-1].strip()
    known = OPENSC_FAILS.get((kind_name, str(key), name))
    what = f"{name}: {message.strip()}" if message.strip() else name or f"exit status {proc.returncode}"
    raise NotMeasured(f"its module failed ({what}){f': {known}' if known else ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    built = [k for k, v in KINDS.items() if v is not None]
    parser.add_argument("--kind", action="append", choices=built, help="card kinds (default: all built)")
    parser.add_argument("--key", default=None, choices=("ec-p256", "ec-p384", "rsa-2048"), help="PIV key type")
    parser.add_argument("--rounds", type=int, default=5, help="warm logins per measurement (best time kept)")
    args = parser.parse_args()
    kinds = args.kind or built
    failed = 0
    print("APDUs and wall time for one login, per emulated card (best of", args.rounds, "warm logins):\n", flush=True)
    with tempfile.TemporaryDirectory() as folder, Pcscd():
        for kind in kinds:
            for key in KIND_KEYS.get(kind, (args.key if kind == "piv" else None,)):
                title = f"{card_kind(kind).title}{f' ({key})' if kind in KIND_KEYS else ''}:"
                try:
                    measured = measure(kind, key, Path(folder), args.rounds)
                except Exception as exc:  # any failure of one kind: say it, measure the next
                    failed += 1
                    error = f"{exc.code}: {exc}" if isinstance(exc, CardbridgeError) else f"{type(exc).__name__}: {exc}"
                    print(f"{title}\n  not measured: {error}\n", flush=True)
                    continue
                report(kind, title, measured)
    if failed:
        print(f"{failed} kind(s) not measured", file=sys.stderr)
    return 1 if failed else 0


def report(kind: str, title: str, measured: Measured) -> None:
    """One kind's rows and the figures drawn from them, printed at once."""
    rows = measured.rows
    print(title)
    width = max(len(r.label) for r in rows)
    for row in rows:
        count, ms = len(row.records), row.seconds * 1000
        print(f"  {row.label:<{width}}  {count:>4} APDUs  {ms:7.1f} ms   {summary(row.records)}")
    warm = next(r for r in rows if r.label.endswith("warm login"))
    fresh = next(r for r in rows if r.label.endswith("PIN state read"))
    opensc = next((r for r in rows if r.label.startswith("OpenSC")), None)
    minimum = MINIMUM.get(kind)
    if kind in OPENSC_CANNOT:
        print(f"  OpenSC: not measured: {OPENSC_CANNOT[kind]}")
    elif measured.opensc_not_measured is not None:
        print(f"  OpenSC: not measured: {measured.opensc_not_measured}")
    if opensc is not None:
        print(
            f"  OpenSC/cardbridge warm: {len(opensc.records)}/{len(warm.records)} APDUs = "
            f"{len(opensc.records) / len(warm.records):.1f}×, time {opensc.seconds / warm.seconds:.1f}×"
        )
    sign = next(r for r in rows if r.label.endswith("sign only"))
    if minimum is not None:
        state = len(warm.records) - len(sign.records)
        print(
            f"  the card's minimum for a login: {minimum} ({MINIMUM_TEXT[kind]}); cardbridge's warm login: "
            f"{len(warm.records)} = the signature {len(sign.records)} (the minimum {len(sign.records) - minimum:+d}"
            f": the logout){f' + the PIN state {state}' if state else ''}; with the PIN state read before the "
            f"dialog: {len(fresh.records)}"
        )
        fewer = "n/a" if opensc is None else ("yes" if len(warm.records) < len(opensc.records) else "NO")
        within = "yes" if len(warm.records) <= minimum + 1 else "NO"
        print(f"  goal: fewer APDUs than OpenSC: {fewer}; at most the minimum + 1: {within}")
    print(flush=True)


if __name__ == "__main__":
    sys.exit(main())
