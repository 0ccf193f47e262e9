"""``cardbridge native-host`` and ``install-native-host`` (``cardbridge.cli.browser``); the
host itself and the installer have their tests in tests/nativemsg."""

import json
import subprocess
import sys

import pytest

from cardbridge import __version__
from cardbridge.nativemsg import handshake_version

QUIT = b'{"command": "quit", "arguments": {}}'


@pytest.mark.parametrize("options", [[], ["-v"], ["--lang", "en"]], ids=["plain", "verbose", "lang"])
def test_native_host_after_global_options(options: list[str]) -> None:
    # Plain `cardbridge native-host` goes straight to the host (cardbridge.__main__); after
    # a global option it goes through the parser, to the same host.
    result = subprocess.run(
        [sys.executable, "-m", "cardbridge", *options, "native-host"],
        input=len(QUIT).to_bytes(4, sys.byteorder) + QUIT,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    frames = []
    out = result.stdout
    while out:
        length = int.from_bytes(out[:4], sys.byteorder)
        frames.append(json.loads(out[4 : 4 + length]))
        out = out[4 + length :]
    assert frames == [{"version": handshake_version(__version__)}, {}]


def test_native_host_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cardbridge", "native-host", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("usage: cardbridge native-host")
