"""CPU time and memory of an idle process watching a card, next to an idle Python process.

    python bench/idle.py [--seconds 20] [-- COMMAND ...]

With a virtual PIV card in the reader (pcscd and the card are started here when needed),
it starts the command (default: a process running cardbridge's card monitor, having
listed the card once through the built-in driver — what ``cardbridge serve`` does when
idle; pass e.g. ``-- cardbridge serve`` to measure the real server), waits for it to
settle, then measures its user+system CPU time and resident memory over ``--seconds``.
A bare ``python -c 'sleep'`` is measured side by side over the same seconds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cardbridge.emulator.pcscd import Pcscd
from cardbridge.emulator.virtual_card import VirtualPivCard, load_or_create_card

MONITOR = """
import time
from cardbridge.pcsc import CardMonitor, PcscBackend
backend = PcscBackend()
backend.executor.submit(backend.tokens).result(timeout=30)
monitor = CardMonitor().start()
monitor.wait_ready(10)
print("ready", flush=True)
while True:
    time.sleep(3600)
"""
BASELINE = "import time\nprint('ready', flush=True)\nwhile True:\n    time.sleep(3600)\n"
CLOCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its threads (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start(command: list[str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait after start before measuring")
    parser.add_argument("command", nargs="*", help="the process to measure (after --)")
    args = parser.parse_args()
    command = args.command or [sys.executable, "-c", MONITOR]
    with tempfile.TemporaryDirectory() as folder, Pcscd():
        card = VirtualPivCard(load_or_create_card(Path(folder), key="ec-p256"), reader=0).start()
        processes: dict[str, subprocess.Popen[str]] = {}
        try:
            card.insert(wait=10)
            processes = {
                "measured": start(command),
                "baseline (python sleeping)": start([sys.executable, "-c", BASELINE]),
            }
            for name, process in processes.items():
                if not args.command or name != "measured":
                    assert process.stdout is not None
                    process.stdout.readline()  # "ready"
            time.sleep(args.settle)
            before = {name: cpu_seconds(p.pid) for name, p in processes.items()}
            card_apdus = card.apdu_count
            wall = time.monotonic()
            time.sleep(args.seconds)
            wall = time.monotonic() - wall
            after = {name: cpu_seconds(p.pid) for name, p in processes.items()}
            memory = {name: rss_kib(p.pid) for name, p in processes.items()}
            apdus = card.apdu_count - card_apdus
        finally:
            for process in processes.values():
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
            card.stop()
    print(f"Idle over {wall:.1f} s with a card in the reader (command: {' '.join(command)[:60]}…):\n")
    for name in processes:
        used = after[name] - before[name]
        print(
            f"  {name:<28} CPU {used * 1000:7.1f} ms ({100 * used / wall:.3f} %)   RSS {memory[name] / 1024:6.1f} MiB"
        )
    print(f"\n  APDUs the card received while idle: {apdus}")
    print(f"  CPU clock resolution: {1000 / CLOCK:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
