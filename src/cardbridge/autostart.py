"""Run the bridge in the background: a systemd user unit and an XDG autostart entry.

``cardbridge install-service`` writes

- ``$XDG_CONFIG_HOME/systemd/user/cardbridge.service`` (``~/.config/…``): runs
  ``cardbridge serve`` in the person's graphical session (the PIN dialog needs it),
  restarts it when it fails;
- ``$XDG_CONFIG_HOME/autostart/cardbridge.desktop``: the same for desktops whose session
  is not run by systemd. It carries ``X-systemd-skip=true``, so that where systemd turns
  autostart entries into units, the unit above is the only one that starts.

then enables and starts the unit with ``systemctl --user`` when a user manager runs (or
prints the commands to run). ``--uninstall`` stops it and removes both files. Nothing
here prints; the CLI reports what was done. macOS (launchd) and Windows are described in
the README; :func:`launchd_plist` gives the LaunchAgent for macOS.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cardbridge import __version__

UNIT_NAME = "cardbridge.service"
DESKTOP_NAME = "cardbridge.desktop"
LAUNCHD_LABEL = "no.cardbridge.bridge"

Runner = Callable[[Sequence[str]], int]


def config_home(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME`` when it is an absolute path, else ``~/.config``."""
    env = os.environ if environ is None else environ
    value = env.get("XDG_CONFIG_HOME", "")
    if value and os.path.isabs(value):
        return Path(value)
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".config"


def unit_path(environ: Mapping[str, str] | None = None) -> Path:
    return config_home(environ) / "systemd" / "user" / UNIT_NAME


def desktop_path(environ: Mapping[str, str] | None = None) -> Path:
    return config_home(environ) / "autostart" / DESKTOP_NAME


def serve_command() -> list[str]:
    """How to start the bridge: this Python with ``-m cardbridge serve`` (so a virtual
    environment or a pipx install works as it is)."""
    return [sys.executable, "-m", "cardbridge", "serve"]


def _systemd_quote(argument: str) -> str:
    # systemd expands % specifiers and $VARIABLES in ExecStart: double them.
    argument = argument.replace("%", "%%").replace("$", "$$")
    if argument and all(c.isalnum() or c in "/._-+=:@," for c in argument):
        return argument
    return '"' + argument.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _desktop_quote(argument: str) -> str:
    # The Desktop Entry spec: quote with "…", escape " ` $ \ inside, and %% for a percent.
    argument = argument.replace("%", "%%")
    if argument and all(c.isalnum() or c in "/._-+=:@," for c in argument):
        return argument
    # Inside quotes " ` $ \ take a backslash, and the string-value escaping applied first
    # doubles every backslash: \\$ in the file, and four for a literal backslash.
    escaped = "".join("\\" * 4 if c == "\\" else "\\" * 2 + c if c in '"`$' else c for c in argument)
    return f'"{escaped}"'


INSTALL_NOTE = "Installed by cardbridge install-service; remove it with: cardbridge install-service --uninstall"


# The CLI's exit status for PORT_IN_USE (and the other bridge errors a restart cannot
# mend, such as CONFIG_ERROR): on a machine with several users the package's unit runs for
# each, and only the first gets the port; the others must stop, not restart every 5 s.
NO_RESTART_STATUS = 8


def unit_text(command: Sequence[str], *, note: str = INSTALL_NOTE) -> str:
    """The systemd user unit that runs ``command``; ``note`` says who installed it."""
    exec_start = " ".join(_systemd_quote(a) for a in command)
    return f"""# cardbridge {__version__}. {note}
[Unit]
Description=cardbridge: log in to public-sector portals with your national ID card
PartOf=graphical-session.target
After=graphical-session.target

[Service]
Type=simple
ExecStart={exec_start}
Restart=on-failure
RestartSec=5
RestartPreventExitStatus={NO_RESTART_STATUS}
NoNewPrivileges=yes

[Install]
WantedBy=graphical-session.target
"""


