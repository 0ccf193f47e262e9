"""cardbridge install-service: the systemd user unit and the XDG autostart entry.

systemctl is never called here: the files go to a temporary HOME or XDG_CONFIG_HOME, the
CLI runs with --no-start, and the module's systemctl runner is replaced by a recorder."""

from __future__ import annotations

import configparser
import os
import plistlib
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from cardbridge import autostart
from cardbridge.cli import EXIT_CODES
from cardbridge.errors import Code

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd and XDG autostart are Linux")


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME", "HOME", "LANG", "LC_ALL")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "cardbridge", *args], capture_output=True, text=True, env=full, timeout=60, check=False
    )


def _ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


def test_install_and_uninstall_under_home(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "LANG": "en_GB.UTF-8"}
    result = _cli("install-service", "--no-start", env=env)
    assert result.returncode == 0, result.stderr
    unit = tmp_path / ".config/systemd/user/cardbridge.service"
    desktop = tmp_path / ".config/autostart/cardbridge.desktop"
    assert f"The background service is installed: {unit}" in result.stdout
    assert f"The autostart entry is installed: {desktop}" in result.stdout
    assert "  systemctl --user enable --now cardbridge.service" in result.stdout, "the commands to run are printed"

    service = _ini(unit)
    assert service["Service"]["ExecStart"] == f"{sys.executable} -m cardbridge serve"
    assert service["Service"]["Restart"] == "on-failure"
    # A second user's bridge finds the port taken (PORT_IN_USE): it stops, not restarts forever.
    assert service["Service"]["RestartPreventExitStatus"] == str(EXIT_CODES[Code.PORT_IN_USE])
    assert service["Install"]["WantedBy"] == "graphical-session.target"
    entry = _ini(desktop)["Desktop Entry"]
    assert entry["Exec"] == f"{sys.executable} -m cardbridge serve"
    assert entry["Type"] == "Application" and entry["X-systemd-skip"] == "true"
    assert oct(unit.stat().st_mode & 0o777) == "0o644"

    # Enabled by hand meanwhile: the wants link goes too.
    wants = unit.parent / "graphical-session.target.wants"
    wants.mkdir()
    (wants / "cardbridge.service").symlink_to(unit)
    result = _cli("install-service", "--uninstall", "--no-start", env=env)
    assert result.returncode == 0, result.stderr
    assert not unit.exists() and not desktop.exists() and not (wants / "cardbridge.service").is_symlink()
    assert f"Removed: {unit}" in result.stdout and "systemctl --user stop cardbridge.service" in result.stdout
    again = _cli("--lang", "nb", "install-service", "--uninstall", "--no-start", env=env)
    assert again.returncode == 0
    assert again.stdout.strip() == "Ingenting å fjerne: bakgrunnstjenesten var ikke installert."


def test_xdg_config_home_is_honoured(tmp_path: Path) -> None:
    home, config = tmp_path / "home", tmp_path / "xdg"
    result = _cli(
        "--lang", "nn", "install-service", "--no-start", env={"HOME": str(home), "XDG_CONFIG_HOME": str(config)}
    )
    assert result.returncode == 0, result.stderr
    assert (config / "systemd/user/cardbridge.service").is_file()
    assert (config / "autostart/cardbridge.desktop").is_file()
    assert not home.exists()
    assert "Bakgrunnstenesta er installert" in result.stdout
    # A relative XDG_CONFIG_HOME is invalid by the spec: ~/.config is used.
    assert autostart.config_home({"HOME": str(home), "XDG_CONFIG_HOME": "rel"}) == home / ".config"


class Recorder:
    """Stands in for systemctl: records the commands, answers as a running user manager."""

    def __init__(self, code: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.code = code

    def __call__(self, argv: Sequence[str]) -> int:
        self.calls.append(list(argv))
        return 0 if argv[-1] == "show-environment" else self.code


def test_with_a_user_manager_it_enables_and_disables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(autostart.shutil, "which", lambda name: "/usr/bin/systemctl")
    env = {"HOME": str(tmp_path)}
    runner = Recorder()
    outcome = autostart.install(environ=env, run=runner)
    assert outcome.to_run == [] and outcome.failed == []
    assert runner.calls == [
        ["systemctl", "--user", "show-environment"],
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "cardbridge.service"],
    ]
    runner.calls.clear()
    outcome = autostart.uninstall(environ=env, run=runner)
    assert runner.calls == [
        ["systemctl", "--user", "show-environment"],
        ["systemctl", "--user", "disable", "--now", "cardbridge.service"],
        ["systemctl", "--user", "daemon-reload"],
    ]
    assert len(outcome.removed) == 2 and outcome.to_run == []


def test_a_failing_systemctl_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(autostart.shutil, "which", lambda name: "/usr/bin/systemctl")
    outcome = autostart.install(environ={"HOME": str(tmp_path)}, run=Recorder(code=1))
    assert outcome.failed == [(["systemctl", "--user", "daemon-reload"], 1), (outcome.ran[1], 1)]


def test_without_systemctl_the_commands_are_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(autostart.shutil, "which", lambda name: None)
    runner = Recorder()
    outcome = autostart.install(environ={"HOME": str(tmp_path)}, run=runner)
    assert runner.calls == []
    assert outcome.to_run[-1] == ["systemctl", "--user", "enable", "--now", "cardbridge.service"]


def test_paths_with_spaces_are_quoted() -> None:
    command = ["/opt/My Apps/python3", "-m", "cardbridge", "serve"]
    assert 'ExecStart="/opt/My Apps/python3" -m cardbridge serve' in autostart.unit_text(command)
    assert 'Exec="/opt/My Apps/python3" -m cardbridge serve' in autostart.desktop_text(command)
    assert 'Exec="/a/100%%/\\\\$py"' in autostart.desktop_text(["/a/100%/$py"])
    assert 'ExecStart="/a/100%%/$$py"' in autostart.unit_text(["/a/100%/$py"])


def test_launchd_plist_for_macos() -> None:
    plist = plistlib.loads(autostart.launchd_plist(["/usr/local/bin/cardbridge", "serve"]).encode())
    assert plist["Label"] == "no.cardbridge.bridge"
    assert plist["ProgramArguments"] == ["/usr/local/bin/cardbridge", "serve"]
    assert plist["RunAtLoad"] is True
