"""``cardbridge demo``, run as a real process: the emulated card (made in a temporary data
folder), ``cardbridge serve``, the demo portal and one login in headless Chromium."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cardbridge.demo.headless import CHROMIUM_ARGS
from tests.conftest import ScriptedPinentry

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.softhsm,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="Debian's chromium is not installed"),
    pytest.mark.skipif(shutil.which("softhsm2-util") is None, reason="SoftHSM2 is not installed"),
]
playwright_sync = pytest.importorskip("playwright.sync_api")


def demo_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "CARDBRIDGE_DEV_PIN")}
    return {**env, "CARDBRIDGE_DATA_DIR": str(data_dir), "CARDBRIDGE_CONFIG": str(data_dir / "none.toml"), **extra}


def run_demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cardbridge", "--lang", "en", "demo", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )


def test_demo_check_logs_in_and_prints_the_verified_identity(tmp_path: Path) -> None:
    result = run_demo(demo_env(tmp_path), "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    origin = re.search(r"Demo portal: (http://localhost:\d+)/", out)
    assert origin is not None, out
    assert f"The PIN dialog showed the website {origin.group(1)}" in out
    verified = re.search(
        r"The portal verified: Kari Nordmann, National identity number \(fødselsnummer\): (\d{11}), issuer: (.+)", out
    )
    assert verified is not None, out
    assert "cardbridge Development ID Card CA" in verified.group(2)
    assert "The login worked." in out
    # The card was made once, in the data folder; a second run finds it.
    assert (tmp_path / "dev" / "softhsm" / "cardbridge-dev.json").exists()
    again = run_demo(demo_env(tmp_path), "--check")
    assert again.returncode == 0, again.stderr
    assert verified.group(1) in again.stdout


def test_without_a_terminal_demo_exits_after_the_login(tmp_path: Path) -> None:
    result = run_demo(demo_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "The login worked." in result.stdout
    assert "Ctrl-C" not in result.stdout


@pytest.mark.parametrize(
    ("chromium", "code", "status"), [("/bin/false", "INTERNAL", 1), ("/nonexistent", "CONFIG_ERROR", 8)]
)
def test_demo_check_fails_when_the_login_cannot_happen(tmp_path: Path, chromium: str, code: str, status: int) -> None:
    result = run_demo(demo_env(tmp_path, CARDBRIDGE_CHROMIUM=chromium), "--check")
    assert result.returncode == status, result.stdout + result.stderr
    assert f"error: {code}:" in result.stderr
    assert "The login worked." not in result.stdout


class Terminal:
    """A process on a pseudo-terminal, as a person runs ``cardbridge demo``."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.execve(argv[0], argv, env)  # noqa: S606 - no shell: the argv as given
        self.output = b""

    def expect(self, pattern: bytes, timeout: float = 90) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output)
            if match:
                return match
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    self.output += os.read(self.fd, 4096)
                except OSError:
                    break
        raise AssertionError(f"{pattern!r} not seen in: {self.output.decode(errors='replace')}")

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.1)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError("cardbridge demo did not stop")


def test_on_a_terminal_demo_keeps_serving_with_the_persons_pinentry(tmp_path: Path, pinentry: ScriptedPinentry) -> None:
    pinentry.respond("1234")
    env = demo_env(tmp_path, **pinentry.env())
    terminal = Terminal([sys.executable, "-m", "cardbridge", "--lang", "en", "demo"], env)
    stopped = False
    try:
        terminal.expect(rb"The login worked\.")
        url = terminal.expect(rb"Open (http://localhost:\d+/\?lang=en) in your browser and log in with the PIN 1234")
        assert pinentry.dialogs() == []  # the automatic login used cardbridge dev pinentry
        with playwright_sync.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS))
            try:
                page = browser.new_page()
                page.goto(url.group(1).decode())
                page.wait_for_selector("#login[data-ready=true]")
                page.click("#login-button")
                page.wait_for_selector("#citizen-name", timeout=60_000)
                assert page.inner_text("#citizen-name") == "Kari Nordmann"
            finally:
                browser.close()
        terminal.expect(rb"Logged in: Kari Nordmann")
        # The person's dialog (here the scripted pinentry) asked, naming the portal.
        descriptions = pinentry.texts("SETDESC")
        assert len(descriptions) == 1
        assert url.group(1).decode().split("/?")[0] in descriptions[0]
        os.kill(terminal.pid, signal.SIGINT)
        stopped = True
        terminal.expect(rb"The demo stopped\.")
    finally:
        if not stopped:
            os.kill(terminal.pid, signal.SIGINT)
            terminal.wait()
    assert terminal.wait() == 0
    assert json.loads(pinentry.script.read_text())["responses"] == []
