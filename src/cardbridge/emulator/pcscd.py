"""Start pcscd for development and benchmarks when none runs (Debian: ``pcscd --foreground``
as root; its socket is ``/run/pcscd/pcscd.comm``), and stop it again by its pid."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from cardbridge.errors import ConfigError, ServiceNotRunningError

PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")


def pcscd_running() -> bool:
    """Whether a pcscd answers on its socket."""
    if not PCSCD_SOCKET.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        try:
            sock.connect(str(PCSCD_SOCKET))
        except OSError:
            return False
    return True


class Pcscd:
    """``with Pcscd():`` — a pcscd for the block: the running one, or one started here."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def owned(self) -> bool:
        return self.process is not None

    def start(self) -> Pcscd:
        if pcscd_running():
            return self
        program = shutil.which("pcscd") or "/usr/sbin/pcscd"
        if not os.path.exists(program):
            raise ConfigError("pcscd is not installed (Debian: apt-get install pcscd vsmartcard-vpcd).")
        if os.geteuid() != 0:
            raise ServiceNotRunningError("pcscd is not running, and starting it needs root.")
        PCSCD_SOCKET.unlink(missing_ok=True)
        self.process = subprocess.Popen([program, "--foreground"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if pcscd_running():
                return self
            time.sleep(0.1)
        self.stop()
        raise ServiceNotRunningError("pcscd did not start.")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> Pcscd:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
