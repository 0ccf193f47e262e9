"""Start-up of the ``cardbridge`` command and of the native-messaging host, next to
``python -c pass``, measured side by side in one run.

Each round runs, in turn and with the same Python:

- ``python -c pass``: the floor;
- ``cardbridge --version``: the console script pip writes, parser and all;
- ``cardbridge native-host``: the host through the full command line;
- the launcher that ``cardbridge install-native-host`` writes (into a temporary folder here),
  started as the browser starts it, with our extension's origin as its argument;

and for the host ones, the wall time from start to exit of a process that writes the
handshake, reads ``quit``, answers ``{}`` and exits. Prints the median of each and its ratio
to ``python -c pass``. Goals: at most 2× for each, at most 1.3× for the launcher.

Run: ``python bench/cli_start.py [ROUNDS]`` (default 40; a few seconds).
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
from collections.abc import Callable
from pathlib import Path

from cardbridge.nativemsg import EXTENSION_CHROME_ID, install

CALLER = f"chrome-extension://{EXTENSION_CHROME_ID}/"
QUIT = json.dumps({"command": "quit", "arguments": {}}).encode()
QUIT_FRAME = struct.pack("=I", len(QUIT)) + QUIT
FLOOR = "python -c pass"
GOALS = {"cardbridge --version": 2.0, "cardbridge native-host": 2.0, "launcher (install-native-host)": 1.3}


def _read_frame(read: Callable[[int], bytes]) -> dict[str, object]:
    (length,) = struct.unpack("=I", read(4))
    value = json.loads(read(length))
    assert isinstance(value, dict)
    return value


def time_command(*command: str) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def time_host(*command: str) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen([*command, CALLER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    hello = _read_frame(proc.stdout.read)
    assert "version" in hello, hello
    proc.stdin.write(QUIT_FRAME)
    proc.stdin.flush()
    reply = _read_frame(proc.stdout.read)
    assert reply == {}, reply
    proc.stdin.close()
    proc.wait(timeout=30)
    elapsed = time.perf_counter() - start
    proc.stdout.close()
    assert proc.returncode == 0
    return elapsed


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    script = Path(sys.executable).with_name("cardbridge")  # the console script of this environment
    if not script.exists():
        sys.exit(f"no {script}: install cardbridge into this Python's environment (pip install -e .)")
    folder = Path(tempfile.mkdtemp(prefix="cardbridge-bench-"))
    try:
        launcher = folder / "cardbridge-native-host"
        install.install("chromium", home=folder, launcher=launcher)
        cases: dict[str, Callable[[], float]] = {
            FLOOR: lambda: time_command(sys.executable, "-c", "pass"),
            "cardbridge --version": lambda: time_command(str(script), "--version"),
            "cardbridge native-host": lambda: time_host(str(script), "native-host"),
            "launcher (install-native-host)": lambda: time_host(str(launcher)),
        }
        for run in cases.values():  # warm the file cache once
            run()
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, run in cases.items():
                times[name].append(run())
    finally:
        shutil.rmtree(folder)
    floor = statistics.median(times[FLOOR])
    print(f"{rounds} rounds, alternating, {sys.executable}, Python {sys.version.split()[0]}")
    print(f"{'':34} {'median':>9} {'min':>9} {'ratio':>7} {'goal':>6}")
    for name, values in times.items():
        median = statistics.median(values)
        goal = f"≤{GOALS[name]:.1f}x" if name in GOALS else ""
        print(f"{name:34} {median * 1000:7.1f}ms {min(values) * 1000:7.1f}ms {median / floor:6.2f}x {goal:>6}")


if __name__ == "__main__":
    main()
