"""The native host as the browser runs it: a real process, spoken to over pipes.

``HostProcess`` starts ``python -m cardbridge.nativemsg`` (what the launcher runs) or the
CLI's ``native-host``, writes frames to its stdin and reads frames from its stdout with a
deadline, so that a host that hangs fails the test instead of stalling it.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.softhsm import own_token

ORIGIN = "https://login.example.no"
TIMEOUT = 20.0


class HostProcess:
    """One running host."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, cli: bool = False, program: str | None = None
    ) -> None:
        """``program``: run it (a launcher) instead of ``python -m cardbridge.nativemsg``."""
        if program is not None:
            entry = [program]
        elif cli:
            entry = [sys.executable, "-m", "cardbridge", "native-host"]
        else:
            entry = [sys.executable, "-m", "cardbridge.nativemsg"]
        self.proc = subprocess.Popen(
            [*entry, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env if env is not None else dict(os.environ),
        )
        self._buffer = b""
        self.stderr = ""

    # -- writing ----------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # the host may already have refused and gone

    def send(self, message: Any) -> None:
        body = json.dumps(message).encode()
        self.send_raw(struct.pack("=I", len(body)) + body)

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()

    # -- reading ----------------------------------------------------------------------------

    def _fill(self, size: int, deadline: float) -> bool:
        """Read stdout until ``size`` bytes are buffered; False at EOF."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while len(self._buffer) < size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"the host sent nothing for {TIMEOUT}s (it hangs)")
                if not selector.select(remaining):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    return False
                self._buffer += chunk
        return True

    def read(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next frame; fails when none comes in time or stdout ends."""
        deadline = time.monotonic() + timeout
        assert self._fill(4, deadline), f"stdout ended; stderr: {self.finish()}"
        (length,) = struct.unpack("=I", self._buffer[:4])
        assert length <= 1024 * 1024, "a frame over 1 MiB"
        assert self._fill(4 + length, deadline), "stdout ended inside a frame"
        body, self._buffer = self._buffer[4 : 4 + length], self._buffer[4 + length :]
        value = json.loads(body.decode("utf-8"))
        assert isinstance(value, dict), value
        return value

    def rest(self, timeout: float = TIMEOUT) -> bytes:
        """Everything left on stdout until it ends."""
        deadline = time.monotonic() + timeout
        while self._fill(len(self._buffer) + 1, deadline):
            pass
        rest, self._buffer = self._buffer, b""
        return rest

    def finish(self, timeout: float = TIMEOUT) -> str:
        """Close stdin, wait for the exit, return stderr."""
        self.close_stdin()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the host did not exit") from None
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read().decode("utf-8", "replace")
        return self.stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(BrokenPipeError):
                    stream.close()


@pytest.fixture
def start_host() -> Iterator[Any]:
    """``start_host(*args, env=..., cli=False)`` → a HostProcess, killed after the test."""
    started: list[HostProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, cli: bool = False) -> HostProcess:
        host = HostProcess(*args, env=env, cli=cli)
        started.append(host)
        return host

    yield start
    for host in started:
        host.kill()


def write_config(folder: Path, **settings: Any) -> Path:
    """A config file (mode 0600) with ``settings`` as TOML."""
    lines = []
    for key, value in settings.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, list | tuple):
            lines.append(f"{key} = [{', '.join(json.dumps(v) for v in value)}]")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def config_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a host whose config allows ORIGIN (and nothing is in the user's folders).

    The host also uses the built-in PC/SC drivers; libpcsclite is pointed at a socket where
    no pcscd listens, so these hosts see only the test's SoftHSM2 card, never a virtual
    card that a PC/SC test put in pcscd's readers meanwhile (that gave AMBIGUOUS_CERTIFICATE)."""
    folder = tmp_path / "cfg"
    folder.mkdir(mode=0o700)
    path = write_config(folder, allowed_origins=[ORIGIN], denied_origins=["https://evil.example"])
    return {
        **os.environ,
        "CARDBRIDGE_CONFIG": str(path),
        "CARDBRIDGE_DATA_DIR": str(tmp_path / "data"),
        "CARDBRIDGE_LOG_DIR": str(tmp_path / "log"),
        "PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm"),
    }


@dataclass(frozen=True)
class Card:
    """One emulated ID card alone in its own SoftHSM2 store (as a citizen has one card)."""

    module: str
    softhsm2_conf: str
    label: str
    pin: str
    holder: str
    ca_certificate: str

    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": self.softhsm2_conf, "CARDBRIDGE_PKCS11_MODULE": self.module}


@pytest.fixture(scope="session")
def card(tmp_path_factory: pytest.TempPathFactory) -> Card:
    """``cardbridge dev token create`` in a folder of its own: one EC P-384 card. Made in a
    subprocess, since SoftHSM2 reads its config once per process."""
    if shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed")
    data = own_token(tmp_path_factory.mktemp("nativemsg-card"))
    return Card(
        data["module"], data["softhsm2_conf"], data["label"], data["pin"], data["holder"], data["ca_certificate"]
    )
