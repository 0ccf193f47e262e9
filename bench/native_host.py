"""Start-up of the native-messaging host, next to ``python -c pass``, measured side by side.

Each round runs, in turn and with the same Python:

- ``python -c pass``: the floor;
- the launcher that ``cardbridge install-native-host`` writes (into a temporary folder here),
  started as the browser starts it, with our extension's origin as its argument;
- ``python -m cardbridge.nativemsg chrome-extension://ID/``: the host without the launcher;
- ``python -m cardbridge native-host chrome-extension://ID/``: the same through the full CLI;

and for the host ones, the wall time from start to exit of a process that writes the
handshake, reads ``quit``, answers ``{}`` and exits. Prints the median of each and the
ratio to ``python -c pass``. Goal: at most 2× for the launcher's command.

Run: ``python bench/native_host.py [ROUNDS]`` (default 40; stops by itself in seconds).
"""

from __future__ import annotations

import json
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cardbridge.nativemsg import EXTENSION_CHROME_ID, install

CALLER = f"chrome-extension://{EXTENSION_CHROME_ID}/"
QUIT = json.dumps({"command": "quit", "arguments": {}}).encode()
QUIT_FRAME = struct.pack("=I", len(QUIT)) + QUIT
LAUNCHER = "launcher (install-native-host)"


def _read_frame(stream: object) -> dict[str, object]:
    read = stream.read  # type: ignore[attr-defined]
    (length,) = struct.unpack("=I", read(4))
    value = json.loads(read(length))
    assert isinstance(value, dict)
    return value


def time_pass() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def time_host(*command: str) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen([*command, CALLER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    hello = _read_frame(proc.stdout)
    assert "version" in hello, hello
    proc.stdin.write(QUIT_FRAME)
    proc.stdin.flush()
    reply = _read_frame(proc.stdout)
    assert reply == {}, reply
    proc.stdin.close()
    proc.wait(timeout=30)
    elapsed = time.perf_counter() - start
    proc.stdout.close()
    assert proc.returncode == 0
    return elapsed


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    folder = Path(tempfile.mkdtemp(prefix="cardbridge-bench-"))
    launcher = folder / "cardbridge-native-host"
    install.install("chromium", home=folder, launcher=launcher)
    python = sys.executable
    cases = {
        "python -c pass": time_pass,
        LAUNCHER: lambda: time_host(str(launcher)),
        "python -m cardbridge.nativemsg": lambda: time_host(python, "-m", "cardbridge.nativemsg"),
        "python -m cardbridge native-host (CLI)": lambda: time_host(python, "-m", "cardbridge", "native-host"),
    }
    for run in cases.values():  # warm the file cache once
        run()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            times[name].append(run())
    floor = statistics.median(times["python -c pass"])
    print(f"{rounds} rounds, {sys.executable}, Python {sys.version.split()[0]}")
    print(f"{'':45} {'median':>9} {'min':>9} {'ratio':>7}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:45} {median * 1000:7.1f}ms {min(values) * 1000:7.1f}ms {median / floor:6.2f}x")
    ratio = statistics.median(times[LAUNCHER]) / floor
    print(f"launcher, handshake + quit, vs python -c pass: {ratio:.2f}x (goal: at most 2x)")
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