def desktop_text(command: Sequence[str]) -> str:
    """The XDG autostart entry that runs ``command`` (skipped where systemd runs the unit)."""
    exec_line = " ".join(_desktop_quote(a) for a in command)
    return f"""[Desktop Entry]
Type=Application
Name=cardbridge
Comment=Log in to public-sector portals with your national ID card
Comment[nb]=Logg inn på offentlige tjenester med det nasjonale ID-kortet ditt
Comment[nn]=Logg inn på offentlege tenester med det nasjonale ID-kortet ditt
Exec={exec_line}
Terminal=false
NoDisplay=true
X-GNOME-Autostart-enabled=true
X-systemd-skip=true
"""


def launchd_plist(command: Sequence[str]) -> str:
    """The macOS LaunchAgent (``~/Library/LaunchAgents/no.cardbridge.bridge.plist``)."""
    from xml.sax.saxutils import escape

    arguments = "\n".join(f"        <string>{escape(a)}</string>" for a in command)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
    <key>Label</key>
    <string>{LAUNCHD_LABEL}</string>
    <key>ProgramArguments</key>
    <array>
{arguments}
    </array>
    <key>RunAtLoad</key>
    <true/>
    <key>KeepAlive</key>
    <dict>
        <key>SuccessfulExit</key>
        <false/>
    </dict>
    <key>ProcessType</key>
    <string>Interactive</string>
</dict>
</plist>
"""


@dataclass
class Outcome:
    """What install or uninstall did, for the CLI to report."""

    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    ran: list[list[str]] = field(default_factory=list)  # systemctl commands that were run
    to_run: list[list[str]] = field(default_factory=list)  # … or that the person should run
    failed: list[tuple[list[str], int]] = field(default_factory=list)


def _run_quietly(argv: Sequence[str]) -> int:
    try:
        return subprocess.run(list(argv), capture_output=True, timeout=30, check=False).returncode
    except (OSError, subprocess.TimeoutExpired):
        return 127


def user_manager_available(run: Runner = _run_quietly) -> bool:
    """True when ``systemctl --user`` reaches a running user manager."""
    if shutil.which("systemctl") is None:
        return False
    return run(["systemctl", "--user", "show-environment"]) == 0


def _write(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(content, encoding="utf-8")
    tmp.chmod(0o644)
    tmp.replace(path)


def _systemctl(outcome: Outcome, commands: list[list[str]], manager: bool, run: Runner) -> None:
    """Run ``commands`` when a user manager runs, else list them for the person."""
    if manager:
        for argv in commands:
            code = run(argv)
            outcome.ran.append(argv)
            if code != 0:
                outcome.failed.append((argv, code))
    else:
        outcome.to_run.extend(commands)


def install(
    *,
    environ: Mapping[str, str] | None = None,
    command: Sequence[str] | None = None,
    start: bool = True,
    run: Runner = _run_quietly,
) -> Outcome:
    """Write the unit and the autostart entry; enable and start the unit when ``start``
    and a user manager runs, else list the commands in ``Outcome.to_run``."""
    argv = list(command or serve_command())
    outcome = Outcome()
    for path, content in ((unit_path(environ), unit_text(argv)), (desktop_path(environ), desktop_text(argv))):
        _write(path, content)
        outcome.written.append(path)
    commands = [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", UNIT_NAME],
    ]
    _systemctl(outcome, commands, start and user_manager_available(run), run)
    return outcome


def uninstall(
    *,
    environ: Mapping[str, str] | None = None,
    start: bool = True,
    run: Runner = _run_quietly,
) -> Outcome:
    """Stop and disable the unit (when a user manager runs, else list the commands), and
    remove the unit, its ``*.wants`` links and the autostart entry."""
    outcome = Outcome()
    unit = unit_path(environ)
    manager = start and unit.exists() and user_manager_available(run)
    if manager:
        _systemctl(outcome, [["systemctl", "--user", "disable", "--now", UNIT_NAME]], True, run)
    links = sorted(unit.parent.glob(f"*.wants/{UNIT_NAME}")) if unit.parent.is_dir() else []
    for path in (unit, *links, desktop_path(environ)):
        if path.exists() or path.is_symlink():
            path.unlink()
            outcome.removed.append(path)
    if unit in outcome.removed:
        reload = ["systemctl", "--user", "daemon-reload"]
        if manager:
            _systemctl(outcome, [reload], True, run)
        else:
            outcome.to_run.extend([["systemctl", "--user", "stop", UNIT_NAME], reload])
    return outcome


def shell_line(argv: Sequence[str]) -> str:
    return shlex.join(argv)
